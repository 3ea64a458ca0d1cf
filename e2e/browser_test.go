package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/extedge/extedge/internal/testenv"

	sdkjs "github.com/extedge/extedge/sdk/js"
)

// testBrowser drives the demo's PSA host page in headless Chromium: the
// extension's sandboxed iframe renders its <ext-data-table> from the API,
// Sync calls the vendor mock through the runner, sorting by a header, the
// page size selector and Next page server-side, and a tenant without the
// install sees the table's error state.
func testBrowser(t *testing.T, st *stack) {
	start := time.Now()
	defer func() { t.Logf("timing: browser checks took %v", time.Since(start).Round(time.Millisecond)) }()
	b := startBrowser(t)
	t.Logf("timing: chromium started in %v", time.Since(start).Round(time.Millisecond))
	demo := st.token(t, "demo")

	// The UI needs the SDK and its own module scripts to load in an
	// opaque-origin iframe; if they cannot, every wait below would only
	// time out, so say why up front.
	diagnose := func() string { return uiDiagnosis(st) }

	// ---- tenant demo ----
	callsBefore := st.vendorCalls(t)
	b.navigate(t, st.GatewayURL+"/")
	b.waitPage(t, "host page mounted the extension's iframe", `!!document.querySelector("#ext iframe")`, 15*time.Second, diagnose)
	var attrs struct {
		Sandbox string `json:"sandbox"`
		Src     string `json:"src"`
		Tenant  string `json:"tenant"`
	}
	b.evalPage(t, &attrs, `(() => { const f = document.querySelector("#ext iframe");
		return {sandbox: f.getAttribute("sandbox"), src: f.src, tenant: document.getElementById("tenant").textContent}; })()`)
	uiPrefix := st.uiBase() + "/ext-ui/" + st.ExtensionID + "/" + st.ContentHash + "/"
	if attrs.Sandbox != "allow-scripts" || !strings.HasPrefix(attrs.Src, uiPrefix) || attrs.Tenant != "demo" {
		t.Fatalf("host page iframe: sandbox %q, src %q, tenant %q; want sandbox \"allow-scripts\", src under %s, tenant demo",
			attrs.Sandbox, attrs.Src, attrs.Tenant, uiPrefix)
	}

	f := b.attachFrame(t, uiPrefix, "", diagnose)
	f.waitFor(t, "the UI rendered the table from the API",
		`["ready", "empty", "error"].includes(document.getElementById("table")?.dataset.state)`,
		30*time.Second, diagnose)
	var ui uiState
	f.eval(t, &ui, uiStateJS)
	if ui.ErrorVisible || ui.State == "error" {
		t.Fatalf("the UI shows an error for tenant demo: code %q, %q; table %q", ui.ErrorCode, ui.ErrorText, ui.RowsText)
	}
	if ui.Origin != "null" {
		t.Errorf("self.origin in the extension iframe = %q, want null (sandboxed without allow-same-origin)", ui.Origin)
	}
	if callsBefore == 0 {
		// Nothing synced yet on this stack: the API's list is empty.
		if len(ui.RowIDs) != 0 || !strings.Contains(ui.RowsText, "No agreements yet") {
			t.Errorf("before any sync the table shows rows %v / %q, want the \"No agreements yet\" row", ui.RowIDs, ui.RowsText)
		}
	} else if want := st.list(t, demo, "page=1&page_size=10").ids(); !slices.Equal(ui.RowIDs, want) {
		t.Errorf("table rows = %v, want the API's page 1 %v", ui.RowIDs, want)
	}

	// ---- Sync ----
	f.waitFor(t, "the Sync button is enabled", `!document.getElementById("sync").disabled`, 10*time.Second, nil)
	syncStart := time.Now()
	f.click(t, "#sync")
	waitUntil(t, "the vendor mock is called after clicking Sync", 30*time.Second, func() string {
		if n := st.vendorCalls(t); n <= callsBefore {
			return fmt.Sprintf("vendor calls still %d", n)
		}
		return ""
	})
	f.waitFor(t, "the table shows page 1 of the synced agreements",
		`document.querySelectorAll("#table tbody tr[data-key]").length === 10 && document.querySelector("#table .ext-dt-page")?.textContent === "Page 1 of 3" &&
		 document.querySelector("#table .ext-dt-range")?.textContent === "1–10 of 23" && !document.getElementById("sync").loading`,
		30*time.Second, nil)
	t.Logf("timing: sync click to updated table %v", time.Since(syncStart).Round(time.Millisecond))
	f.eval(t, &ui, uiStateJS)
	page1 := st.list(t, demo, "page=1&page_size=10")
	if !slices.Equal(ui.RowIDs, page1.ids()) {
		t.Errorf("after sync the table rows are %v, want the API's page 1 %v", ui.RowIDs, page1.ids())
	}
	if !strings.HasPrefix(ui.Status, "Synced") || ui.ErrorVisible {
		t.Errorf("after sync: status %q, error visible %v; want \"Synced …\" and no error", ui.Status, ui.ErrorVisible)
	}
	if !ui.PrevDisabled || ui.NextDisabled {
		t.Errorf("on page 1 of 3: prev disabled %v, next disabled %v; want prev disabled, next enabled", ui.PrevDisabled, ui.NextDisabled)
	}
	shot := b.screenshot(t, st, "e2e-agreements.png")
	t.Logf("screenshot of the synced table: %s", shot)

	// ---- paging ----
	f.click(t, "#table [data-action=next] button")
	f.waitFor(t, "Next shows page 2",
		`document.querySelector("#table .ext-dt-page")?.textContent === "Page 2 of 3" && document.querySelector("#table tbody tr[data-key]")?.dataset.key === "AGR-1011"`,
		15*time.Second, nil)
	f.eval(t, &ui, uiStateJS)
	if want := st.list(t, demo, "page=2&page_size=10").ids(); !slices.Equal(ui.RowIDs, want) {
		t.Errorf("page 2 rows = %v, want the API's page 2 %v", ui.RowIDs, want)
	}
	if ui.PrevDisabled || ui.NextDisabled {
		t.Errorf("on page 2 of 3: prev disabled %v, next disabled %v; want both enabled", ui.PrevDisabled, ui.NextDisabled)
	}

	// showsUI says what the table shows, for a wait that timed out.
	showsUI := func() string {
		var now uiState
		f.eval(t, &now, uiStateJS)
		return fmt.Sprintf("the table is %s on %q with rows %v", now.State, now.Page, now.RowIDs)
	}

	// ---- sorting: the guest sorts, the table asks ----
	byClient := st.list(t, demo, "page=1&page_size=10&sort=client&direction=asc").ids()
	if slices.Equal(byClient, page1.ids()) {
		t.Fatalf("the API's order by client equals its order by id (%v); the data cannot show sorting", byClient)
	}
	f.click(t, `#table th[data-key="client"] button`)
	f.waitFor(t, "sorting by Client shows the API's first page by client",
		`document.querySelector('#table th[data-key="client"]')?.getAttribute("aria-sort") === "ascending" && document.getElementById("table").dataset.state === "ready" &&
		 JSON.stringify([...document.querySelectorAll("#table tbody tr[data-key]")].map((tr) => tr.dataset.key)) === `+jsonString(t, byClient),
		15*time.Second, showsUI)
	f.click(t, `#table th[data-key="client"] button`)
	byClientDesc := st.list(t, demo, "page=1&page_size=10&sort=client&direction=desc").ids()
	f.waitFor(t, "a second click sorts by Client descending",
		`document.querySelector('#table th[data-key="client"]')?.getAttribute("aria-sort") === "descending" && document.getElementById("table").dataset.state === "ready" &&
		 JSON.stringify([...document.querySelectorAll("#table tbody tr[data-key]")].map((tr) => tr.dataset.key)) === `+jsonString(t, byClientDesc),
		15*time.Second, showsUI)

	// ---- page size ----
	f.eval(t, nil, `(() => { const s = document.querySelector("#table select"); s.value = "20"; s.dispatchEvent(new Event("change", { bubbles: true })); })()`)
	bySize := st.list(t, demo, "page=1&page_size=20&sort=client&direction=desc").ids()
	f.waitFor(t, "page size 20 shows two pages",
		`document.querySelector("#table .ext-dt-page")?.textContent === "Page 1 of 2" && document.getElementById("table").dataset.state === "ready" &&
		 JSON.stringify([...document.querySelectorAll("#table tbody tr[data-key]")].map((tr) => tr.dataset.key)) === `+jsonString(t, bySize),
		15*time.Second, showsUI)
	f.click(t, "#table [data-action=next] button")
	lastPage := st.list(t, demo, "page=2&page_size=20&sort=client&direction=desc").ids()
	f.waitFor(t, "Next shows the last 3 agreements by client descending",
		`document.querySelector("#table .ext-dt-page")?.textContent === "Page 2 of 2" && document.getElementById("table").dataset.state === "ready" &&
		 JSON.stringify([...document.querySelectorAll("#table tbody tr[data-key]")].map((tr) => tr.dataset.key)) === `+jsonString(t, lastPage),
		15*time.Second, showsUI)
	var badges []string
	f.eval(t, &badges, `[...document.querySelectorAll("#table tbody ext-badge")].map((b) => b.getAttribute("tone") + ":" + b.textContent)`)
	if len(badges) != len(lastPage) {
		t.Errorf("status badges %v, want one per row", badges)
	}
	t.Logf("screenshot of the sorted, resized table: %s", b.screenshot(t, st, "e2e-agreements-sorted.png"))
	if t.Failed() {
		t.Logf("browser console:%s", b.consoleText())
	}

	// ---- tenant other: no install ----
	demoFrame := f.id
	b.navigate(t, st.GatewayURL+"/?tenant=other")
	b.waitPage(t, "host page for tenant other mounted the iframe",
		`document.getElementById("tenant")?.textContent === "other" && !!document.querySelector("#ext iframe")`, 15*time.Second, diagnose)
	// The gateway's answer to the iframe's API call, as the iframe got it.
	other := do(t, "GET", st.apiURL("/agreements?page=1&page_size=10"), st.token(t, "other"), nil)
	if other.status != 404 || other.errorCode() != "not_installed" {
		t.Errorf("the API as tenant other = %s, want 404 not_installed", other)
	}
	of := b.attachFrame(t, uiPrefix, demoFrame, diagnose)
	of.waitFor(t, "the UI shows its error state for tenant other",
		`document.getElementById("table")?.dataset.state === "error"`, 30*time.Second, diagnose)
	of.eval(t, &ui, uiStateJS)
	if !strings.Contains(ui.RowsText, "not installed") || !strings.Contains(ui.RowsText, "(not_installed)") || !ui.HasRetry || len(ui.RowIDs) != 0 || ui.Status != "Error" {
		t.Errorf("tenant other: table text %q, retry %v, rows %v, status %q; want the not-installed message with Retry, no rows, status Error",
			ui.RowsText, ui.HasRetry, ui.RowIDs, ui.Status)
	}
	t.Logf("screenshot of the not_installed state: %s", b.screenshot(t, st, "e2e-not-installed.png"))
	if t.Failed() {
		t.Logf("browser console:%s", b.consoleText())
	}
}

