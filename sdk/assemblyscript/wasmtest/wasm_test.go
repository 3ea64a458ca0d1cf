package wasmtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/runnerd/engine"
	"github.com/extedge/extedge/runnerd/runnertest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func repoPath(t testing.TB, rel string) string {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, filepath.FromSlash(rel))
}

func testGuest(t testing.TB) []byte { return testenv.AssemblyScript(t, "testdata/guest") }

// vendor is the vendor API the guest reaches through the real http.fetch:
// /items needs the secret as a bearer token, /echo answers the request's
// method, content type and body.
func newVendor(t testing.TB) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/items":
			if r.Header.Get("Authorization") != "Bearer k-123" {
				w.Write([]byte(`["unauthorized"]`))
				return
			}
			w.Write([]byte(`["a","b","page-` + r.URL.Query().Get("page") + `"]`))
		case "/echo":
			var body any
			json.NewDecoder(r.Body).Decode(&body)
			json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "content_type": r.Header.Get("Content-Type"), "body": body})
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

type fixture struct {
	host   *runnertest.Host
	mod    *engine.Module
	vendor string
}

var fixMu sync.Mutex

func newFixture(t testing.TB, lim engine.Limits) *fixture {
	t.Helper()
	fixMu.Lock()
	defer fixMu.Unlock()
	vendor := newVendor(t)
	h := runnertest.NewHost(t, runnertest.Config{Egress: []string{vendor}, Limits: lim})
	h.SetSecret("api_key", "k-123")
	return &fixture{host: h, mod: h.Compile(t, testGuest(t)), vendor: vendor}
}

// env is an execute envelope for method and path with the grants given
// (none when caps is nil: log and metrics are always granted).
func (f *fixture) env(method, path, body string, caps ...string) *execapi.Request {
	env := &execapi.Request{
		Context: execapi.Context{RequestID: "r-1", TenantID: "t-1", ExtensionID: "com.example.astest",
			InstallID: "i-1", VersionID: "v-1", ContentHash: "sha256:00"},
		HTTP:         execapi.HTTPRequest{Method: method, Path: path, Query: map[string]string{}, Headers: map[string]string{"x-test": "hdr"}},
		Endpoint:     execapi.Endpoint{Method: method, Handler: "dist/main", Params: map[string]string{}},
		Config:       json.RawMessage(`{"vendor_url":"` + f.vendor + `"}`),
		User:         &execapi.User{ID: "u-1", Name: "Ann"},
		Capabilities: caps,
	}
	if p, q, ok := strings.Cut(path, "?"); ok {
		env.HTTP.Path = p
		for _, kv := range strings.Split(q, "&") {
			k, v, _ := strings.Cut(kv, "=")
			env.HTTP.Query[k] = v
		}
	}
	if body != "" {
		env.HTTP.Body = []byte(body)
	}
	return env
}

var allCaps = []string{"http.fetch", "storage.kv", "secrets.get", "user.read"}

// call runs one request and decodes the JSON body into out (when not nil).
func (f *fixture) call(t *testing.T, env *execapi.Request, out any) *runnertest.Call {
	t.Helper()
	c := f.host.Run(t, f.mod, env)
	if c.Err != nil {
		return c
	}
	if out != nil {
		if err := json.Unmarshal(c.Response.Body, out); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v: %q", env.HTTP.Method, env.HTTP.Path, err, c.Response.Body)
		}
	}
	return c
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func codeOf(err error) string {
	if ee, ok := err.(*execapi.Error); ok {
		return ee.Code
	}
	if err != nil {
		return "not an execapi error: " + err.Error()
	}
	return ""
}

func logLines(c *runnertest.Call) []string {
	var out []string
	for _, l := range c.Report.Logs {
		out = append(out, l.Level+": "+l.Message)
	}
	return out
}

