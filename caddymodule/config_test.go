package caddymodule

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/internal/tlsconf"
)

// configFiles are valid files of every kind a gateway config names.
type configFiles struct {
	dir                         string
	token, key, secret, trust   string
	ca                          testenv.TestCA
	empty, short, junk, missing string
}

func writeConfigFiles(t testing.TB) configFiles {
	t.Helper()
	dir := t.TempDir()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	publisher, _ := signing.GenerateKey(signing.AlgEd25519)
	trust, err := signing.MarshalPublicKeyPEM(publisher.Public(), "Acme Inc.")
	if err != nil {
		t.Fatal(err)
	}
	return configFiles{
		dir:     dir,
		token:   writeFile(t, dir, "service.token", "token-0123456789\n"),
		key:     writeFile(t, dir, "session.pub", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))),
		secret:  writeFile(t, dir, "jwt.secret", testJWTSecret),
		trust:   writeFile(t, dir, "trust.pem", string(trust)),
		ca:      testenv.WriteTestCA(t, dir),
		empty:   writeFile(t, dir, "empty", " \n"),
		short:   writeFile(t, dir, "short.secret", "tiny\n"),
		junk:    writeFile(t, dir, "junk.pem", "not pem\n"),
		missing: filepath.Join(dir, "missing"),
	}
}

