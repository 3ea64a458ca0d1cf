package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/devstack"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestDemoStack starts one demo stack and runs every end-to-end check
// against it, in this order: the browser flow (which sees the fresh stack,
// so the table starts empty), then the HTTP-level flow. Starting the stack
// (embedded PostgreSQL, runners compiling the sample's wasm) is the
// expensive part, so the checks share it; select one with
// -run 'TestDemoStack/api' or -run 'TestDemoStack/browser'.
func TestDemoStack(t *testing.T) {
	st := startStack(t)
	t.Run("browser", func(t *testing.T) { testBrowser(t, st) })
	t.Run("api", func(t *testing.T) { testAPI(t, st) })
}

// stack is a running devstack with what the checks need around it.
type stack struct {
	*devstack.Stack
	root string // module root
}

// logNames are the stack's log files (devstack's LogPath names), dumped
// when a test fails.
var logNames = []string{"registryd", "runnerd-0", "runnerd-1", "caddy", "caddy-access"}

// startStack builds registryd, runnerd and caddy, starts the demo stack on
// free ports in a temporary data directory and stops it when the test ends.
// On failure it logs the tails of the stack's logs.
func startStack(t *testing.T) *stack {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatalf("module root: %v", err)
	}

	t0 := time.Now()
	// testenv names binaries after their package plus build tags
	// (./cmd/caddy becomes caddy-nobadger_nomysql_nopgx); devstack wants
	// registryd, runnerd and caddy side by side, so link them into one dir.
	binDir := t.TempDir()
	for name, pkg := range map[string]string{"registryd": "./registryd", "runnerd": "./runnerd", "caddy": "./cmd/caddy"} {
		if err := os.Symlink(testenv.Binary(t, pkg), filepath.Join(binDir, name)); err != nil {
			t.Fatalf("linking %s: %v", name, err)
		}
	}
	t.Logf("timing: built registryd, runnerd, caddy in %v", time.Since(t0).Round(time.Millisecond))

	// Not t.TempDir: its parents are mode 0700, and registryd's embedded
	// PostgreSQL runs as the postgres user when the tests run as root.
	dataDir, err := os.MkdirTemp("", "extedge-e2e-")
	if err == nil {
		err = os.Chmod(dataDir, 0o755)
	}
	if err != nil {
		t.Fatalf("data directory: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	t1 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	ds, err := devstack.Start(ctx, devstack.Options{
		Root:         root,
		BinDir:       binDir,
		DataDir:      dataDir,
		GatewayPort:  -1,
		PSAPort:      -1,
		RegistryPort: -1,
		AdminPort:    -1,
		Log:          &testLog{t: t},
	})
	if err != nil {
		t.Fatalf("starting the demo stack: %v%s", err, logTails(func(n string) string {
			return filepath.Join(dataDir, "logs", n+".log")
		}))
	}
	st := &stack{Stack: ds, root: root}
	// Cleanups run last-in first-out: the tails are read before Stop, and
	// both before the TempDir holding the logs is removed.
	t.Cleanup(func() {
		t2 := time.Now()
		st.Stop()
		t.Logf("timing: stack stopped in %v", time.Since(t2).Round(time.Millisecond))
	})
	t.Cleanup(func() {
		if name, err, ok := st.Exited(); ok {
			t.Errorf("stack process %s exited during the test: %v", name, err)
		}
		if t.Failed() {
			t.Logf("stack logs:%s", logTails(st.LogPath))
		}
	})
	t.Logf("timing: stack up in %v (gateway %s, psa %s)", time.Since(t1).Round(time.Millisecond), st.GatewayURL, st.PSAURL)
	return st
}

