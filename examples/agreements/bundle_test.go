// Package agreements_test builds the sample extension with its own
// build.sh, checks the signed bundle the way registryd and runnerd do
// (bundle rules, manifest, handler resolution, signature), and runs the
// handlers inside wasmtime against a fake `alga` host whose http.fetch
// reaches the demo's real vendor mock.
package agreements_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/devstack/psa"
	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/signing"
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

// algaHost is a fake runner host for the wasm tests: KV in memory,
// secrets from a map, http.fetch performed for real against the allowed
// host only.
type algaHost struct {
	mu      sync.Mutex
	kv      map[string]kvRec
	secrets map[string]string
	allowed string // host:port http.fetch may reach
	logs    []string
}

type kvRec struct {
	value    json.RawMessage
	revision int64
}

func hostError(code, msg string) ([]byte, int32) {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	return b, 1
}

func (h *algaHost) secret(req []byte) ([]byte, int32) {
	var r struct{ Key string }
	json.Unmarshal(req, &r)
	h.mu.Lock()
	v, ok := h.secrets[r.Key]
	h.mu.Unlock()
	if !ok {
		return hostError("not_found", "no secret "+r.Key)
	}
	b, _ := json.Marshal(map[string]string{"value": v})
	return b, 0
}

func (h *algaHost) fetch(req []byte) ([]byte, int32) {
	var r struct {
		URL       string            `json:"url"`
		Method    string            `json:"method"`
		Headers   map[string]string `json:"headers"`
		TimeoutMS int               `json:"timeout_ms"`
	}
	if err := json.Unmarshal(req, &r); err != nil {
		return hostError("validation_failed", err.Error())
	}
	u, err := url.Parse(r.URL)
	if err != nil || u.Host == "" {
		return hostError("invalid_url", "bad url")
	}
	if u.Host != h.allowed {
		return hostError("egress_denied", "host "+u.Host+" is not allowed")
	}
	hr, _ := http.NewRequest(cmpOr(r.Method, "GET"), r.URL, nil)
	for k, v := range r.Headers {
		hr.Header.Set(k, v)
	}
	client := &http.Client{Timeout: time.Duration(r.TimeoutMS) * time.Millisecond}
	resp, err := client.Do(hr)
	if err != nil {
		return hostError("transport", err.Error())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	b, _ := json.Marshal(map[string]any{"status": resp.StatusCode,
		"headers": map[string]string{"content-type": resp.Header.Get("Content-Type")}, "body_b64": body})
	return b, 0
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (h *algaHost) storage(op string, req []byte) ([]byte, int32) {
	var r struct {
		Namespace string          `json:"namespace"`
		Key       string          `json:"key"`
		Value     json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(req, &r); err != nil || r.Namespace == "" || r.Key == "" {
		return hostError("validation_failed", "bad storage request")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	k := r.Namespace + "\x00" + r.Key
	cur, exists := h.kv[k]
	item := func(rec kvRec) ([]byte, int32) {
		b, _ := json.Marshal(map[string]any{"item": map[string]any{"namespace": r.Namespace, "key": r.Key,
			"value": rec.value, "revision": rec.revision}})
		return b, 0
	}
	switch op {
	case "get":
		if !exists {
			return hostError("not_found", "no record")
		}
		return item(cur)
	case "put":
		cur = kvRec{value: r.Value, revision: cur.revision + 1}
		h.kv[k] = cur
		return item(cur)
	case "delete":
		if !exists {
			return hostError("not_found", "no record")
		}
		delete(h.kv, k)
		return []byte(`{"deleted":true}`), 0
	}
	return hostError("validation_failed", "unsupported op "+op)
}

// linker defines the alga imports the way runnerd does: requests are read
// from guest memory, replies written through the guest's alloc.
func (h *algaHost) linker(t *testing.T, engine *wasmtime.Engine) *wasmtime.Linker {
	t.Helper()
	l := wasmtime.NewLinker(engine)
	if err := l.DefineWasi(); err != nil {
		t.Fatal(err)
	}
	memOf := func(c *wasmtime.Caller) []byte { return c.GetExport("memory").Memory().UnsafeData(c) }
	read := func(c *wasmtime.Caller, ptr, n int32) ([]byte, *wasmtime.Trap) {
		data := memOf(c)
		if ptr < 0 || n < 0 || int64(ptr)+int64(n) > int64(len(data)) {
			return nil, wasmtime.NewTrap("pointer outside guest memory")
		}
		return append([]byte(nil), data[ptr:ptr+n]...), nil
	}
	jsonImport := func(fn func([]byte) ([]byte, int32)) any {
		return func(c *wasmtime.Caller, reqPtr, reqLen, outPtr int32) (int32, *wasmtime.Trap) {
			req, trap := read(c, reqPtr, reqLen)
			if trap != nil {
				return 0, trap
			}
			reply, status := fn(req)
			v, err := c.GetExport("alloc").Func().Call(c, int32(len(reply)))
			if err != nil {
				return 0, wasmtime.NewTrap("guest alloc: " + err.Error())
			}
			ptr := v.(int32)
			data := memOf(c)
			if int64(ptr)+int64(len(reply)) > int64(len(data)) || outPtr < 0 || int64(outPtr)+8 > int64(len(data)) {
				return 0, wasmtime.NewTrap("reply outside guest memory")
			}
			copy(data[ptr:], reply)
			binary.LittleEndian.PutUint32(data[outPtr:], uint32(ptr))
			binary.LittleEndian.PutUint32(data[outPtr+4:], uint32(len(reply)))
			return status, nil
		}
	}
	imports := map[string]any{
		"http.fetch":     jsonImport(h.fetch),
		"secrets.get":    jsonImport(h.secret),
		"storage.get":    jsonImport(func(b []byte) ([]byte, int32) { return h.storage("get", b) }),
		"storage.put":    jsonImport(func(b []byte) ([]byte, int32) { return h.storage("put", b) }),
		"storage.delete": jsonImport(func(b []byte) ([]byte, int32) { return h.storage("delete", b) }),
		"storage.list":   jsonImport(func(b []byte) ([]byte, int32) { return hostError("capability_denied", "not in this fake") }),
		"metrics.emit":   jsonImport(func([]byte) ([]byte, int32) { return []byte(`{}`), 0 }),
	}
	for _, level := range []string{"info", "warn", "error"} {
		imports["log_"+level] = func(c *wasmtime.Caller, ptr, n int32) *wasmtime.Trap {
			msg, trap := read(c, ptr, n)
			if trap != nil {
				return trap
			}
			h.mu.Lock()
			h.logs = append(h.logs, level+": "+string(msg))
			h.mu.Unlock()
			return nil
		}
	}
	for name, fn := range imports {
		if err := l.FuncWrap("alga", name, fn); err != nil {
			t.Fatalf("defining alga %s: %v", name, err)
		}
	}
	return l
}

type guestResponse struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    []byte            `json:"body_b64"`
}

// invoke runs one call on a fresh instance (SPEC §5.1): _initialize,
// alloc+copy the request, alloc the out area, handler, read the response.
func invoke(t *testing.T, engine *wasmtime.Engine, linker *wasmtime.Linker, module *wasmtime.Module, req any) (guestResponse, map[string]any) {
	t.Helper()
	store := wasmtime.NewStore(engine)
	defer store.Close()
	store.Limiter(64<<20, -1, -1, -1, -1)
	store.SetWasi(wasmtime.NewWasiConfig())
	inst, err := linker.Instantiate(store, module)
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	if _, err := inst.GetFunc(store, "_initialize").Call(store); err != nil {
		t.Fatalf("_initialize: %v", err)
	}
	mem := inst.GetExport(store, "memory").Memory()
	alloc := inst.GetFunc(store, "alloc")
	raw, _ := json.Marshal(req)
	v, err := alloc.Call(store, int32(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	reqPtr := v.(int32)
	copy(mem.UnsafeData(store)[reqPtr:], raw)
	v, err = alloc.Call(store, int32(8))
	if err != nil {
		t.Fatal(err)
	}
	outPtr := v.(int32)
	v, err = inst.GetFunc(store, "handler").Call(store, reqPtr, int32(len(raw)), outPtr)
	if err != nil {
		t.Fatalf("handler trapped: %v", err)
	}
	if code := v.(int32); code != 0 {
		t.Fatalf("handler returned %d (handler_error)", code)
	}
	data := mem.UnsafeData(store)
	ptr, n := binary.LittleEndian.Uint32(data[outPtr:]), binary.LittleEndian.Uint32(data[outPtr+4:])
	if uint64(ptr)+uint64(n) > uint64(len(data)) {
		t.Fatalf("response (%d,%d) out of bounds", ptr, n)
	}
	var resp guestResponse
	if err := json.Unmarshal(data[ptr:ptr+n], &resp); err != nil {
		t.Fatalf("response is not JSON: %v", err)
	}
	var body map[string]any
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		t.Fatalf("body is not a JSON object: %q", resp.Body)
	}
	return resp, body
}

// request builds the envelope the runner sends for a manifest endpoint.
func request(m *manifest.Manifest, method, pattern, path string, query, params map[string]string, config any) map[string]any {
	handler := ""
	for _, ep := range m.API.Endpoints {
		if ep.Method == method && ep.Path == pattern {
			handler = ep.Handler
		}
	}
	return map[string]any{
		"context": map[string]string{"request_id": "r-1", "tenant_id": "t-1", "extension_id": m.Name,
			"install_id": "i-1", "version_id": "v-1", "content_hash": "sha256:00"},
		"http":     map[string]any{"method": method, "path": path, "query": query, "headers": map[string]string{}},
		"endpoint": map[string]any{"method": method, "path": pattern, "handler": handler, "params": params},
		"config":   config,
	}
}

func TestHandlersRunInWasm(t *testing.T) {
	b := runBuild(t)
	m, err := manifest.Parse(b.files["manifest.json"], manifest.Options{Files: b.has})
	if err != nil {
		t.Fatal(err)
	}
	engine := wasmtime.NewEngine()
	start := time.Now()
	module, err := wasmtime.NewModule(engine, b.files["dist/main.wasm"])
	if err != nil {
		t.Fatalf("compiling dist/main.wasm: %v", err)
	}
	t.Logf("wasmtime compile of dist/main.wasm: %v", time.Since(start).Round(time.Millisecond))
	for _, imp := range module.Imports() {
		if imp.Module() != "alga" && imp.Module() != "wasi_snapshot_preview1" {
			t.Errorf("unexpected import %s.%s", imp.Module(), *imp.Name())
		}
	}

	vendor := httptest.NewServer(psa.Handler(psa.Config{VendorAPIKey: vendorKey}))
	defer vendor.Close()
	vu, _ := url.Parse(vendor.URL)
	host := &algaHost{kv: map[string]kvRec{}, secrets: map[string]string{"VENDOR_API_KEY": vendorKey}, allowed: vu.Host}
	linker := host.linker(t, engine)
	cfg := map[string]string{"vendor_url": vendor.URL}
	call := func(method, pattern, path string, query, params map[string]string) (guestResponse, map[string]any) {
		return invoke(t, engine, linker, module, request(m, method, pattern, path, query, params, cfg))
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
			host.mu.Lock()
			host.secrets["VENDOR_API_KEY"] = "wrong"
			host.mu.Unlock()
			return call("POST", "/agreements/sync", "/agreements/sync", nil, nil)
		}, 502, errorCodeIs("vendor_error")},
		{"sync without the secret is secret_missing", func() (guestResponse, map[string]any) {
			host.mu.Lock()
			delete(host.secrets, "VENDOR_API_KEY")
			host.mu.Unlock()
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
	if !containsLog(host.logs, "info: synced 23 agreements") {
		t.Errorf("sync did not log through log_info: %q", host.logs)
	}
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