// uiState is what uiStateJS reads from the sample UI's document.
type uiState struct {
	Origin       string   `json:"origin"`
	State        string   `json:"state"` // the table's data-state
	HasRetry     bool     `json:"hasRetry"`
	RowIDs       []string `json:"rowIds"`
	RowsText     string   `json:"rowsText"`
	Page         string   `json:"page"`
	Status       string   `json:"status"`
	ErrorVisible bool     `json:"errorVisible"`
	ErrorCode    string   `json:"errorCode"`
	ErrorText    string   `json:"errorText"`
	PrevDisabled bool     `json:"prevDisabled"`
	NextDisabled bool     `json:"nextDisabled"`
}

const uiStateJS = `(() => {
	const $ = (id) => document.getElementById(id);
	return {
		origin: self.origin,
		state: $("table").dataset.state,
		hasRetry: !!document.querySelector("#table [data-action=retry] button"),
		rowIds: [...document.querySelectorAll("#table tbody tr[data-key]")].map((tr) => tr.dataset.key),
		rowsText: document.querySelector("#table tbody").textContent,
		page: document.querySelector("#table .ext-dt-page").textContent,
		status: $("status").textContent,
		errorVisible: !$("error").hidden,
		errorCode: $("error").dataset.code || "",
		errorText: $("error").textContent,
		prevDisabled: document.querySelector("#table [data-action=prev] button").disabled,
		nextDisabled: document.querySelector("#table [data-action=next] button").disabled,
	};
})()`