// TestGuestOnRunner drives every host import through the SDK on the real
// engine, with the production host units.
func TestGuestOnRunner(t *testing.T) {
	f := newFixture(t, engine.Limits{})

	t.Run("fetch with a secret, a log line and a counter", func(t *testing.T) {
		var out struct {
			UpstreamStatus int      `json:"upstream_status"`
			ContentType    string   `json:"content_type"`
			Items          []string `json:"items"`
		}
		c := f.call(t, f.env("GET", "/fetch?page=2", "", allCaps...), &out)
		if c.Err != nil {
			t.Fatal(c.Err)
		}
		if c.Response.Status != 200 || out.UpstreamStatus != 200 || out.ContentType != "application/json" ||
			strings.Join(out.Items, ",") != "a,b,page-2" {
			t.Fatalf("response %d %s", c.Response.Status, c.Response.Body)
		}
		if got := logLines(c); len(got) != 1 || got[0] != "info: fetched 3 items" {
			t.Fatalf("logs %v", got)
		}
		if len(c.Report.Metrics) != 1 || c.Report.Metrics[0].Name != "items_fetched" || c.Report.Metrics[0].Kind != "counter" ||
			c.Report.Metrics[0].Value != 3 || c.Report.Metrics[0].Labels["src"] != "vendor" {
			t.Fatalf("metrics %+v", c.Report.Metrics)
		}
	})
	t.Run("fetch sends method, headers, body and timeout", func(t *testing.T) {
		var out struct {
			Method      string         `json:"method"`
			ContentType string         `json:"content_type"`
			Body        map[string]any `json:"body"`
		}
		c := f.call(t, f.env("POST", "/upstream", "", allCaps...), &out)
		if c.Err != nil {
			t.Fatal(c.Err)
		}
		if out.Method != "POST" || out.ContentType != "application/json" || out.Body["hello"] != "vendor" {
			t.Fatalf("upstream saw %+v", out)
		}
	})
	t.Run("egress outside the allowlist is egress_denied", func(t *testing.T) {
		var out errorBody
		c := f.call(t, f.env("GET", "/denied", "", allCaps...), &out)
		if c.Err != nil || c.Response.Status != 502 || out.Error.Code != "egress_denied" {
			t.Fatalf("%v %d %s", c.Err, c.Response.Status, c.Response.Body)
		}
	})
	t.Run("kv put get list delete with revisions", func(t *testing.T) {
		var rev struct{ Revision int }
		if c := f.call(t, f.env("PUT", "/kv/a", `{"n":1,"s":"x\"y"}`, allCaps...), &rev); c.Err != nil || rev.Revision != 1 {
			t.Fatalf("put: %v %+v %s", c.Err, rev, c.Response.Body)
		}
		if c := f.call(t, f.env("PUT", "/kv/a?if_revision=1", `{"n":2}`, allCaps...), &rev); c.Err != nil || rev.Revision != 2 {
			t.Fatalf("conditional put: %v %s", c.Err, c.Response.Body)
		}
		var mismatch errorBody
		if c := f.call(t, f.env("PUT", "/kv/a?if_revision=1", `{"n":3}`, allCaps...), &mismatch); c.Response.Status != 409 || mismatch.Error.Code != "revision_mismatch" {
			t.Fatalf("stale put: %d %s", c.Response.Status, c.Response.Body)
		}
		f.call(t, f.env("PUT", "/kv/b", `[true,null]`, allCaps...), nil)
		var item struct {
			Namespace, Key string
			Value          map[string]any
			Revision       int
		}
		if c := f.call(t, f.env("GET", "/kv/a", "", allCaps...), &item); c.Err != nil || item.Namespace != "items" || item.Key != "a" ||
			item.Value["n"] != 2.0 || item.Revision != 2 {
			t.Fatalf("get: %v %s", c.Err, c.Response.Body)
		}
		var page struct {
			Keys       []string `json:"keys"`
			NextCursor string   `json:"next_cursor"`
		}
		if c := f.call(t, f.env("GET", "/kv", "", allCaps...), &page); c.Err != nil || strings.Join(page.Keys, ",") != "a,b" {
			t.Fatalf("list: %v %s", c.Err, c.Response.Body)
		}
		var del struct{ Deleted bool }
		if c := f.call(t, f.env("DELETE", "/kv/a", "", allCaps...), &del); c.Err != nil || !del.Deleted {
			t.Fatalf("delete: %v %s", c.Err, c.Response.Body)
		}
		var missing errorBody
		if c := f.call(t, f.env("GET", "/kv/a", "", allCaps...), &missing); c.Response.Status != 404 || missing.Error.Code != "not_found" {
			t.Fatalf("get after delete: %d %s", c.Response.Status, c.Response.Body)
		}
	})
	t.Run("secrets get and a missing secret", func(t *testing.T) {
		var out struct{ Length int }
		if c := f.call(t, f.env("GET", "/secret/api_key", "", allCaps...), &out); c.Err != nil || out.Length != len("k-123") {
			t.Fatalf("secret: %v %s", c.Err, c.Response.Body)
		}
		var missing errorBody
		if c := f.call(t, f.env("GET", "/secret/nope", "", allCaps...), &missing); c.Response.Status != 404 || missing.Error.Code != "not_found" {
			t.Fatalf("missing secret: %d %s", c.Response.Status, c.Response.Body)
		}
	})
	t.Run("log levels and a gauge", func(t *testing.T) {
		c := f.call(t, f.env("GET", "/logs", ""), nil)
		if c.Err != nil || c.Response.Status != 204 {
			t.Fatalf("%v %+v", c.Err, c.Response)
		}
		if got := strings.Join(logLines(c), "|"); got != "info: info line|warn: warn line|error: error line" {
			t.Fatalf("logs %s", got)
		}
		if len(c.Report.Metrics) != 1 || c.Report.Metrics[0].Kind != "gauge" || c.Report.Metrics[0].Value != 2.5 {
			t.Fatalf("metrics %+v", c.Report.Metrics)
		}
	})
	t.Run("capabilities not granted are capability_denied and the guest answers", func(t *testing.T) {
		for _, tc := range []struct{ method, path, body string }{
			{"GET", "/kv/a", ""}, {"PUT", "/kv/a", `{}`}, {"DELETE", "/kv/a", ""}, {"GET", "/kv", ""},
			{"GET", "/secret/api_key", ""}, {"GET", "/fetch", ""},
		} {
			var out errorBody
			c := f.call(t, f.env(tc.method, tc.path, tc.body), &out)
			if c.Err != nil || c.Response.Status != 403 || out.Error.Code != "capability_denied" {
				t.Errorf("%s %s without grants: %v %d %s", tc.method, tc.path, c.Err, c.Response.Status, c.Response.Body)
			}
		}
	})
	t.Run("request fields reach the handler and the response keeps status and headers", func(t *testing.T) {
		var out map[string]any
		c := f.call(t, f.env("POST", "/echo/42%2F7", `{"q":"é\u2603","n":[1,2.5,-3e2],"t":true,"z":null}`, allCaps...), &out)
		if c.Err != nil {
			t.Fatal(c.Err)
		}
		if c.Response.Status != 201 || c.Response.Headers["x-echo"] != "1" || c.Response.Headers["content-type"] != "application/json" {
			t.Fatalf("response %d %v", c.Response.Status, c.Response.Headers)
		}
		want := map[string]any{"q": "é☃", "n": []any{1.0, 2.5, -300.0}, "t": true, "z": nil,
			"user": "Ann", "tenant": "t-1", "header": "hdr", "param": "42/7"}
		wb, _ := json.Marshal(want)
		gb, _ := json.Marshal(out)
		if string(wb) != string(gb) {
			t.Fatalf("echo = %s, want %s", gb, wb)
		}
	})
	t.Run("a handler named in the manifest wins over routes", func(t *testing.T) {
		env := f.env("GET", "/anything", "")
		env.Endpoint.Handler = "dist/main.wasm#named"
		c := f.call(t, env, nil)
		if c.Err != nil || string(c.Response.Body) != "named" || c.Response.Headers["content-type"] != "text/plain; charset=utf-8" {
			t.Fatalf("%v %+v", c.Err, c.Response)
		}
	})
	t.Run("routing rules", func(t *testing.T) {
		for _, tc := range []struct{ name, method, path, pattern, want string }{
			{"literal segment beats param", "GET", "/items/special", "", "literal"},
			{"param segment is URL-decoded", "GET", "/items/a%20b", "", "param a b"},
			{"HEAD matches GET routes", "HEAD", "/items/7", "", "param 7"},
			{"star matches any method", "DELETE", "/any", "", "any DELETE"},
			{"endpoint pattern picks the route", "GET", "/items/special", "/items/:id", "param "},
		} {
			env := f.env(tc.method, tc.path, "")
			env.Endpoint.Handler = ""
			env.Endpoint.Path = tc.pattern
			c := f.call(t, env, nil)
			if c.Err != nil || string(c.Response.Body) != tc.want {
				t.Errorf("%s: %s %s = %v %q, want %q", tc.name, tc.method, tc.path, c.Err, c.Response.Body, tc.want)
			}
		}
	})
	t.Run("no matching route is a 404 not_found", func(t *testing.T) {
		var out errorBody
		c := f.call(t, f.env("GET", "/nowhere", ""), &out)
		if c.Err != nil || c.Response.Status != 404 || out.Error.Code != "not_found" {
			t.Fatalf("%v %d %s", c.Err, c.Response.Status, c.Response.Body)
		}
	})
	t.Run("JSON round trip keeps escapes, unicode and numbers", func(t *testing.T) {
		in := `{"a":"q\"b\\s\/\n\t\u0001\ud83d\ude00","b":[0,-1,1.5,1e21,12345678901],"c":{},"d":[],"e":false}`
		c := f.call(t, f.env("POST", "/json", in), nil)
		if c.Err != nil || c.Response.Status != 200 {
			t.Fatalf("%v %+v", c.Err, c.Response)
		}
		var want, got any
		json.Unmarshal([]byte(in), &want)
		if err := json.Unmarshal(c.Response.Body, &got); err != nil {
			t.Fatalf("round trip is not JSON: %q", c.Response.Body)
		}
		wb, _ := json.Marshal(want)
		gb, _ := json.Marshal(got)
		if string(wb) != string(gb) {
			t.Fatalf("round trip %s, want %s", gb, wb)
		}
		deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
		if c := f.call(t, f.env("POST", "/json", deep), nil); c.Err != nil || string(c.Response.Body) != deep {
			t.Errorf("100 levels of nesting: %v %.40q", c.Err, c.Response.Body)
		}
		for _, bad := range []string{`{"a":}`, `[1,]`, `"unterminated`, `{"a":1}x`, `01x`, `01`, `-`, `1.`, `1e`, `"\x"`, `"\u12g4"`, `tru`,
			strings.Repeat("[", 100000) + strings.Repeat("]", 100000)} {
			c := f.call(t, f.env("POST", "/json", bad), nil)
			if c.Err != nil || c.Response.Status != 400 {
				t.Errorf("invalid JSON %.40q: %v %+v", bad, c.Err, c.Response)
			}
		}
	})
	t.Run("unreachable is a trap and the runner keeps serving", func(t *testing.T) {
		c := f.call(t, f.env("GET", "/trap", ""), nil)
		if codeOf(c.Err) != execapi.CodeTrap {
			t.Fatalf("err = %v, want trap", c.Err)
		}
		if c := f.call(t, f.env("GET", "/logs", ""), nil); c.Err != nil {
			t.Fatalf("call after a trap: %v", c.Err)
		}
	})
	t.Run("throw logs the message through abort and traps", func(t *testing.T) {
		c := f.call(t, f.env("GET", "/throw", ""), nil)
		if codeOf(c.Err) != execapi.CodeTrap {
			t.Fatalf("err = %v, want trap", c.Err)
		}
		if got := strings.Join(logLines(c), "|"); !strings.Contains(got, "error: abort: kaboom at") {
			t.Fatalf("logs %s", got)
		}
	})
}

