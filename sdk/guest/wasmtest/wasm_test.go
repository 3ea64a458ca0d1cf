// Package wasmtest_test builds guests with the SDK for GOOS=wasip1 and runs
// them on the runner's real engine and host capabilities
// (runnerd/runnertest); the ABI-level tests that drive one instance call by
// call (SPEC §5.1) use wasmtime directly with host imports that trap. It
// lives in its own package so the SDK itself stays free of dependencies.
package wasmtest_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/runnerd/engine"
	"github.com/extedge/extedge/runnerd/hostapi"
	"github.com/extedge/extedge/runnerd/runnertest"
)

// moduleRoot is the directory holding go.mod.
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

var (
	buildMu sync.Mutex
	built   = map[string]string{}
	tmpDir  string
)

func TestMain(m *testing.M) {
	var err error
	tmpDir, err = os.MkdirTemp("", "wasmtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpDir)
	os.Exit(code)
}

// buildGuest compiles the package at rel (relative to the module root) the
// way extension authors are told to: a wasip1 reactor.
func buildGuest(t testing.TB, rel string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[rel]; ok {
		return p
	}
	out := filepath.Join(tmpDir, strings.ReplaceAll(rel, "/", "_")+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, "./"+rel)
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s for wasip1: %v\n%s", rel, err, b)
	}
	built[rel] = out
	return out
}

// vendor is the test's vendor API, reached through the real http.fetch:
// /items needs the secret as a bearer token, /blob returns size bytes of
// one letter.
type vendor struct {
	URL     string
	mu      sync.Mutex
	headers []http.Header
}

func newVendor(t testing.TB) *vendor {
	v := &vendor{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.mu.Lock()
		v.headers = append(v.headers, r.Header.Clone())
		v.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/items":
			if r.Header.Get("Authorization") != "Bearer k-123" {
				w.Write([]byte(`["unauthorized"]`))
				return
			}
			w.Write([]byte(`["a","b","page-` + r.URL.Query().Get("page") + `"]`))
		case "/blob":
			size, _ := strconv.Atoi(r.URL.Query().Get("size"))
			fill, _ := strconv.Atoi(r.URL.Query().Get("fill"))
			w.Write([]byte(strings.Repeat(string(rune('a'+fill)), size)))
		}
	}))
	t.Cleanup(srv.Close)
	v.URL = srv.URL
	return v
}

// testHost is the runner's test host with the vendor allowed, the secret
// api_key set, and the log lines ("level: message") and metric samples of
// every call so far.
type testHost struct {
	*runnertest.Host
	vendor  *vendor
	logs    []string
	metrics []hostapi.Metric
}

func newTestHost(t testing.TB) *testHost {
	v := newVendor(t)
	h := &testHost{Host: runnertest.NewHost(t, runnertest.Config{Egress: []string{v.URL},
		// These tests check the ABI and the SDK, not speed: 100 real
		// 256 KiB fetches take 2–6 s under -race on 2 cores.
		Limits: engine.Limits{Timeout: 60 * time.Second}}), vendor: v}
	h.SetSecret("api_key", "k-123")
	return h
}

// run calls the handler on a fresh instance of m.
func (h *testHost) run(t testing.TB, m *engine.Module, env *execapi.Request) *runnertest.Call {
	t.Helper()
	call := h.Run(t, m, env)
	for _, l := range call.Report.Logs {
		h.logs = append(h.logs, l.Level+": "+l.Message)
	}
	h.metrics = append(h.metrics, call.Report.Metrics...)
	return call
}

// trappingLinker links WASI and, for every alga import of module, a
// function that traps: the ABI tests below never make host calls.
func trappingLinker(t testing.TB, engine *wasmtime.Engine, module *wasmtime.Module) *wasmtime.Linker {
	t.Helper()
	l := wasmtime.NewLinker(engine)
	if err := l.DefineWasi(); err != nil {
		t.Fatal(err)
	}
	for _, imp := range module.Imports() {
		if imp.Module() != "alga" {
			continue
		}
		name := *imp.Name()
		err := l.FuncNew("alga", name, imp.Type().FuncType(), func(*wasmtime.Caller, []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
			return nil, wasmtime.NewTrap("host call " + name + " in an ABI test")
		})
		if err != nil {
			t.Fatalf("defining alga %s: %v", name, err)
		}
	}
	return l
}

// instance is one guest instance, set up as the runner does it.
type instance struct {
	store *wasmtime.Store
	inst  *wasmtime.Instance
	mem   *wasmtime.Memory
	// how long instantiation and _initialize took
	instantiateTime, initTime time.Duration
}