// ---- browser plumbing ----

// browser is the headless Chromium tab with the console lines it collected.
type browser struct {
	ctx context.Context // the tab; has run once

	mu      sync.Mutex
	console []string
}

// startBrowser starts Chromium with a fresh profile and returns its tab;
// the browser stops when the test ends. Without Chromium the test fails
// with an install hint, or skips when EXTEDGE_SKIP_BROWSER is set.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	ctx := testenv.Chromium(t, 1280, 900)
	b := &browser{ctx: ctx}
	b.collectConsole(ctx, "page")
	return b
}

// collectConsole records the console messages, exceptions and browser log
// entries (CSP and CORS errors land there) of the target of ctx.
func (b *browser) collectConsole(ctx context.Context, label string) {
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, fmt.Sprintf("[%s] %s: %s %s", label, m.Type, m.Text, m.URL))
			b.mu.Unlock()
		}
	}()
}

func (b *browser) consoleText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.console) == 0 {
		return " (nothing)"
	}
	return "\n" + strings.Join(b.console, "\n")
}

// navigate loads url in the tab.
func (b *browser) navigate(t *testing.T, url string) { t.Helper(); testenv.Navigate(t, b.ctx, url) }

func (b *browser) evalPage(t *testing.T, out any, expr string) {
	t.Helper()
	if err := evalIn(b.ctx, out, expr); err != nil {
		t.Fatalf("evaluating in the host page: %v\n%s", err, expr)
	}
}