// TestGuestLimits: a busy loop is stopped by the deadline, a growing heap
// by the memory limit.
func TestGuestLimits(t *testing.T) {
	f := newFixture(t, engine.Limits{Timeout: 200 * time.Millisecond, MemoryBytes: 16 << 20})
	start := time.Now()
	if c := f.call(t, f.env("GET", "/loop", ""), nil); codeOf(c.Err) != execapi.CodeTimeout {
		t.Fatalf("loop: err = %v, want timeout", c.Err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("loop stopped after %v", el)
	}
	c := f.call(t, f.env("GET", "/grow", ""), nil)
	if code := codeOf(c.Err); code != execapi.CodeMemoryLimit && code != execapi.CodeTrap {
		t.Fatalf("grow: err = %v, want memory_limit (or the trap of a refused grow)", c.Err)
	}
	t.Logf("growing heap: %v", c.Err)
}

// TestHelloAS runs examples/hello-as as the runner does and checks its
// size, its module shape and its response.
func TestHelloAS(t *testing.T) {
	wasm := testenv.AssemblyScript(t, repoPath(t, "examples/hello-as"))
	t.Logf("examples/hello-as: %d bytes", len(wasm))
	if len(wasm) >= 100_000 {
		t.Errorf("hello-as is %d bytes; SPEC §20 wants it under 100 KB", len(wasm))
	}
	h := runnertest.NewHost(t, runnertest.Config{})
	m := h.Compile(t, wasm)
	f := &fixture{host: h, mod: m}
	env := f.env("GET", "/hello?name=Ann", "")
	env.Endpoint = execapi.Endpoint{Method: "GET", Path: "/hello", Handler: "dist/hello", Params: map[string]string{}}
	env.Config = json.RawMessage(`{"greeting":"hi"}`)
	var out map[string]string
	c := f.call(t, env, &out)
	if c.Err != nil {
		t.Fatal(c.Err)
	}
	if c.Response.Status != 200 || c.Response.Headers["content-type"] != "application/json" ||
		len(out) != 2 || out["message"] != "hi, Ann" || out["request_id"] != "r-1" {
		t.Fatalf("hello: %d %v %s", c.Response.Status, c.Response.Headers, c.Response.Body)
	}
	if got := logLines(c); len(got) != 1 || got[0] != "info: greeting Ann" {
		t.Fatalf("logs %v", got)
	}
	env.Config = nil
	env.HTTP.Query = map[string]string{}
	if c := f.call(t, env, &out); c.Err != nil || out["message"] != "hello, world" {
		t.Fatalf("defaults: %v %s", c.Err, c.Response.Body)
	}
}

// TestModuleShape: the ABI exports and nothing but alga imports (no env.abort,
// no WASI), and the start function registers the routes at instantiation.
func TestModuleShape(t *testing.T) {
	eng := wasmtime.NewEngine()
	for _, tc := range []struct{ name, dir string }{{"test guest", "testdata/guest"}, {"hello-as", repoPath(t, "examples/hello-as")}} {
		mod, err := wasmtime.NewModule(eng, testenv.AssemblyScript(t, tc.dir))
		if err != nil {
			t.Fatal(err)
		}
		exports := map[string]string{}
		for _, e := range mod.Exports() {
			kind := "func"
			if e.Type().MemoryType() != nil {
				kind = "memory"
			}
			exports[e.Name()] = kind
		}
		for name, kind := range map[string]string{"memory": "memory", "alloc": "func", "dealloc": "func", "handler": "func"} {
			if exports[name] != kind {
				t.Errorf("%s: export %s is %q, want %s", tc.name, name, exports[name], kind)
			}
		}
		var imports []string
		for _, imp := range mod.Imports() {
			if imp.Module() != "alga" {
				t.Errorf("%s: unexpected import %s.%s", tc.name, imp.Module(), *imp.Name())
			}
			imports = append(imports, *imp.Name())
		}
		sort.Strings(imports)
		t.Logf("%s imports alga %v", tc.name, imports)
	}
}

// TestABIOnOneInstance follows SPEC §5.1 by hand on one instance (host
// imports answer nothing): the raw
// response JSON has exactly status, headers and body_b64; dealloc releases
// every buffer; a second call on the same instance (instance reuse) works;
// bad pointers and bad JSON are handler return codes, not traps.
func TestABIOnOneInstance(t *testing.T) {
	eng := wasmtime.NewEngine()
	mod, err := wasmtime.NewModule(eng, testGuest(t))
	if err != nil {
		t.Fatal(err)
	}
	store := wasmtime.NewStore(eng)
	linker := wasmtime.NewLinker(eng)
	for _, imp := range mod.Imports() {
		name := *imp.Name()
		ft := imp.Type().FuncType()
		err := linker.FuncNew("alga", name, ft, func(c *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
			if len(ft.Results()) == 0 { // log calls
				if name == "log_error" {
					data := c.GetExport("memory").Memory().UnsafeData(c)
					t.Logf("guest log_error: %s", data[args[0].I32():args[0].I32()+args[1].I32()])
				}
				return nil, nil
			}
			// JSON calls succeed with an empty reply (out area left zero).
			return []wasmtime.Val{wasmtime.ValI32(0)}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	inst, err := linker.Instantiate(store, mod)
	if err != nil {
		t.Fatal(err)
	}
	mem := inst.GetExport(store, "memory").Memory()
	call := func(name string, args ...any) any {
		t.Helper()
		v, err := inst.GetFunc(store, name).Call(store, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return v
	}
	invoke := func(req string) (int32, map[string]json.RawMessage) {
		t.Helper()
		p := call("alloc", int32(len(req))).(int32)
		copy(mem.UnsafeData(store)[p:], req)
		out := call("alloc", int32(8)).(int32)
		code := call("handler", p, int32(len(req)), out).(int32)
		var fields map[string]json.RawMessage
		if code == 0 {
			data := mem.UnsafeData(store)
			rp := int32(uint32(data[out]) | uint32(data[out+1])<<8 | uint32(data[out+2])<<16 | uint32(data[out+3])<<24)
			rl := int32(uint32(data[out+4]) | uint32(data[out+5])<<8 | uint32(data[out+6])<<16 | uint32(data[out+7])<<24)
			if err := json.Unmarshal(data[rp:rp+rl], &fields); err != nil {
				t.Fatalf("response is not JSON: %q", data[rp:rp+rl])
			}
			call("dealloc", rp, rl)
		}
		call("dealloc", p, int32(len(req)))
		call("dealloc", out, int32(8))
		return code, fields
	}
	req := func(method, path string) string {
		b, _ := json.Marshal(map[string]any{"context": map[string]string{"request_id": "r"},
			"http":     map[string]any{"method": method, "path": path, "query": map[string]string{}, "headers": map[string]string{}, "body_b64": nil},
			"endpoint": map[string]any{"method": method, "path": "", "handler": "", "params": map[string]string{}}})
		return string(b)
	}
	code, fields := invoke(req("GET", "/logs"))
	if code != 0 {
		t.Fatalf("handler returned %d", code)
	}
	var keys []string
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "body_b64,headers,status" || string(fields["status"]) != "204" ||
		string(fields["headers"]) != "{}" || string(fields["body_b64"]) != `""` {
		t.Fatalf("raw response %v", fields)
	}
	for i := 0; i < 50; i++ {
		if code, _ := invoke(req("POST", "/echo/x")); code != 0 {
			t.Fatalf("call %d on the same instance returned %d", i, code)
		}
	}
	// Only the /leaks call's own request and out area are live.
	_, fields = invoke(req("GET", "/leaks"))
	var body []byte
	json.Unmarshal(fields["body_b64"], &body)
	if string(body) != `{"live":2}` {
		t.Fatalf("live buffers after 52 calls: %s", body)
	}
	if sz := mem.DataSize(store); sz > 4<<20 {
		t.Errorf("memory grew to %d bytes over 52 calls on one instance", sz)
	}
	p := call("alloc", int32(3)).(int32)
	copy(mem.UnsafeData(store)[p:], "nop")
	out := call("alloc", int32(8)).(int32)
	if code := call("handler", p, int32(3), out).(int32); code != 2 {
		t.Errorf("bad JSON: handler returned %d, want 2", code)
	}
	if code := call("handler", int32(1<<20), int32(10), out).(int32); code != 3 {
		t.Errorf("foreign request pointer: handler returned %d, want 3", code)
	}
	if code := call("handler", p, int32(3), int32(12345)).(int32); code != 3 {
		t.Errorf("foreign out pointer: handler returned %d, want 3", code)
	}
	call("dealloc", int32(999999), int32(1)) // unknown pointers are ignored
}