// testLog forwards devstack's progress lines to the test log while the
// stack starts.
type testLog struct {
	t   *testing.T
	mu  sync.Mutex
	buf []byte
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.t.Log(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// logTails returns the last lines of each stack log, for failure messages.
func logTails(path func(name string) string) string {
	var b strings.Builder
	for _, name := range logNames {
		p := path(name)
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		// The last warnings and errors (zap JSON), then the last lines.
		var bad []string
		for _, l := range lines {
			for _, lvl := range []string{`"level":"warn"`, `"level":"error"`, `"level":"fatal"`, `"level":"panic"`} {
				if strings.Contains(l, lvl) {
					bad = append(bad, l)
					break
				}
			}
		}
		fmt.Fprintf(&b, "\n--- %s: last warnings/errors ---\n%s\n--- %s: tail ---\n%s",
			p, clip(bad, 10), p, clip(lines, 15))
	}
	return b.String()
}

// clip returns the last n lines, each cut to 600 bytes.
func clip(lines []string, n int) string {
	if len(lines) == 0 {
		return "(none)"
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		if len(l) > 600 {
			l = l[:600] + "…"
		}
		out[i] = l
	}
	return strings.Join(out, "\n")
}

// token mints a session token for tenant, as the PSA page gets it.
func (st *stack) token(t *testing.T, tenant string) string {
	t.Helper()
	tok, err := st.SessionToken(tenant)
	if err != nil {
		t.Fatalf("minting a session token for %s: %v", tenant, err)
	}
	return tok
}

// apiURL is the gateway URL of the sample's endpoint path.
func (st *stack) apiURL(path string) string {
	return st.GatewayURL + "/api/ext/" + st.ExtensionID + path
}

// uiBase is the demo's UI origin: the gateway under the other loopback
// name (`ui_host localhost`).
func (st *stack) uiBase() string {
	return strings.Replace(st.GatewayURL, "127.0.0.1", "localhost", 1)
}

// uiURL is the gateway URL of a file of the sample's UI.
func (st *stack) uiURL(path string) string {
	return st.uiBase() + "/ext-ui/" + st.ExtensionID + "/" + st.ContentHash + "/" + path
}

// reply is one HTTP answer, read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) String() string {
	b := r.body
	if len(b) > 400 {
		b = append(b[:400:400], "…"...)
	}
	return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(b))
}

// errorCode returns the code of a gateway or extension error body
// ({"error":{"code",…}}), or "".
func (r reply) errorCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

var httpClient = &http.Client{Timeout: 60 * time.Second}

// do sends one request; hdr holds extra headers, token (if not empty)
// goes into Authorization.
func do(t *testing.T, method, url, token string, hdr map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: body}
}

// decode unmarshals a 2xx JSON reply into out, failing the test otherwise.
func decode(t *testing.T, what string, r reply, out any) {
	t.Helper()
	if r.status/100 != 2 {
		t.Fatalf("%s: got %s, want 2xx", what, r)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type %q, want application/json", what, ct)
	}
	if err := json.Unmarshal(r.body, out); err != nil {
		t.Fatalf("%s: %v in %s", what, err, r)
	}
}

// agreement and listPage are the sample's JSON (examples/agreements/guest).
type agreement struct {
	ID            string  `json:"id"`
	Client        string  `json:"client"`
	Name          string  `json:"name"`
	Status        string  `json:"status"`
	MonthlyAmount float64 `json:"monthly_amount"`
}

type listPage struct {
	Items    []agreement `json:"items"`
	Total    int         `json:"total"`
	Page     int         `json:"page"`
	PageSize int         `json:"page_size"`
	SyncedAt *string     `json:"synced_at"`
}

func (p listPage) ids() []string {
	out := make([]string, len(p.Items))
	for i, a := range p.Items {
		out[i] = a.ID
	}
	return out
}

// vendorTotal is how many agreements the PSA stand-in's vendor mock serves.
const vendorTotal = 23

// list fetches one page of agreements with the given query
// ("page=2&page_size=10&sort=client&direction=desc").
func (st *stack) list(t *testing.T, token, query string) listPage {
	t.Helper()
	var p listPage
	decode(t, "list "+query, do(t, "GET", st.apiURL("/agreements?"+query), token, nil), &p)
	return p
}