// waitPage polls expr in the host page until it is truthy.
func (b *browser) waitPage(t *testing.T, desc, expr string, timeout time.Duration, diagnose func() string) {
	t.Helper()
	if err := pollIn(b.ctx, expr, timeout); err != nil {
		t.Fatalf("waiting for %s: %v%s\nbrowser console:%s", desc, err, diagnosis(diagnose), b.consoleText())
	}
}

// frame is the extension's iframe as a DevTools target of its own.
//
// How the iframe is reached (checked with Debian's Chromium 156, site
// isolation on as shipped): the iframe is sandboxed without
// allow-same-origin, so its origin is opaque, and Chromium isolates
// sandboxed frames in a process of their own (IsolateSandboxedIframes) even
// though the URL is same-site with the host page. The frame is then an
// out-of-process iframe: chromedp.Targets lists it with type "iframe" and
// its URL, the host page's DOM queries and Runtime contexts do not reach
// into it, and a context made with chromedp.WithTargetID(id) attaches to it
// and evaluates in its document. Clicks are dispatched as real mouse events
// on the tab at the element's position (the iframe's box in the page plus
// the element's box in the frame): input events go to the top-level
// widget, which routes them into the frame like a user's click.
type frame struct {
	b   *browser
	ctx context.Context
	id  target.ID
}

