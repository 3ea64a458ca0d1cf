package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/internal/tlsconf"
)

// TestServeTLS: with --tls-cert/--tls-key the TCP listener speaks only
// HTTPS (HTTP/1.1 and HTTP/2); a client trusting the CA gets /healthz, one
// trusting the system roots and a plain-HTTP one do not.
func TestServeTLS(t *testing.T) {
	pg := testenv.Postgres(t)
	dir := t.TempDir()
	ca := testenv.WriteTestCA(t, dir)
	r := testenv.Registryd(t, testenv.RegistrydOptions{
		DatabaseURL: pg.URL(), BundleStore: "file://" + filepath.Join(dir, "blobs"), TLS: &ca,
	})
	if !strings.HasPrefix(r.URL, "https://") {
		t.Fatalf("URL %s is not https", r.URL)
	}
	resp, err := r.Client().Get(r.URL + "/healthz")
	if err != nil {
		t.Fatalf("client trusting the test CA: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz over TLS: %d", resp.StatusCode)
	}

	// The listener offers HTTP/2 (ServeTLS), which the change feed's many
	// long-lived streams from one client benefit from.
	cfg, err := tlsconf.Client(ca.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	resp, err = (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(r.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("TLS listener answered with %s, want HTTP/2", resp.Proto)
	}

	systemRoots := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	_, err = systemRoots.Get(r.URL + "/healthz")
	var unknownCA x509.UnknownAuthorityError
	if !errors.As(err, &unknownCA) {
		t.Fatalf("client with system roots: err = %v, want an unknown-authority error", err)
	}

	plainURL := fmt.Sprintf("http://127.0.0.1:%d/healthz", r.Port)
	if resp, err := systemRoots.Get(plainURL); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP got /healthz from a TLS listener")
		}
	}
}

// TestServeTLSErrorsNameTheFile: a missing or unparsable certificate or key
// stops serve at start, before the database, naming the file.
func TestServeTLSErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	ca := testenv.WriteTestCA(t, dir)
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing certificate", []string{"--tls-cert", missing, "--tls-key", ca.KeyFile}, missing},
		{"missing key", []string{"--tls-cert", ca.CertFile, "--tls-key", missing}, missing},
		{"key given as certificate", []string{"--tls-cert", ca.KeyFile, "--tls-key", ca.KeyFile}, ca.KeyFile},
		{"certificate without key", []string{"--tls-cert", ca.CertFile}, "--tls-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--listen", "127.0.0.1:0", "--bundle-store", "file://" + filepath.Join(dir, "blobs"),
				"--database-url", "postgres://127.0.0.1:1/unreachable", "--database-wait", "0"}, tt.args...)
			_, errOut, code := runCLI(t, args...)
			if code != 1 || !strings.Contains(errOut, tt.want) || strings.Contains(errOut, "database") {
				t.Fatalf("code %d, stderr %q: want 1 and an error naming %q (before the database)", code, errOut, tt.want)
			}
		})
	}
}