// vendorCalls reads the vendor mock's call counter.
func (st *stack) vendorCalls(t *testing.T) int {
	t.Helper()
	var c struct {
		Calls *int `json:"calls"`
	}
	decode(t, "vendor calls", do(t, "GET", st.PSAURL+"/vendor/calls", "", nil), &c)
	if c.Calls == nil {
		t.Fatalf("vendor calls: no calls field")
	}
	return *c.Calls
}

// testAPI is the HTTP-level flow a PSA client sees, as tenant demo and as
// tenants without the install or without a token.
func testAPI(t *testing.T, st *stack) {
	start := time.Now()
	defer func() { t.Logf("timing: api checks took %v", time.Since(start).Round(time.Millisecond)) }()
	demo := st.token(t, "demo")

	t.Run("list, sync through the vendor mock, list again, get by id", func(t *testing.T) {
		callsBefore := st.vendorCalls(t)
		var before listPage
		r := do(t, "GET", st.apiURL("/agreements"), demo, nil)
		decode(t, "list before sync", r, &before)
		if r.header.Get("X-Request-Id") == "" {
			t.Errorf("list: no X-Request-Id in the reply")
		}
		if callsBefore == 0 {
			// Nothing ever synced on this stack: the install's KV is empty.
			if before.Total != 0 || len(before.Items) != 0 || before.SyncedAt != nil {
				t.Errorf("list before any sync = total %d, %d items, synced_at %v; want an empty list", before.Total, len(before.Items), before.SyncedAt)
			}
		} else if before.Total != vendorTotal {
			t.Errorf("list after an earlier sync: total %d, want %d", before.Total, vendorTotal)
		}

		var synced struct {
			Synced   int    `json:"synced"`
			SyncedAt string `json:"synced_at"`
		}
		decode(t, "sync", do(t, "POST", st.apiURL("/agreements/sync"), demo, nil), &synced)
		if synced.Synced != vendorTotal || synced.SyncedAt == "" {
			t.Errorf("sync = %+v, want %d agreements and a synced_at", synced, vendorTotal)
		}
		if got := st.vendorCalls(t); got != callsBefore+1 {
			t.Errorf("vendor mock calls after one sync = %d, want %d (the runner must call the vendor once, with the tenant's API key)", got, callsBefore+1)
		}

		// Default page size is 20: 20 + 3.
		p1 := st.list(t, demo, "page=1&page_size=20")
		p2 := st.list(t, demo, "page=2&page_size=20")
		if p1.Total != vendorTotal || p2.Total != vendorTotal || len(p1.Items) != 20 || len(p2.Items) != vendorTotal-20 {
			t.Fatalf("after sync: page 1 total %d with %d items, page 2 total %d with %d items; want %d = 20 + %d",
				p1.Total, len(p1.Items), p2.Total, len(p2.Items), vendorTotal, vendorTotal-20)
		}
		if p1.SyncedAt == nil || *p1.SyncedAt != synced.SyncedAt {
			t.Errorf("list synced_at = %v, want the sync's %q", p1.SyncedAt, synced.SyncedAt)
		}
		ids := append(p1.ids(), p2.ids()...)
		if !sort.StringsAreSorted(ids) {
			t.Errorf("ids across pages are not in order: %v", ids)
		}
		for i, id := range ids {
			if want := fmt.Sprintf("AGR-%d", 1001+i); id != want {
				t.Fatalf("agreement %d has id %q, want %q (all of the vendor's agreements, each once): %v", i, id, want, ids)
			}
		}

		// One by id: the vendor mock's AGR-1007 (every 7th is expired).
		var a agreement
		decode(t, "get AGR-1007", do(t, "GET", st.apiURL("/agreements/AGR-1007"), demo, nil), &a)
		want := agreement{ID: "AGR-1007", Client: "Northwind", Name: "Network Care", Status: "expired", MonthlyAmount: 409}
		if a != want {
			t.Errorf("get AGR-1007 = %+v, want %+v", a, want)
		}
		if r := do(t, "GET", st.apiURL("/agreements/AGR-9999"), demo, nil); r.status != 404 || r.errorCode() != "not_found" {
			t.Errorf("get an unknown id = %s, want 404 not_found (the extension's own error)", r)
		}
	})

	t.Run("an agreement.updated event updates the stored agreement (runner deliveries)", func(t *testing.T) {
		want := agreement{ID: "AGR-1007", Client: "Northwind", Name: "Network Care (renewed)", Status: "active", MonthlyAmount: 450}
		payload, _ := json.Marshal(want)
		id := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
		res, err := st.Registry().PublishEvent(context.Background(), registryapi.Event{ID: id, TenantID: "demo",
			Topic: "agreement.updated", OccurredAt: time.Now().UTC(), Payload: payload})
		if err != nil || res.Deliveries != 1 {
			t.Fatalf("publish: %+v %v, want one delivery (the demo tenant's sample install)", res, err)
		}
		testenv.WaitFor(t, 20*time.Second, func() error {
			var a agreement
			r := do(t, "GET", st.apiURL("/agreements/AGR-1007"), demo, nil)
			if r.status != 200 {
				return fmt.Errorf("get AGR-1007: %s", r)
			}
			json.Unmarshal(r.body, &a)
			if a != want {
				return fmt.Errorf("AGR-1007 = %+v, want %+v", a, want)
			}
			return nil
		})
	})

	t.Run("a tenant without the install gets 404 not_installed", func(t *testing.T) {
		other := st.token(t, "other")
		for _, c := range []struct{ method, path string }{{"GET", "/agreements"}, {"POST", "/agreements/sync"}} {
			r := do(t, c.method, st.apiURL(c.path), other, nil)
			assertGatewayError(t, c.method+" "+c.path+" as tenant other", r, 404, "not_installed")
		}
	})

	t.Run("no or a bad token is 401 unauthenticated", func(t *testing.T) {
		assertGatewayError(t, "no token", do(t, "GET", st.apiURL("/agreements"), "", nil), 401, "unauthenticated")
		assertGatewayError(t, "bad token", do(t, "GET", st.apiURL("/agreements"), demo+"x", nil), 401, "unauthenticated")
	})

	t.Run("Caddy's access log names request id, tenant, extension and outcome", func(t *testing.T) {
		r := do(t, "GET", st.apiURL("/agreements"), demo, nil)
		rid := r.header.Get("X-Request-Id")
		if r.status != 200 || rid == "" {
			t.Fatalf("list = %s", r)
		}
		testenv.WaitFor(t, 5*time.Second, func() error {
			data, err := os.ReadFile(st.LogPath("caddy-access"))
			if err != nil {
				return err
			}
			for _, line := range strings.Split(string(data), "\n") {
				var entry map[string]any
				if json.Unmarshal([]byte(line), &entry) != nil || entry["request_id"] != rid {
					continue
				}
				if entry["tenant"] != "demo" || entry["extension"] != st.ExtensionID || entry["outcome"] != "ok" {
					return fmt.Errorf("access log entry of %s: %v", rid, entry)
				}
				return nil
			}
			return fmt.Errorf("no access log entry with request_id %s", rid)
		})
	})

	t.Run("UI index.html has CSP, strong ETag and revalidates with 304", func(t *testing.T) {
		want, err := os.ReadFile(filepath.Join(st.root, "examples", "agreements", "ui", "index.html"))
		if err != nil {
			t.Fatal(err)
		}
		r := do(t, "GET", st.uiURL("index.html"), "", nil)
		if r.status != 200 || !bytes.Equal(r.body, want) {
			t.Fatalf("GET index.html = %s, want 200 with examples/agreements/ui/index.html", r)
		}
		h := r.header
		if ct := h.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("Content-Type = %q, want text/html; charset=utf-8", ct)
		}
		csp := h.Get("Content-Security-Policy")
		for _, part := range []string{"default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors " + st.GatewayURL, "connect-src 'self' " + st.GatewayURL} {
			if !strings.Contains(csp, part) {
				t.Errorf("Content-Security-Policy %q lacks %q", csp, part)
			}
		}
		if h.Get("X-Frame-Options") != "" {
			t.Errorf("X-Frame-Options = %q, want none (the page is meant to be framed)", h.Get("X-Frame-Options"))
		}
		if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
		}
		if got := h.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("Cache-Control = %q, want immutable", got)
		}
		etag := h.Get("Etag")
		if want := fmt.Sprintf(`"sha256-%x"`, sha256Sum(want)); etag != want {
			t.Errorf("ETag = %q, want %s (strong, sha256 of the file)", etag, want)
		}
		r304 := do(t, "GET", st.uiURL("index.html"), "", map[string]string{"If-None-Match": etag})
		if r304.status != 304 || len(r304.body) != 0 {
			t.Errorf("GET with If-None-Match %s = %s, want 304 with no body", etag, r304)
		}
		if r := do(t, "GET", st.uiURL("index.html"), "", map[string]string{"If-None-Match": `"sha256-00"`}); r.status != 200 {
			t.Errorf("GET with a stale If-None-Match = %d, want 200", r.status)
		}
	})

	t.Run("extension UIs are not served on the API and PSA origin", func(t *testing.T) {
		// The demo's Caddyfile has `ui_host localhost` (SPEC §16).
		u := st.GatewayURL + "/ext-ui/" + st.ExtensionID + "/" + st.ContentHash + "/index.html"
		if r := do(t, "GET", u, "", nil); r.status != 404 {
			t.Errorf("GET %s = %d, want 404 off the UI host", u, r.status)
		}
	})

	t.Run("the UI's module scripts load from an opaque-origin iframe", func(t *testing.T) {
		// A sandboxed iframe without allow-same-origin has origin "null";
		// its <script type=module> loads are CORS requests, so both the
		// extension's app.js and the SDK need Access-Control-Allow-Origin.
		for _, u := range []string{st.uiURL("app.js"), st.GatewayURL + "/ext-sdk/v1/iframe.js"} {
			r := do(t, "GET", u, "", map[string]string{"Origin": "null"})
			if r.status != 200 {
				t.Errorf("GET %s = %s, want 200", u, r)
				continue
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
				t.Errorf("GET %s: Content-Type %q, want text/javascript", u, ct)
			}
			if acao := r.header.Get("Access-Control-Allow-Origin"); acao != "*" && acao != "null" {
				t.Errorf("GET %s with Origin: null: Access-Control-Allow-Origin %q, want * (module scripts of a sandboxed iframe are CORS loads)", u, acao)
			}
		}
	})

	t.Run("the gateway serves the JS SDK from sdk/js", func(t *testing.T) {
		for _, name := range []string{"host.js", "iframe.js"} {
			if problem := sdkServed(st, name); problem != "" {
				t.Error(problem)
			}
		}
	})
}

// assertGatewayError checks a gateway error reply: status, code, the
// {"error":{"code","message","request_id"}} shape and its headers.
func assertGatewayError(t *testing.T, what string, r reply, status int, code string) {
	t.Helper()
	var e struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || r.status != status || e.Error.Code != code {
		t.Errorf("%s = %s, want %d %s", what, r, status, code)
		return
	}
	if e.Error.Message == "" || e.Error.RequestID == "" {
		t.Errorf("%s: error body %s lacks message or request_id", what, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: Cache-Control %q, want no-store", what, cc)
	}
}