// attachFrame waits for the extension's iframe target (type "iframe", URL
// under prefix, not exclude) and attaches to it.
func (b *browser) attachFrame(t *testing.T, prefix string, exclude target.ID, diagnose func() string) *frame {
	t.Helper()
	var id target.ID
	var seen []string
	deadline := time.Now().Add(15 * time.Second)
	for id == "" {
		infos, err := chromedp.Targets(b.ctx)
		if err != nil {
			t.Fatalf("listing targets: %v", err)
		}
		seen = seen[:0]
		for _, info := range infos {
			seen = append(seen, fmt.Sprintf("%s %s", info.Type, info.URL))
			if info.Type == "iframe" && strings.HasPrefix(info.URL, prefix) && info.TargetID != exclude {
				id = info.TargetID
			}
		}
		if id != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no iframe target under %s after 15s; targets: %v%s\nbrowser console:%s\n"+
				"(if the host page has the iframe but no target is listed, this Chromium runs sandboxed iframes in-process "+
				"— IsolateSandboxedIframes off — and the test needs the default site isolation)",
				prefix, seen, diagnosis(diagnose), b.consoleText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// WithDetachOnCancel: ending the context must detach only; closing an
	// iframe target is not ours to do.
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithTargetID(id), chromedp.WithDetachOnCancel())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("attaching to the iframe target %s: %v", id, err)
	}
	b.collectConsole(ctx, "iframe")
	return &frame{b: b, ctx: ctx, id: id}
}

func (f *frame) eval(t *testing.T, out any, expr string) {
	t.Helper()
	if err := evalIn(f.ctx, out, expr); err != nil {
		t.Fatalf("evaluating in the iframe: %v\n%s", err, expr)
	}
}

// waitFor polls expr in the iframe until it is truthy; on timeout it fails
// with the UI's state, the diagnosis and the console.
func (f *frame) waitFor(t *testing.T, desc, expr string, timeout time.Duration, diagnose func() string) {
	t.Helper()
	if err := pollIn(f.ctx, expr, timeout); err != nil {
		var ui uiState
		state := "unreadable"
		if evalIn(f.ctx, &ui, uiStateJS) == nil {
			state = fmt.Sprintf("%+v", ui)
		}
		t.Fatalf("waiting for %s: %v\nUI state: %s%s\nbrowser console:%s", desc, err, state, diagnosis(diagnose), f.b.consoleText())
	}
}

