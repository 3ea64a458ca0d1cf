package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/testenv"
)

// without drops flag and its value from args.
func without(args []string, flag string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == flag {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// TestMisconfiguredServeFailsAtStart: each misconfiguration makes serve
// return at once (SPEC §12: at start, not at the first request) with an
// error that names the flag or variable, and the file where there is one.
func TestMisconfiguredServeFailsAtStart(t *testing.T) {
	f := newServeFixture(t)
	ca := testenv.WriteTestCA(t, t.TempDir())
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	plainFile := filepath.Join(dir, "plain")
	os.WriteFile(plainFile, []byte("x"), 0o600)
	emptyToken := filepath.Join(dir, "empty.token")
	os.WriteFile(emptyToken, []byte(" \n"), 0o600)
	readOnlyCache := filepath.Join(dir, "ro-cache")
	for _, d := range []string{"bundles", "compiled", "staging"} {
		os.MkdirAll(filepath.Join(readOnlyCache, d), 0o750)
	}
	os.Chmod(filepath.Join(readOnlyCache, "staging"), 0o500)
	t.Cleanup(func() { os.Chmod(filepath.Join(readOnlyCache, "staging"), 0o700) })
	tcp := "tcp://" + freeTCPAddr(t)

	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		want     []string
		needUser bool // root may write anywhere
	}{
		{"cache dir under a regular file", f.args("--cache-dir", filepath.Join(plainFile, "cache")), nil, []string{"--cache-dir", plainFile}, false},
		{"cache dir without write permission", f.args("--cache-dir", readOnlyCache), nil, []string{"--cache-dir", readOnlyCache}, true},
		{"missing tls cert file", f.args("--listen", tcp, "--tls-cert", missing, "--tls-key", ca.KeyFile), nil, []string{missing}, false},
		{"missing tls key file", f.args("--listen", tcp, "--tls-cert", ca.CertFile, "--tls-key", missing), nil, []string{missing}, false},
		{"unparsable tls cert", f.args("--listen", tcp, "--tls-cert", plainFile, "--tls-key", ca.KeyFile), nil, []string{plainFile}, false},
		{"tls cert without tls key", f.args("--listen", tcp, "--tls-cert", ca.CertFile), nil, []string{"--tls-key"}, false},
		{"tls cert with only unix sockets", f.args("--tls-cert", ca.CertFile, "--tls-key", ca.KeyFile), nil, []string{"--tls-cert", "tcp://"}, false},
		{"listen address without a scheme", f.args("--listen", "127.0.0.1:7001"), nil, []string{"--listen", "127.0.0.1:7001"}, false},
		{"listen address without a port", f.args("--listen", "tcp://localhost"), nil, []string{"--listen", "tcp://localhost"}, false},
		{"relative unix socket path", f.args("--listen", "unix://runner.sock"), nil, []string{"--listen", "runner.sock"}, false},
		{"listen on a regular file", f.args("--listen", "unix://"+plainFile), nil, []string{"--listen", plainFile}, false},
		{"missing token file", f.args("--token-file", missing), nil, []string{"--token-file", missing}, false},
		{"empty token file", f.args("--token-file", emptyToken), nil, []string{"--token-file", emptyToken}, false},
		{"no token at all", without(f.args(), "--token-file"), map[string]string{runnerTokenEnv: ""}, []string{"--token-file", runnerTokenEnv}, false},
		{"missing token file from the environment", without(f.args(), "--token-file"), map[string]string{"EXTEDGE_TOKEN_FILE": missing}, []string{"--token-file", missing}, false},
		{"missing trust bundle", f.args("--trust-bundle", missing), nil, []string{"--trust-bundle", missing}, false},
		{"no trust bundle", without(f.args(), "--trust-bundle"), map[string]string{"SIGNING_TRUST_BUNDLE": "", "EXTEDGE_TRUST_BUNDLE": ""}, []string{"--trust-bundle", "SIGNING_TRUST_BUNDLE"}, false},
		{"missing ca file", f.args("--ca-file", missing), nil, []string{"--ca-file", missing}, false},
		{"key given as ca file", f.args("--ca-file", ca.KeyFile), nil, []string{"--ca-file", ca.KeyFile}, false},
		{"missing secrets key file", f.args("--secrets-key-file", missing), nil, []string{"--secrets-key-file", missing}, false},
		{"missing registry token file", f.args("--registry", "http://127.0.0.1:1", "--registry-token-file", missing), nil, []string{"--registry-token-file", missing}, false},
		{"bad bundle store", f.args("--bundle-store", "ftp://bundles"), nil, []string{"--bundle-store"}, false},
		{"bad egress allowlist", f.args("--egress-allowlist", "http://a b"), nil, []string{"--egress-allowlist"}, false},
		{"bad redis url", f.args("--redis", "mysql://x"), nil, []string{"--redis"}, false},
		{"bad log level", f.args("--log-level", "loud"), nil, []string{"--log-level"}, false},
		{"no extension labels", f.args("--metrics-max-extensions", "0"), nil, []string{"--metrics-max-extensions"}, false},
		{"bad duration in the environment", f.args(), map[string]string{"EXTEDGE_GRACE": "soon"}, []string{"EXTEDGE_GRACE", "--grace"}, false},
		{"bad size in an alias", f.args(), map[string]string{"EXT_CACHE_MAX_BYTES": "lots"}, []string{"EXT_CACHE_MAX_BYTES", "--cache-max-bytes"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needUser && os.Geteuid() == 0 {
				t.Skip("root writes to read-only directories")
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			done := make(chan error, 1)
			go func() { done <- serve(tt.args) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(15 * time.Second):
				syscall.Kill(os.Getpid(), syscall.SIGTERM)
				<-done
				t.Fatal("serve started despite the misconfiguration")
			}
			if err == nil {
				t.Fatal("serve returned nil")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to name %q", err, w)
				}
			}
		})
	}
}

// TestCacheDirWithoutPermissionFailsAtStart is the table's permission case
// for a root test run: runnerd built from ./runnerd runs as nobody, and a
// cache directory only root may write fails its start naming --cache-dir.
func TestCacheDirWithoutPermissionFailsAtStart(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("TestMisconfiguredServeFailsAtStart covers this without root")
	}
	const nobody = 65534
	dir, err := os.MkdirTemp("", "rd-perm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "runnerd")
	src, err := os.ReadFile(testenv.Binary(t, "./runnerd"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bin, src, 0o755)
	f := newServeFixture(t)
	trust, _ := os.ReadFile(f.trust)
	for name, data := range map[string][]byte{"trust.pem": trust, "token": []byte(serveToken)} {
		os.WriteFile(filepath.Join(dir, name), data, 0o644)
	}
	store := filepath.Join(dir, "store")
	cacheDir := filepath.Join(dir, "cache") // root's, 0755: nobody may not write
	for _, d := range []string{store, filepath.Join(cacheDir, "bundles"), filepath.Join(cacheDir, "compiled"), filepath.Join(cacheDir, "staging")} {
		os.MkdirAll(d, 0o755)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // kills it if it serves
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--listen", "unix://"+filepath.Join(dir, "runner.sock"), "--token-file", filepath.Join(dir, "token"),
		"--trust-bundle", filepath.Join(dir, "trust.pem"), "--bundle-store", "file://"+store, "--cache-dir", cacheDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("runnerd started with an unwritable cache directory:\n%s", out)
	}
	if !strings.Contains(string(out), "--cache-dir") || !strings.Contains(string(out), cacheDir) {
		t.Fatalf("output does not name --cache-dir %s:\n%s", cacheDir, out)
	}
}
