package caddymodule

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/testenv"
)

// rawGet sends a request line exactly as given (no client-side cleaning)
// and returns the status code.
func rawGet(t *testing.T, hostport, target string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", hostport, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, hostport)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestCaddyUITraversalIsRefused(t *testing.T) {
	fx := publishUIBundle(t, uiFiles, "Acme Inc.", "")
	g := newGatewayFiles(t)
	g.registry.statuses[fx.hash+"/"+testExt] = &registryapi.BundleStatus{ContentHash: fx.hash, Extension: testExt, Published: true}
	r := startStubRunner(t, g.sockDir, "r0")
	c := testenv.Caddy(t, caddySite(g, []string{r.Addr()}, fmt.Sprintf("\t\tbundle_store %s\n\t\ttrust_bundle %s", fx.storeURL, fx.trustFile)))
	host := strings.TrimPrefix(c.URL, "http://")
	base := "/ext-ui/" + testExt + "/" + fx.hash + "/"
	if code := rawGet(t, host, base+"app.js"); code != 200 {
		t.Fatalf("asset through Caddy: %d\n%s", code, c.Log())
	}
	if code := rawGet(t, host, "/ext-ui/"+testExt+"/sha256%3A"+strings.TrimPrefix(fx.hash, "sha256:")+"/app.js"); code != 200 {
		t.Fatalf("%%3A hash through Caddy: %d", code)
	}
	for _, p := range []string{
		"../manifest.json", "../../../../etc/passwd", "%2e%2e/manifest.json", "%2E%2E%2Fmanifest.json",
		"..%2f..%2fmanifest.json", "..%5cmanifest.json", "..\\manifest.json", ".hidden", "a/%00/b.js",
		"./app.js", "styles/../../manifest.json",
	} {
		if code := rawGet(t, host, base+p); code != 404 {
			t.Errorf("GET %s through Caddy: %d, want 404", base+p, code)
		}
	}
	if code := rawGet(t, host, "/ext-ui/com.other.ext/"+fx.hash+"/app.js"); code != 404 {
		t.Errorf("cross-extension hash: %d", code)
	}
}

func TestCaddyTrustedHeaderBehindForwardAuth(t *testing.T) {
	g := newGatewayFiles(t)
	r := startStubRunner(t, g.sockDir, "r0")
	// The PSA's auth endpoint: "good" credentials map to testTenant.
	authSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Session good" {
			w.WriteHeader(401)
			return
		}
		w.Header().Set("X-Alga-Tenant", testTenant)
	}))
	defer authSrv.Close()
	site := fmt.Sprintf(`	forward_auth %s {
		uri /auth
		copy_headers X-Alga-Tenant
	}
	extedge {
		registry %s {
			token_file %s
		}
		runners %s {
			token_file %s
		}
		auth trusted_header X-Alga-Tenant
	}`, strings.TrimPrefix(authSrv.URL, "http://"), g.registry.URL, g.serviceToken, r.Addr(), g.runnerToken)
	c := testenv.Caddy(t, site)
	do := func(auth, tenant string) int {
		req, _ := http.NewRequest("GET", c.URL+"/api/ext/"+testExt+"/agreements", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if tenant != "" {
			req.Header.Set("X-Alga-Tenant", tenant)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := do("Session good", ""); code != 200 {
		t.Fatalf("authenticated call: %d\n%s", code, c.Log())
	}
	if code := do("", testTenant); code != 401 {
		t.Fatalf("client-supplied tenant header without auth: %d, want 401 from forward_auth", code)
	}
	// A spoofed header next to valid credentials is replaced by the auth
	// server's value (forward_auth strips the client's copy): the install
	// of the real tenant is used, so the call succeeds as testTenant.
	g.registry.setInstall("tenant-evil", testExt, nil)
	if code := do("Session good", "tenant-evil"); code != 200 {
		t.Fatalf("spoofed tenant header: %d", code)
	}
}

// TestCaddyTrustedHeaderSecret: with secret_header, the tenant header is
// believed only next to the proxy's shared secret, so a request that
// reaches extedge without passing forward_auth (here a second site with
// no forward_auth, standing for a misrouted listener) cannot pick its
// tenant.
func TestCaddyTrustedHeaderSecret(t *testing.T) {
	g := newGatewayFiles(t)
	r := startStubRunner(t, g.sockDir, "r0")
	const secret = "s3cret-shared-with-forward-auth"
	secretFile := filepath.Join(t.TempDir(), "proxy.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	authSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Session good" {
			w.WriteHeader(401)
			return
		}
		w.Header().Set("X-Alga-Tenant", testTenant)
		w.Header().Set("X-Extedge-Proxy-Secret", secret)
	}))
	defer authSrv.Close()
	extedge := fmt.Sprintf(`extedge {
		registry %s {
			token_file %s
		}
		runners %s {
			token_file %s
		}
		auth trusted_header X-Alga-Tenant {
			secret_header X-Extedge-Proxy-Secret %s
		}
	}`, g.registry.URL, g.serviceToken, r.Addr(), g.runnerToken, secretFile)
	guarded := testenv.Caddy(t, fmt.Sprintf(`	forward_auth %s {
		uri /auth
		copy_headers X-Alga-Tenant X-Extedge-Proxy-Secret
	}
	%s`, strings.TrimPrefix(authSrv.URL, "http://"), extedge))
	misrouted := testenv.Caddy(t, "\t"+extedge)
	do := func(base string, headers map[string]string) int {
		req, _ := http.NewRequest("GET", base+"/api/ext/"+testExt+"/agreements", nil)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := do(guarded.URL, map[string]string{"Authorization": "Session good"}); code != 200 {
		t.Fatalf("through forward_auth: %d\n%s", code, guarded.Log())
	}
	if code := do(misrouted.URL, map[string]string{"X-Alga-Tenant": testTenant}); code != 401 {
		t.Fatalf("tenant header without the secret: %d, want 401", code)
	}
	if code := do(misrouted.URL, map[string]string{"X-Alga-Tenant": testTenant, "X-Extedge-Proxy-Secret": "guess"}); code != 401 {
		t.Fatalf("tenant header with a wrong secret: %d, want 401", code)
	}
}