// click clicks the element sel of the iframe with a real mouse event.
func (f *frame) click(t *testing.T, sel string) {
	t.Helper()
	type rect struct{ X, Y, W, H float64 }
	var fr, el rect
	// The host resizes the iframe to its content a moment after the content
	// changed; measuring before that would aim at where the element was.
	f.waitFor(t, "the iframe to fit its content before clicking "+sel,
		`document.documentElement.scrollHeight <= innerHeight + 1 || innerHeight >= 4000`, 10*time.Second, nil)
	// Bring the element into the iframe's viewport (a no-op when the iframe
	// is as tall as its content), then the element's spot in the iframe into
	// the middle of the tab's viewport (clicks right at its edge can miss):
	// an iframe taller than the tab is scrolled past.
	f.eval(t, &el, fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.scrollIntoView({block: "nearest"});
		const r = e.getBoundingClientRect(); return {X: r.left, Y: r.top, W: r.width, H: r.height}; })()`, sel))
	var viewH float64
	f.b.evalPage(t, &viewH, fmt.Sprintf(`(() => { const f = document.querySelector("#ext iframe"); f.scrollIntoView({block: "nearest"});
		const y = f.getBoundingClientRect().top + f.clientTop + %f;
		if (y < 40 || y > innerHeight - 40) window.scrollBy(0, y - innerHeight / 2);
		return innerHeight; })()`, el.Y+el.H/2))
	// A scroll reaches the compositor's hit testing with the next frames; a
	// click before that would land where the iframe was.
	f.b.evalPage(t, nil, `new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`)
	f.b.evalPage(t, &fr, `(() => { const f = document.querySelector("#ext iframe");
		const r = f.getBoundingClientRect(); return {X: r.left + f.clientLeft, Y: r.top + f.clientTop, W: f.clientWidth, H: f.clientHeight}; })()`)
	x, y := fr.X+el.X+el.W/2, fr.Y+el.Y+el.H/2
	if el.W == 0 || el.H == 0 || x < fr.X || y < fr.Y || x > fr.X+fr.W || y > fr.Y+fr.H || y < 0 || y > viewH {
		t.Fatalf("clicking %s: element box %+v is not visible in the iframe box %+v and the tab's viewport (height %v)", sel, el, fr, viewH)
	}
	ctx, cancel := context.WithTimeout(f.b.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(math.Round(x), math.Round(y))); err != nil {
		t.Fatalf("clicking %s at (%.0f, %.0f): %v", sel, x, y, err)
	}
}

// screenshot saves a full-page PNG of the tab as a test artifact under
// $EXTEDGE_ARTIFACTS (default <module root>/test-artifacts) and returns
// its path.
func (b *browser) screenshot(t *testing.T, st *stack, name string) string {
	t.Helper()
	dir := os.Getenv("EXTEDGE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(st.root, "test-artifacts")
	}
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path, _ := filepath.Abs(filepath.Join(dir, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	return path
}

// evalIn evaluates expr in the target of ctx (awaiting a promise) and
// decodes its JSON value into out, which may be nil.
func evalIn(ctx context.Context, out any, expr string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// pollIn polls expr in the target of ctx until it is truthy.
func pollIn(ctx context.Context, expr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingTimeout(timeout),
		chromedp.WithPollingInterval(25*time.Millisecond)))
	return err
}

// waitUntil polls check (Go side) until it returns "", failing with the
// last reason when timeout passes.
func waitUntil(t *testing.T, desc string, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := check()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: timed out after %v: %s", desc, timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func diagnosis(diagnose func() string) string {
	if diagnose == nil {
		return ""
	}
	if d := diagnose(); d != "" {
		return "\nlikely cause: " + d
	}
	return ""
}

// uiDiagnosis checks, over plain HTTP, what an opaque-origin iframe needs
// from the gateway to run the sample UI, and describes what is missing.
func uiDiagnosis(st *stack) string {
	var problems []string
	for _, name := range []string{"host.js", "iframe.js"} {
		if p := sdkServed(st, name); p != "" {
			problems = append(problems, p)
		}
	}
	for _, u := range []string{st.uiURL("app.js"), st.GatewayURL + "/ext-sdk/v1/iframe.js"} {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Origin", "null")
		resp, err := httpClient.Do(req)
		if err != nil {
			problems = append(problems, fmt.Sprintf("GET %s: %v", u, err))
			continue
		}
		resp.Body.Close()
		if acao := resp.Header.Get("Access-Control-Allow-Origin"); acao != "*" && acao != "null" {
			problems = append(problems, fmt.Sprintf("GET %s (Origin: null) has no Access-Control-Allow-Origin (got %q), so the sandboxed iframe cannot load it as a module script", u, acao))
		}
	}
	return strings.Join(problems, "; ")
}

// sdkServed checks that the gateway serves sdk/js/name at /ext-sdk/v1/name
// byte for byte, and describes the difference if not.
func sdkServed(st *stack, name string) string {
	want, err := sdkjs.FS.ReadFile(name)
	if err != nil {
		return fmt.Sprintf("reading sdk/js/%s: %v", name, err)
	}
	u := st.GatewayURL + "/ext-sdk/v1/" + name
	resp, err := httpClient.Get(u)
	if err != nil {
		return fmt.Sprintf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Sprintf("GET %s: reading the body: %v", u, err)
	}
	if resp.StatusCode != 200 || string(got) != string(want) {
		first, _, _ := strings.Cut(string(got), "\n")
		return fmt.Sprintf("GET %s = %d, %d bytes starting %q; want sdk/js/%s (%d bytes)", u, resp.StatusCode, len(got), first, name, len(want))
	}
	return ""
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// jsonString is v as JSON, for comparing with JSON.stringify in the page.
func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := json.Marshal(string(b))
	return string(q)
}
