// Package agreements_test builds the sample extension with its own
// build.sh, checks the signed bundle the way registryd and runnerd do
// (bundle rules, manifest, handler resolution, signature), and runs the
// handlers on the runner's real engine and host capabilities
// (runnerd/runnertest), with http.fetch reaching the demo's real vendor mock.
package agreements_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/devstack/psa"
	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/runnerd/engine"
	"github.com/extedge/extedge/runnerd/runnertest"
)

const vendorKey = "vendor-key-e2e"

// built is the output of one build.sh run, shared by the tests.
type built struct {
	out     string // build directory
	hash    string // content hash build.sh printed
	files   map[string][]byte
	entries []bundle.Entry
	elapsed time.Duration
}

var (
	buildOnce sync.Once
	buildRes  *built
	buildErr  error
)

// runBuild runs build.sh once per test binary, with a freshly built extctl
// so the test never uses a stale bin/extctl.
func runBuild(t *testing.T) *built {
	t.Helper()
	buildOnce.Do(func() { buildRes, buildErr = buildBundle() })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildRes
}

func buildBundle() (*built, error) {
	out, err := os.MkdirTemp("", "agreements-build-")
	if err != nil {
		return nil, err
	}
	extctl := filepath.Join(out, "extctl")
	cmd := exec.Command("go", "build", "-o", extctl, "./extctl")
	cmd.Dir = "../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building extctl: %v\n%s", err, b)
	}
	var stdout, stderr bytes.Buffer
	// Run from an unrelated directory: the script must find the repo itself.
	script, _ := filepath.Abs("build.sh")
	cmd = exec.Command(script, "--out", out)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "EXTCTL="+extctl)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build.sh: %v\n%s", err, stderr.String())
	}
	b := &built{out: out, hash: strings.TrimSpace(stdout.String()), files: map[string][]byte{}, elapsed: time.Since(start)}
	f, err := os.Open(filepath.Join(out, "agreements.tar.zst"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b.entries, err = bundle.Walk(f, bundle.DefaultLimits(), func(e bundle.Entry, body io.Reader) error {
		data, err := io.ReadAll(body)
		b.files[e.Name] = data
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bundle violates the §2.1 rules: %v", err)
	}
	return b, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildRes != nil {
		os.RemoveAll(buildRes.out)
	}
	os.Exit(code)
}

func (b *built) has(p string) bool { _, ok := b.files[p]; return ok }

func TestBuildProducesAValidSignedBundle(t *testing.T) {
	b := runBuild(t)
	wasm := b.files["dist/main.wasm"]
	t.Logf("build.sh wall clock %v; dist/main.wasm %d bytes (%.2f MiB); bundle entries %d",
		b.elapsed.Round(time.Millisecond), len(wasm), float64(len(wasm))/(1<<20), len(b.entries))

	hash, size, err := bundle.HashFile(filepath.Join(b.out, "agreements.tar.zst"))
	if err != nil {
		t.Fatal(err)
	}
	if hash != b.hash || !bundle.ValidHash(hash) {
		t.Fatalf("build.sh printed %q, bundle hashes to %s", b.hash, hash)
	}
	t.Logf("bundle %d bytes, %s", size, hash)

	var names []string
	for _, e := range b.entries {
		names = append(names, e.Name)
	}
	sort.Strings(names)
	if want := "[dist/main.wasm manifest.json ui/app.js ui/index.html ui/style.css]"; fmt.Sprint(names) != want {
		t.Fatalf("bundle holds %v, want %s (the Go sources must not be packed)", names, want)
	}

	m, err := manifest.Parse(b.files["manifest.json"], manifest.Options{Files: b.has})
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if m.Name != "com.acme.agreements" || m.Publisher != "Acme Inc." {
		t.Fatalf("manifest %s by %s", m.Name, m.Publisher)
	}
	for _, ep := range m.API.Endpoints {
		ref, err := m.HandlerTarget(ep.Handler, b.has)
		if err != nil {
			t.Fatalf("%s %s: %v", ep.Method, ep.Path, err)
		}
		if want := (manifest.HandlerRef{Module: "dist/main.wasm", Export: "handler"}); ref != want {
			t.Fatalf("%s resolves to %+v, want %+v", ep.Handler, ref, want)
		}
	}

	sigRaw, err := os.ReadFile(filepath.Join(b.out, "SIGNATURE"))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signing.ParseSignature(sigRaw)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := signing.LoadTrustBundle(filepath.Join(b.out, "keys", "publisher.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Verify(sig, hash, m.Publisher, time.Now()); err != nil {
		t.Fatalf("signature does not verify against the generated key: %v", err)
	}
}

// Building again with --key (the key the first run generated) signs with
// that key and, because the build is reproducible, yields the same hash.
func TestRebuildWithKeyIsReproducible(t *testing.T) {
	b := runBuild(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("./build.sh", "--out", out, "--key", filepath.Join(b.out, "keys", "publisher.key"))
	cmd.Env = append(os.Environ(), "EXTCTL="+filepath.Join(b.out, "extctl"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build.sh --key: %v\n%s", err, stderr.String())
	}
	if got := strings.TrimSpace(stdout.String()); got != b.hash {
		t.Fatalf("rebuild hash %s, first build %s", got, b.hash)
	}
	if _, err := os.Stat(filepath.Join(out, "keys")); !os.IsNotExist(err) {
		t.Fatalf("build.sh --key generated a key anyway (%v)", err)
	}
	s1, _ := os.ReadFile(filepath.Join(b.out, "SIGNATURE"))
	s2, _ := os.ReadFile(filepath.Join(out, "SIGNATURE"))
	var a, c signing.Signature
	json.Unmarshal(s1, &a)
	json.Unmarshal(s2, &c)
	if a.KeyID == "" || a.KeyID != c.KeyID {
		t.Fatalf("signed with key %q, want %q", c.KeyID, a.KeyID)
	}
}

type guestResponse struct {
	Status  int
	Headers map[string]string
	Body    []byte
}

// invoke runs one call on the runner's real engine and host units
// (runnertest.Host): a fresh instance, _initialize, alloc, handler.
func invoke(t *testing.T, host *testHost, module *engine.Module, env *execapi.Request) (guestResponse, map[string]any) {
	t.Helper()
	call := host.Run(t, module, env)
	if call.Err != nil {
		t.Fatalf("call failed: %v; logs %v", call.Err, call.Report.Logs)
	}
	for _, l := range call.Report.Logs {
		host.Logs = append(host.Logs, l.Level+": "+l.Message)
	}
	resp := guestResponse{Status: call.Response.Status, Headers: call.Response.Headers, Body: call.Response.Body}
	var body map[string]any
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		t.Fatalf("body is not a JSON object: %q", resp.Body)
	}
	return resp, body
}

// request builds the envelope the gateway sends for a manifest endpoint.
func request(m *manifest.Manifest, method, pattern, path string, query, params map[string]string, config any) *execapi.Request {
	handler := ""
	for _, ep := range m.API.Endpoints {
		if ep.Method == method && ep.Path == pattern {
			handler = ep.Handler
		}
	}
	cfg, _ := json.Marshal(config)
	return &execapi.Request{
		Context: execapi.Context{RequestID: "r-1", TenantID: "t-1", ExtensionID: m.Name,
			InstallID: "i-1", VersionID: "v-1", ContentHash: "sha256:00"},
		HTTP:         execapi.HTTPRequest{Method: method, Path: path, Query: query, Headers: map[string]string{}},
		Endpoint:     execapi.Endpoint{Method: method, Path: pattern, Handler: handler, Params: params},
		Config:       cfg,
		Capabilities: m.Capabilities,
	}
}

func TestHandlersRunInWasm(t *testing.T) {
	b := runBuild(t)
	m, err := manifest.Parse(b.files["manifest.json"], manifest.Options{Files: b.has})
	if err != nil {
		t.Fatal(err)
	}
	vendor := httptest.NewServer(psa.Handler(psa.Config{VendorAPIKey: vendorKey}))
	defer vendor.Close()
	// The vendor mock listens on loopback: the platform list names it
	// literally, which the test host also lets through to private addresses.
	host := &testHost{Host: runnertest.NewHost(t, runnertest.Config{Egress: []string{vendor.URL}})}
	host.SetSecret("VENDOR_API_KEY", vendorKey)
	start := time.Now()
	// The engine links only the alga and WASI imports: a module importing
	// anything else fails every call below with bad_handler.
	module := host.Compile(t, b.files["dist/main.wasm"])
	t.Logf("wasmtime compile of dist/main.wasm: %v", time.Since(start).Round(time.Millisecond))
	cfg := map[string]string{"vendor_url": vendor.URL}
	call := func(method, pattern, path string, query, params map[string]string) (guestResponse, map[string]any) {
		return invoke(t, host, module, request(m, method, pattern, path, query, params, cfg))
	}

	steps := []struct {
		name   string
		do     func() (guestResponse, map[string]any)
		status int
		check  func(body map[string]any) error
	}{
		{"list before sync is empty with synced_at null", func() (guestResponse, map[string]any) {
			return call("GET", "/agreements", "/agreements", nil, nil)
		}, 200, func(body map[string]any) error {
			if body["total"] != 0.0 || body["synced_at"] != nil || len(body["items"].([]any)) != 0 {
				return fmt.Errorf("body %v", body)
			}
			return nil
		}},
		{"sync pulls 23 agreements from the vendor through http.fetch", func() (guestResponse, map[string]any) {
			return call("POST", "/agreements/sync", "/agreements/sync", nil, nil)
		}, 200, func(body map[string]any) error {
			if body["synced"] != 23.0 {
				return fmt.Errorf("body %v", body)
			}
			return nil
		}},
		{"list pages through what sync stored", func() (guestResponse, map[string]any) {
			return call("GET", "/agreements", "/agreements", map[string]string{"page": "2", "page_size": "10"}, nil)
		}, 200, func(body map[string]any) error {
			items := body["items"].([]any)
			if body["total"] != 23.0 || body["page"] != 2.0 || len(items) != 10 ||
				items[0].(map[string]any)["id"] != "AGR-1011" || body["synced_at"] == nil {
				return fmt.Errorf("body %v", body)
			}
			return nil
		}},
		{"get returns one agreement", func() (guestResponse, map[string]any) {
			return call("GET", "/agreements/:id", "/agreements/AGR-1005", nil, map[string]string{"id": "AGR-1005"})
		}, 200, func(body map[string]any) error {
			if body["id"] != "AGR-1005" || body["monthly_amount"] != 335.0 {
				return fmt.Errorf("body %v", body)
			}
			return nil
		}},
		{"get of an unknown id is 404 not_found", func() (guestResponse, map[string]any) {
			return call("GET", "/agreements/:id", "/agreements/NOPE", nil, map[string]string{"id": "NOPE"})
		}, 404, errorCodeIs("not_found")},
		{"sync with a wrong API key is 502 vendor_error", func() (guestResponse, map[string]any) {
			host.SetSecret("VENDOR_API_KEY", "wrong")
			return call("POST", "/agreements/sync", "/agreements/sync", nil, nil)
		}, 502, errorCodeIs("vendor_error")},
		{"sync without the secret is secret_missing", func() (guestResponse, map[string]any) {
			host.SetSecret("VENDOR_API_KEY", "")
			return call("POST", "/agreements/sync", "/agreements/sync", nil, nil)
		}, 500, errorCodeIs("secret_missing")},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			resp, body := st.do()
			if resp.Status != st.status || resp.Headers["content-type"] != "application/json" {
				t.Fatalf("status %d headers %v body %v, want %d", resp.Status, resp.Headers, body, st.status)
			}
			if err := st.check(body); err != nil {
				t.Fatal(err)
			}
		})
	}
	if !containsLog(host.Logs, "info: synced 23 agreements") {
		t.Errorf("sync did not log through log_info: %q", host.Logs)
	}
}

// testHost is the runner's test host plus the log lines of every call so
// far ("level: message").
type testHost struct {
	*runnertest.Host
	Logs []string
}

func errorCodeIs(code string) func(map[string]any) error {
	return func(body map[string]any) error {
		e, _ := body["error"].(map[string]any)
		if e["code"] != code || e["message"] == "" {
			return fmt.Errorf("body %v, want error code %s", body, code)
		}
		return nil
	}
}

func containsLog(logs []string, s string) bool {
	for _, l := range logs {
		if l == s {
			return true
		}
	}
	return false
}