// TestProvisionReadsConfiguredFiles: every file the config names is read
// at provision (so `caddy validate` fails), and the error names the
// directive and the file.
func TestProvisionReadsConfiguredFiles(t *testing.T) {
	f := writeConfigFiles(t)
	valid := func() *Handler {
		return &Handler{
			Registry:    &RegistryConfig{URL: "https://127.0.0.1:1", TokenFile: f.token, CAFile: f.ca.CAFile},
			Runners:     &RunnersConfig{Addresses: []string{"tcp://127.0.0.1:1"}, TokenFile: f.token, CAFile: f.ca.CAFile},
			Auth:        &AuthConfig{Mode: "jwt", KeyFile: f.key},
			BundleStore: "file:///var/lib/extedge/bundles", TrustBundle: f.trust,
			UICache: &UICacheConfig{Dir: filepath.Join(f.dir, "ui")},
		}
	}
	for _, tc := range []struct {
		name   string
		mutate func(h *Handler)
		want   []string // substrings of the error; none: provision succeeds
	}{
		{"every file present", func(h *Handler) {}, nil},
		{"hs256 secret file present", func(h *Handler) { h.Auth.KeyFile, h.Auth.SecretFile = "", f.secret }, nil},
		{"missing registry token file", func(h *Handler) { h.Registry.TokenFile = f.missing },
			[]string{"registry token_file", f.missing, "no such file"}},
		{"empty runner token file", func(h *Handler) { h.Runners.TokenFile = f.empty },
			[]string{"runners token_file", f.empty, "is empty"}},
		{"missing jwt key file", func(h *Handler) { h.Auth.KeyFile = f.missing },
			[]string{"key_file", f.missing, "no such file"}},
		{"jwt key file that is not a key", func(h *Handler) { h.Auth.KeyFile = f.junk },
			[]string{"key_file", f.junk, "no PEM block"}},
		{"jwt key file holding a certificate authority key", func(h *Handler) { h.Auth.KeyFile = f.ca.KeyFile },
			[]string{"key_file", f.ca.KeyFile}},
		{"missing jwt secret file", func(h *Handler) { h.Auth.KeyFile, h.Auth.SecretFile = "", f.missing },
			[]string{"secret_file", f.missing}},
		{"short jwt secret", func(h *Handler) { h.Auth.KeyFile, h.Auth.SecretFile = "", f.short },
			[]string{"secret_file", f.short, "shorter than 16 bytes"}},
		{"missing trust bundle", func(h *Handler) { h.TrustBundle = f.missing },
			[]string{"trust_bundle", f.missing, "no such file"}},
		{"trust bundle without keys", func(h *Handler) { h.TrustBundle = f.junk },
			[]string{"trust_bundle", f.junk}},
		{"bundle store with an unsupported scheme", func(h *Handler) { h.BundleStore = "ftp://x" },
			[]string{"bundle_store", `unsupported scheme "ftp"`}},
		{"bundle store without trust bundle", func(h *Handler) { h.TrustBundle = "" },
			[]string{"bundle_store and trust_bundle go together"}},
		{"missing registry ca file", func(h *Handler) { h.Registry.CAFile = f.missing },
			[]string{"registry ca_file", f.missing}},
		{"runner ca file without a certificate", func(h *Handler) { h.Runners.CAFile = f.junk },
			[]string{"runners ca_file", f.junk, "no PEM certificate"}},
		{"registry ca file on a plain http registry", func(h *Handler) { h.Registry.URL = "http://127.0.0.1:1" },
			[]string{"registry ca_file", "needs an https:// registry URL"}},
		{"runner ca file with only unix runners", func(h *Handler) { h.Runners.Addresses = []string{"unix//run/r.sock"} },
			[]string{"runners ca_file", "needs a tcp runner"}},
		{"negative runner health interval", func(h *Handler) { h.Runners.HealthInterval = -1 },
			[]string{"runners health_interval must not be negative"}},
		{"bare runner socket path", func(h *Handler) { h.Runners.Addresses = []string{"/run/r.sock"} },
			[]string{"unix//run/r.sock"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := valid()
			tc.mutate(h)
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := h.Provision(ctx)
			defer h.Cleanup()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("provision: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("provision succeeded, want an error naming %q", tc.want)
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if strings.ToLower(err.Error()[:1]) != err.Error()[:1] {
				t.Errorf("error %q is not lowercase", err)
			}
		})
	}
}

// TestCAFileTrustsTLSRegistryAndRunner: with ca_file the gateway reaches an
// https:// registry and a tcp runner serving TLS with a certificate of that
// CA; without it, the same servers are not trusted (the test would pass
// trivially if verification were skipped).
func TestCAFileTrustsTLSRegistryAndRunner(t *testing.T) {
	ca := testenv.WriteTestCA(t, t.TempDir())
	serverTLS, err := tlsconf.Server(ca.CertFile, ca.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	withTLS := func(caFile string) *gateway {
		return newGateway(t, func(h *Handler, g *gateway) {
			reg := httptest.NewUnstartedServer(http.HandlerFunc(g.registry.serve))
			reg.TLS = serverTLS.Clone()
			reg.StartTLS()
			t.Cleanup(reg.Close)
			ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS.Clone())
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: g.runner.Runner}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
			h.Registry.URL, h.Registry.CAFile = reg.URL, caFile
			h.Runners.Addresses, h.Runners.CAFile = []string{"tcp://" + ln.Addr().String()}, caFile
		})
	}

	g := withTLS(ca.CAFile)
	w := g.do(g.req(t, "GET", "/api/ext/"+testExt+"/agreements", ""))
	if w.Code != 200 {
		t.Fatalf("call over TLS with ca_file: %d %s", w.Code, w.Body.String())
	}
	if g.runner.lastRequest() == nil {
		t.Fatal("the TLS runner saw no request")
	}

	// Registry over TLS without ca_file: system roots, not trusted.
	plain := newGateway(t, func(h *Handler, g *gateway) {
		reg := httptest.NewUnstartedServer(http.HandlerFunc(g.registry.serve))
		reg.TLS = serverTLS.Clone()
		reg.StartTLS()
		t.Cleanup(reg.Close)
		h.Registry.URL = reg.URL
	})
	if w := plain.do(plain.req(t, "GET", "/api/ext/"+testExt+"/agreements", "")); w.Code != 503 || errorCode(t, w) != "registry_unavailable" {
		t.Fatalf("registry with an untrusted certificate: %d %s, want 503 registry_unavailable", w.Code, w.Body.String())
	}

	// A TLS runner reached over plain TCP (no ca_file) never answers.
	noRunnerTLS := newGateway(t, func(h *Handler, g *gateway) {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS.Clone())
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: g.runner.Runner}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		h.Runners.Addresses = []string{"tcp://" + ln.Addr().String()}
	})
	if w := noRunnerTLS.do(noRunnerTLS.req(t, "GET", "/api/ext/"+testExt+"/agreements", "")); w.Code < 500 {
		t.Fatalf("tls runner without ca_file: %d %s, want a 5xx", w.Code, w.Body.String())
	}
}