const memoryLimit = 64 << 20 // SPEC §5.4 default

func instantiate(t testing.TB, engine *wasmtime.Engine, linker *wasmtime.Linker, module *wasmtime.Module) *instance {
	t.Helper()
	store := wasmtime.NewStore(engine)
	store.Limiter(memoryLimit, -1, -1, -1, -1)
	store.SetWasi(wasmtime.NewWasiConfig()) // no preopens, env or args
	start := time.Now()
	inst, err := linker.Instantiate(store, module)
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	init := inst.GetFunc(store, "_initialize")
	if init == nil {
		t.Fatal("guest does not export _initialize")
	}
	instantiated := time.Now()
	if _, err := init.Call(store); err != nil {
		t.Fatalf("_initialize: %v", err)
	}
	return &instance{store: store, inst: inst, mem: inst.GetExport(store, "memory").Memory(),
		instantiateTime: instantiated.Sub(start), initTime: time.Since(instantiated)}
}

func (g *instance) call(name string, args ...any) (any, error) {
	f := g.inst.GetFunc(g.store, name)
	if f == nil {
		return nil, fmt.Errorf("guest does not export %s", name)
	}
	return f.Call(g.store, args...)
}

func (g *instance) alloc(t testing.TB, n int) int32 {
	t.Helper()
	v, err := g.call("alloc", int32(n))
	if err != nil {
		t.Fatalf("alloc(%d): %v", n, err)
	}
	return v.(int32)
}

// pressure makes the guest allocate and collect while the host holds
// buffers, so a buffer the SDK failed to keep reachable would be reused.
func (g *instance) pressure(t testing.TB) {
	t.Helper()
	for i := 0; i < 8; i++ {
		p := g.alloc(t, 4<<20)
		data := g.mem.UnsafeData(g.store)
		for j := int(p); j < int(p)+4<<20; j += 4096 {
			data[j] = 0xAA
		}
		if _, err := g.call("dealloc", p, int32(4<<20)); err != nil {
			t.Fatal(err)
		}
	}
}

type guestResponse struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    []byte            `json:"body_b64"`
}

// invoke follows SPEC §5.1: alloc+copy the request, alloc the out area,
// call handler, read (ptr,len) with bounds checks, parse, dealloc all three.
func (g *instance) invoke(t testing.TB, req any, gcBetween bool) (int32, guestResponse) {
	t.Helper()
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	reqPtr := g.alloc(t, len(raw))
	copy(g.mem.UnsafeData(g.store)[reqPtr:], raw)
	outPtr := g.alloc(t, 8)
	if gcBetween {
		g.pressure(t)
	}
	v, err := g.call("handler", reqPtr, int32(len(raw)), outPtr)
	if err != nil {
		t.Fatalf("handler trapped: %v", err)
	}
	code := v.(int32)
	var resp guestResponse
	var respPtr, respLen uint32
	if code == 0 {
		if gcBetween {
			g.pressure(t)
		}
		data := g.mem.UnsafeData(g.store)
		respPtr = binary.LittleEndian.Uint32(data[outPtr:])
		respLen = binary.LittleEndian.Uint32(data[outPtr+4:])
		if uint64(respPtr)+uint64(respLen) > uint64(len(data)) {
			t.Fatalf("response (%d,%d) out of bounds", respPtr, respLen)
		}
		if err := json.Unmarshal(data[respPtr:respPtr+respLen], &resp); err != nil {
			t.Fatalf("response is not JSON: %v: %q", err, data[respPtr:respPtr+respLen])
		}
	}
	for _, b := range [][2]int32{{reqPtr, int32(len(raw))}, {outPtr, 8}, {int32(respPtr), int32(respLen)}} {
		if b[0] == 0 {
			continue
		}
		if _, err := g.call("dealloc", b[0], b[1]); err != nil {
			t.Fatalf("dealloc: %v", err)
		}
	}
	return code, resp
}

func request(method, path string, query map[string]string, body any) map[string]any {
	req := map[string]any{
		"context": map[string]string{"request_id": "r-1", "tenant_id": "t-1", "extension_id": "e-1",
			"install_id": "i-1", "version_id": "v-1", "content_hash": "sha256:00"},
		"http":     map[string]any{"method": method, "path": path, "query": query, "headers": map[string]string{}},
		"endpoint": map[string]any{"method": method, "path": "", "handler": "", "params": map[string]string{}},
		"user":     map[string]string{"id": "u-1", "name": "Ann"},
	}
	if body != nil {
		b, _ := json.Marshal(body)
		req["http"].(map[string]any)["body_b64"] = b
	}
	return req
}

