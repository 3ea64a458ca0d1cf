package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/extedge/extedge/internal/testenv"
)

// TestCAFileForATLSRegistry: against a registryd serving --tls-cert from a
// private CA, extctl succeeds with --ca-file (or $EXTEDGE_CA_FILE) and
// fails without it, naming the certificate problem; a bad CA file is a
// local error naming the file.
func TestCAFileForATLSRegistry(t *testing.T) {
	pg := testenv.Postgres(t)
	dir := t.TempDir()
	ca := testenv.WriteTestCA(t, dir)
	keys := filepath.Join(dir, "keys")
	mustRun(t, "keygen", "--out", keys, "--publisher", "Example Co")
	srv := testenv.Registryd(t, testenv.RegistrydOptions{
		DatabaseURL: pg.URL(), BundleStore: "file://" + filepath.Join(dir, "blobs"), TLS: &ca,
		TrustBundle: filepath.Join(keys, "publisher.pub"),
	})
	tokenFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte(srv.Token(t, "--role", "platform_admin")), 0o600); err != nil {
		t.Fatal(err)
	}
	list := []string{"list", "--json", "--registry", srv.URL, "--token-file", tokenFile}
	t.Setenv("EXTEDGE_CA_FILE", "")

	t.Run("--ca-file trusts the registry", func(t *testing.T) {
		if out := mustRun(t, append(list, "--ca-file", ca.CAFile)...); strings.TrimSpace(out) != "[]" {
			t.Fatalf("list = %q, want []", out)
		}
	})
	t.Run("EXTEDGE_CA_FILE trusts the registry, and a publish streams over TLS", func(t *testing.T) {
		t.Setenv("EXTEDGE_CA_FILE", ca.CAFile)
		bundle, sig, _ := packSigned(t, filepath.Join(keys, "publisher.key"), nil, nil)
		mustRun(t, "publish", bundle, "--signature", sig, "--registry", srv.URL, "--token-file", tokenFile)
		if out := mustRun(t, list...); !strings.Contains(out, "com.example.cli") {
			t.Fatalf("list after publish = %q", out)
		}
	})
	t.Run("without a CA file the certificate is refused", func(t *testing.T) {
		code, _, errOut := run(t, list...)
		if code != 1 || !strings.Contains(errOut, "cannot reach the registry") || !strings.Contains(errOut, "certificate") {
			t.Fatalf("exit %d, stderr %q: want 1 and a certificate error", code, errOut)
		}
	})
	t.Run("a CA file without a certificate is named", func(t *testing.T) {
		code, _, errOut := run(t, append(list, "--ca-file", ca.KeyFile)...)
		if code != 1 || !strings.Contains(errOut, ca.KeyFile) {
			t.Fatalf("exit %d, stderr %q: want 1 naming %s", code, errOut, ca.KeyFile)
		}
	})
}
