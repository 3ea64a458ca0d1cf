// Package e2e runs the gateway end to end with real processes: Caddy built
// from ./cmd/caddy, runnerd built from ./runnerd executing the
// examples/hello Go guest (built for wasip1), and a signed bundle in a
// file:// blob store. The registry is a registryapi double (httptest)
// because these tests are about the gateway ↔ runner path; registryd has its
// own integration tests. This package imports no wasmtime: runnerd is a
// separate process.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	ext         = "com.example.hello"
	tenant      = "tenant-e2e"
	runnerToken = "e2e-runner-token-0123"
	svcToken    = "e2e-service-token-0123"
	jwtSecret   = "e2e-jwt-secret-0123456789"
)

// helloBundle builds examples/hello for wasip1, packs, signs and stores it.
func helloBundle(t *testing.T, dir string) (hash, storeURL, trustFile string) {
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "bundle")
	os.MkdirAll(filepath.Join(src, "dist"), 0o755)
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", filepath.Join(src, "dist", "hello.wasm"), "./examples/hello")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building examples/hello: %v\n%s", err, out)
	}
	man, err := os.ReadFile(filepath.Join(root, "examples", "hello", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "manifest.json"), man, 0o644)
	var buf bytes.Buffer
	if hash, err = bundle.Pack(src, &buf); err != nil {
		t.Fatal(err)
	}
	key, _ := signing.GenerateKey(signing.AlgEd25519)
	sig, _ := signing.Sign(key, hash)
	storeDir := filepath.Join(dir, "store")
	os.MkdirAll(storeDir, 0o755)
	storeURL = "file://" + storeDir
	store, err := blobstore.Open(storeURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store.Put(ctx, blobstore.BundleKey(hash), bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	store.Put(ctx, blobstore.SignatureKey(hash), bytes.NewReader(sig.Marshal()), -1)
	store.Put(ctx, blobstore.ManifestKey(hash), bytes.NewReader(man), int64(len(man)))
	pub, _ := signing.MarshalPublicKeyPEM(key.Public(), "Example")
	trustFile = filepath.Join(dir, "trust.pem")
	os.WriteFile(trustFile, pub, 0o644)
	return hash, storeURL, trustFile
}

// startRunnerd runs a real runnerd on a socket in sockDir.
func startRunnerd(t *testing.T, sockDir, name, storeURL, trustFile, tokenFile string) *testenv.RunnerdServer {
	return testenv.Runnerd(t, testenv.RunnerdOptions{Socket: filepath.Join(sockDir, name+".sock"),
		BundleStore: storeURL, TrustBundle: trustFile, TokenFile: tokenFile})
}

func TestGatewayToRealRunnerd(t *testing.T) {
	dir := t.TempDir()
	hash, storeURL, trustFile := helloBundle(t, dir)
	sockDir, _ := os.MkdirTemp("", "e2e")
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(v), 0o600)
		return p
	}
	runnerTok, svcTok, secret := write("runner.token", runnerToken), write("svc.token", svcToken), write("jwt.secret", jwtSecret)

	resolved, _ := json.Marshal(registryapi.Resolved{InstallID: "i-1", TenantID: tenant,
		Extension: registryapi.Ref{ID: "e-1", Name: ext}, Version: registryapi.VersionRef{ID: "v-1", Version: "0.1.0"},
		ContentHash: hash, Status: "enabled", Capabilities: []string{"log.emit"},
		Endpoints: []manifest.Endpoint{{Method: "GET", Path: "/hello", Handler: "dist/hello"}},
		Config:    json.RawMessage(`{"greeting":"hi"}`)})
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/resolve/"+tenant+"/"+ext:
			w.Write(resolved)
		case r.URL.Path == "/v1/changes":
			w.WriteHeader(200)
			<-r.Context().Done()
		default:
			w.WriteHeader(404)
			fmt.Fprint(w, `{"error":{"code":"not_installed","message":"no"}}`)
		}
	}))
	// Closed after Caddy stops (cleanups run last-in first-out), so the
	// change-feed request Caddy holds open has ended.
	t.Cleanup(reg.Close)

	r0 := startRunnerd(t, sockDir, "r0", storeURL, trustFile, runnerTok)
	r1 := startRunnerd(t, sockDir, "r1", storeURL, trustFile, runnerTok)
	c := testenv.Caddy(t, fmt.Sprintf(`	extedge {
		registry %s {
			token_file %s
		}
		runners unix/%s unix/%s {
			token_file %s
			health_interval 200ms
		}
		auth jwt {
			secret_file %s
		}
	}`, reg.URL, svcTok, r0.Socket, r1.Socket, runnerTok, secret))
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"tenant": tenant, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(jwtSecret))
	call := func() (int, string) {
		req, _ := http.NewRequest("GET", c.URL+"/api/ext/"+ext+"/hello?name=ann", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := call()
	if code != 200 || !strings.Contains(body, `"message":"hi, ann"`) {
		t.Fatalf("call through Caddy → runnerd → wasm: %d %s\n%s", code, body, c.Log())
	}
	// SIGKILL the runner that serves the hash (rendezvous owner); the other
	// one takes the traffic (it fetches, verifies and compiles on first use).
	st, err := c.Admin("/extedge/status")
	if err != nil {
		t.Fatal(err)
	}
	var status struct {
		Runners []struct {
			Address  string `json:"address"`
			Requests int64  `json:"requests"`
		} `json:"runners"`
	}
	json.Unmarshal(st, &status)
	victim := r0
	for _, rs := range status.Runners {
		if rs.Requests > 0 && rs.Address == r1.Address() {
			victim = r1
		}
	}
	// Warm the survivor the way an operator would (POST /v1/warmup), so the
	// test measures failover, not a cold compile of a 3 MB Go guest on a
	// loaded machine.
	survivor := r1
	if victim == r1 {
		survivor = r0
	}
	warm, _ := http.NewRequest("POST", "http://runner/v1/warmup", strings.NewReader(`{"content_hashes":["`+hash+`"]}`))
	warm.Header.Set("Authorization", "Bearer "+runnerToken)
	warm.Header.Set("Content-Type", "application/json")
	wresp, err := survivor.Client(60 * time.Second).Do(warm)
	if err != nil {
		t.Fatalf("warmup: %v", err)
	}
	wb, _ := io.ReadAll(wresp.Body)
	wresp.Body.Close()
	if wresp.StatusCode != 200 {
		t.Fatalf("warmup: %d %s", wresp.StatusCode, wb)
	}
	victim.Kill()
	if code, body = call(); code != 200 {
		t.Fatalf("first call after killing %s: %d %s", victim.Socket, code, body)
	}
	for i := 0; i < 10; i++ {
		if code, body := call(); code != 200 {
			t.Fatalf("call %d with one runner left: %d %s", i, code, body)
		}
	}
}