type loaded struct {
	engine  *wasmtime.Engine
	module  *wasmtime.Module
	size    int64
	compile time.Duration
}

var (
	loadMu  sync.Mutex
	modules = map[string]loaded{}
)

// loadModule builds and compiles a guest once per test binary; compiling a
// Go module takes seconds, instantiating it milliseconds.
func loadModule(t testing.TB, rel string) (*wasmtime.Engine, *wasmtime.Module, int64, time.Duration) {
	t.Helper()
	loadMu.Lock()
	defer loadMu.Unlock()
	if m, ok := modules[rel]; ok {
		return m.engine, m.module, m.size, m.compile
	}
	path := buildGuest(t, rel)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	engine := wasmtime.NewEngine()
	start := time.Now()
	module, err := wasmtime.NewModuleFromFile(engine, path)
	if err != nil {
		t.Fatalf("compiling %s: %v", rel, err)
	}
	m := loaded{engine, module, st.Size(), time.Since(start)}
	modules[rel] = m
	return m.engine, m.module, m.size, m.compile
}

func TestGuestModuleShape(t *testing.T) {
	_, module, _, _ := loadModule(t, "examples/hello")
	exports := map[string]bool{}
	for _, e := range module.Exports() {
		exports[e.Name()] = true
	}
	for _, name := range []string{"memory", "alloc", "dealloc", "handler", "_initialize"} {
		if !exports[name] {
			t.Errorf("module does not export %s", name)
		}
	}
	var alga []string
	for _, imp := range module.Imports() {
		if imp.Module() == "alga" {
			alga = append(alga, *imp.Name())
		} else if imp.Module() != "wasi_snapshot_preview1" {
			t.Errorf("unexpected import %s.%s", imp.Module(), *imp.Name())
		}
	}
	sort.Strings(alga)
	t.Logf("alga imports of hello: %v", alga)
}

// envelope turns a request built by request into the runner's execute
// envelope, with the grants the test guests use.
func envelope(t testing.TB, req map[string]any, vendorURL string) *execapi.Request {
	t.Helper()
	if _, ok := req["config"]; !ok {
		req["config"] = map[string]string{}
	}
	req["config"].(map[string]string)["vendor_url"] = vendorURL
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var env execapi.Request
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	env.Capabilities = []string{"http.fetch", "storage.kv", "secrets.get", "user.read"}
	return &env
}

// compileGuest builds rel and compiles it for the test host's engine.
func compileGuest(t testing.TB, h *testHost, rel string) *engine.Module {
	t.Helper()
	wasm, err := os.ReadFile(buildGuest(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return h.Compile(t, wasm)
}

func TestHelloGuest(t *testing.T) {
	_, _, size, compile := loadModule(t, "examples/hello")
	host := newTestHost(t)
	module := compileGuest(t, host, "examples/hello")

	req := request("GET", "/hello", map[string]string{"name": "Ann"}, nil)
	req["endpoint"] = map[string]any{"method": "GET", "path": "/hello", "handler": "dist/hello", "params": map[string]string{}}
	req["config"] = map[string]string{"greeting": "hi"}
	env := envelope(t, req, host.vendor.URL)

	const runs = 20
	var times, insts, calls []time.Duration
	for i := 0; i < runs; i++ {
		start := time.Now()
		call := host.run(t, module, env)
		times = append(times, time.Since(start))
		insts, calls = append(insts, call.Stats.Instantiate), append(calls, call.Stats.Guest)
		if call.Err != nil {
			t.Fatalf("call failed: %v; logs %q", call.Err, host.logs)
		}
		resp := call.Response
		if resp.Status != 200 || resp.Headers["content-type"] != "application/json" {
			t.Fatalf("response %+v", resp)
		}
		var body map[string]string
		if err := json.Unmarshal(resp.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body["message"] != "hi, Ann" || body["request_id"] != "r-1" {
			t.Fatalf("body %v", body)
		}
	}
	if len(host.logs) != runs || host.logs[0] != "info: greeting Ann" {
		t.Fatalf("logs %q", host.logs)
	}
	for _, d := range [][]time.Duration{times, insts, calls} {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	}
	us := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	t.Logf("hello.wasm: %d bytes (%.2f MiB); compile %v", size, float64(size)/(1<<20), compile.Round(time.Millisecond))
	t.Logf("runner call over %d runs: median %v (min %v, max %v); medians: instantiate+_initialize %v, handler %v",
		runs, us(times[runs/2]), us(times[0]), us(times[runs-1]), us(insts[runs/2]), us(calls[runs/2]))
}

func TestSDKGuestInWasm(t *testing.T) {
	host := newTestHost(t)
	module := compileGuest(t, host, "sdk/guest/wasmtest/testdata/guest")

	named := request("GET", "/whatever", nil, nil)
	named["endpoint"] = map[string]any{"handler": "dist/main.wasm#named"}

	tests := []struct {
		name     string
		req      map[string]any
		wantCode int32
		status   int
		check    func(t *testing.T, body []byte)
	}{
		{"handler name routes with .wasm and #export", named, 0, 200, func(t *testing.T, b []byte) {
			if string(b) != "named" {
				t.Fatalf("body %q", b)
			}
		}},
		{"secret and fetch go through the host", request("GET", "/fetch", map[string]string{"page": "3"}, nil), 0, 200, func(t *testing.T, b []byte) {
			if string(b) != `{"items":["a","b","page-3"],"upstream_status":200}` {
				t.Fatalf("body %s", b)
			}
		}},
		{"egress_denied reaches the guest as a HostError", request("GET", "/denied", nil, nil), 0, 502, func(t *testing.T, b []byte) {
			if !strings.Contains(string(b), `"code":"egress_denied"`) {
				t.Fatalf("body %s", b)
			}
		}},
		{"kv put creates revision 1", request("PUT", "/kv/a", map[string]string{"if_revision": "0"}, map[string]int{"n": 1}), 0, 200, func(t *testing.T, b []byte) {
			if string(b) != `{"revision":1}` {
				t.Fatalf("body %s", b)
			}
		}},
		{"kv put with a stale revision is revision_mismatch", request("PUT", "/kv/a", map[string]string{"if_revision": "0"}, 2), 0, 409, func(t *testing.T, b []byte) {
			if !strings.Contains(string(b), `"code":"revision_mismatch"`) {
				t.Fatalf("body %s", b)
			}
		}},
		{"kv get returns the item", request("GET", "/kv/a", nil, nil), 0, 200, func(t *testing.T, b []byte) {
			if string(b) != `{"namespace":"items","key":"a","value":{"n":1},"revision":1}` {
				t.Fatalf("body %s", b)
			}
		}},
		{"kv get of a missing key is not_found", request("GET", "/kv/zz", nil, nil), 0, 404, func(t *testing.T, b []byte) {
			if !strings.Contains(string(b), `"code":"not_found"`) {
				t.Fatalf("body %s", b)
			}
		}},
		{"request body and user reach the handler", request("POST", "/echo", nil, map[string]string{"x": "y"}), 0, 200, func(t *testing.T, b []byte) {
			if string(b) != `{"user":"Ann","x":"y"}` {
				t.Fatalf("body %s", b)
			}
		}},
		{"unmatched path is a 404 not_found", request("GET", "/nowhere", nil, nil), 0, 404, func(t *testing.T, b []byte) {
			if !strings.Contains(string(b), `{"error":{"code":"not_found"`) {
				t.Fatalf("body %s", b)
			}
		}},
		{"handlers may use goroutines and wait for them", request("GET", "/goroutines", map[string]string{"n": "10"}, nil), 0, 200, func(t *testing.T, b []byte) {
			if string(b) != `{"sum":285}` {
				t.Fatalf("body %s", b)
			}
		}},
		{"handlers may sleep", request("GET", "/sleep", nil, nil), 0, 200, func(t *testing.T, b []byte) {
			if string(b) != `{"slept":true}` {
				t.Fatalf("body %s", b)
			}
		}},
		{"handler panic returns 1", request("GET", "/panic", nil, nil), 1, 0, nil},
		{"100 host calls with 256 KiB replies stay intact", request("GET", "/fetch-many", map[string]string{"n": "100"}, nil), 0, 200, func(t *testing.T, b []byte) {
			if string(b) != `{"bytes":26214400,"calls":100}` {
				t.Fatalf("body %s", b)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := host.run(t, module, envelope(t, tt.req, host.vendor.URL))
			// A non-zero handler return is handler_error carrying the code.
			code := int32(0)
			if call.Err != nil {
				var ee *execapi.Error
				if !errors.As(call.Err, &ee) || ee.Code != execapi.CodeHandlerError {
					t.Fatalf("call failed: %v; logs %q", call.Err, host.logs)
				}
				fmt.Sscanf(ee.Message, "handler returned %d", &code)
			}
			if code != tt.wantCode {
				t.Fatalf("handler returned %d, want %d; logs %q", code, tt.wantCode, host.logs)
			}
			if code != 0 {
				return
			}
			resp := call.Response
			if resp.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.Status, tt.status, resp.Body)
			}
			if tt.check != nil {
				tt.check(t, resp.Body)
			}
		})
	}
	if !containsPrefix(host.logs, "error: handler panic: kaboom") {
		t.Errorf("panic not logged: %q", host.logs)
	}
	if !containsPrefix(host.logs, "info: fetched 3 items") {
		t.Errorf("Log.Infof not received: %q", host.logs)
	}
	if len(host.metrics) != 1 || fmt.Sprint(host.metrics[0]) != fmt.Sprint(hostapi.Metric{Name: "items_fetched", Kind: "counter", Value: 3, Labels: map[string]string{"src": "vendor"}}) {
		t.Errorf("metrics %+v", host.metrics)
	}
	if got := host.vendor.headers[0].Get("Authorization"); got != "Bearer k-123" {
		t.Errorf("fetch authorization header %q", got)
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// The host reads the request after alloc and the response after handler
// returns; garbage collections in between must not reclaim either buffer.
func TestBuffersSurviveGuestGC(t *testing.T) {
	engine, module, _, _ := loadModule(t, "sdk/guest/wasmtest/testdata/guest")
	g := instantiate(t, engine, trappingLinker(t, engine, module), module)
	for i := 0; i < 3; i++ {
		n := 100000 + i
		code, resp := g.invoke(t, request("GET", "/big", map[string]string{"n": strconv.Itoa(n)}, nil), true)
		if code != 0 || resp.Status != 200 || string(resp.Body) != strings.Repeat("b", n) {
			t.Fatalf("call %d: code %d status %d len %d", i, code, resp.Status, len(resp.Body))
		}
	}
}

// With instance reuse, dealloc must release responses: 200 responses of
// 1 MiB would not fit in the 64 MiB memory cap if they were kept.
func TestDeallocReleasesResponses(t *testing.T) {
	engine, module, _, _ := loadModule(t, "sdk/guest/wasmtest/testdata/guest")
	g := instantiate(t, engine, trappingLinker(t, engine, module), module)
	for i := 0; i < 200; i++ {
		code, resp := g.invoke(t, request("GET", "/big", map[string]string{"n": strconv.Itoa(1 << 20)}, nil), false)
		if code != 0 || len(resp.Body) != 1<<20 {
			t.Fatalf("call %d: code %d len %d", i, code, len(resp.Body))
		}
	}
	t.Logf("guest memory after 200 calls with 1 MiB responses: %d MiB", g.mem.DataSize(g.store)>>20)
}

// Pointers that alloc never returned are refused with return code 3
// (handler_error) instead of being read.
func TestUnknownPointersReturn3(t *testing.T) {
	engine, module, _, _ := loadModule(t, "examples/hello")
	g := instantiate(t, engine, trappingLinker(t, engine, module), module)
	out := g.alloc(t, 8)
	tests := []struct {
		name                   string
		reqPtr, reqLen, outPtr int32
	}{
		{"request pointer never allocated", 1 << 20, 16, out},
		{"negative request pointer", -8, 16, out},
		{"out pointer never allocated", out, 8, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := g.call("handler", tt.reqPtr, tt.reqLen, tt.outPtr)
			if err != nil {
				t.Fatalf("handler trapped: %v", err)
			}
			if v.(int32) != 3 {
				t.Fatalf("handler returned %d, want 3", v)
			}
		})
	}
}

// BenchmarkHelloInstantiateAndCall measures what a cold call costs the
// runner's engine once the module is compiled: a fresh store and instance,
// _initialize, and one alloc/handler/dealloc round with real host units.
func BenchmarkHelloInstantiateAndCall(b *testing.B) {
	host := newTestHost(b)
	module := compileGuest(b, host, "examples/hello")
	req := request("GET", "/hello", map[string]string{"name": "Ann"}, nil)
	req["endpoint"] = map[string]any{"method": "GET", "path": "/hello", "handler": "dist/hello"}
	env := envelope(b, req, host.vendor.URL)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if call := host.Run(b, module, env); call.Err != nil || call.Response.Status != 200 {
			b.Fatalf("call %v %+v", call.Err, call.Response)
		}
	}
}
