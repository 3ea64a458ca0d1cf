package browsertest

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/extedge/extedge/internal/testenv"
)

// tableView is what a user sees of an <ext-data-table> (see viewJS).
type tableView struct {
	State        string            `json:"state"`
	Tag          string            `json:"tag"`
	IDs          []string          `json:"ids"`
	Cells        [][]string        `json:"cells"`
	Headers      []string          `json:"headers"`
	Scopes       []string          `json:"scopes"`
	AriaSort     map[string]string `json:"ariaSort"` // key → aria-sort; absent when the column has none
	Busy         string            `json:"busy"`
	Page         string            `json:"page"`
	Range        string            `json:"range"`
	PageSize     string            `json:"pageSize"`
	PrevDisabled bool              `json:"prevDisabled"`
	NextDisabled bool              `json:"nextDisabled"`
	StateText    string            `json:"stateText"`
	StateRole    string            `json:"stateRole"`
	HasRetry     bool              `json:"hasRetry"`
}

const viewJS = `((t) => {
  const q = (s) => t.querySelector(s);
  const rows = [...t.querySelectorAll("tbody tr[data-row]")];
  const ariaSort = {};
  for (const th of t.querySelectorAll("thead th")) if (th.hasAttribute("aria-sort")) ariaSort[th.dataset.key] = th.getAttribute("aria-sort");
  const st = q("tbody tr.ext-dt-state td");
  return {
    state: t.dataset.state,
    tag: [q("table")?.tagName, q("thead")?.tagName, q("tbody")?.tagName].join(" "),
    ids: rows.map((r) => r.cells[0].textContent),
    cells: rows.map((r) => [...r.cells].map((c) => c.textContent)),
    headers: [...t.querySelectorAll("thead th")].map((th) => th.textContent),
    scopes: [...t.querySelectorAll("thead th")].map((th) => th.scope),
    ariaSort,
    busy: q("table").getAttribute("aria-busy"),
    page: q(".ext-dt-page").textContent,
    range: q(".ext-dt-range").textContent,
    pageSize: q("select").value,
    prevDisabled: q("[data-action=prev] button").disabled,
    nextDisabled: q("[data-action=next] button").disabled,
    stateText: st ? st.textContent : "",
    stateRole: st ? st.getAttribute("role") : "",
    hasRetry: !!q("[data-action=retry] button"),
  };
})(document.getElementById(%q))`

func (p *browserPage) table(t *testing.T, id string) tableView {
	t.Helper()
	var v tableView
	p.eval(t, &v, fmt.Sprintf(viewJS, id))
	return v
}

// run runs chromedp actions against the page with a deadline.
func (p *browserPage) run(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// click clicks the element at sel with the mouse, as a user would.
func (p *browserPage) click(t *testing.T, sel string) {
	t.Helper()
	p.run(t, "clicking "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// press focuses sel and types key on the keyboard.
func (p *browserPage) press(t *testing.T, sel, key string) {
	t.Helper()
	p.run(t, "pressing "+key+" on "+sel, chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent(key))
}

type tableEvent struct {
	Type   string         `json:"type"`
	Table  string         `json:"table"`
	Detail map[string]any `json:"detail"`
}

func (p *browserPage) lastEvent(t *testing.T) tableEvent {
	t.Helper()
	var evs []tableEvent
	p.eval(t, &evs, "window.events")
	if len(evs) == 0 {
		t.Fatal("no table events")
	}
	return evs[len(evs)-1]
}

// pageIDs are the ids of one page of the fake API sorted by key/direction.
func pageIDs(t *testing.T, key, direction string, page, size int) []string {
	t.Helper()
	rows, err := sortedItems(key, direction)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := (page - 1) * size; i < len(rows) && i < page*size; i++ {
		ids = append(ids, rows[i].ID)
	}
	return ids
}

// waitCall waits until the list endpoint was called with a query holding
// every one of want ("sort=name", …), and returns that query.
func waitCall(t *testing.T, g *fakeGateway, from int, want ...string) string {
	t.Helper()
	var got string
	waitUntil(t, 10*time.Second, func() string {
		calls := g.itemCalls()
		for _, q := range calls[min(from, len(calls)):] {
			vals, _ := url.ParseQuery(q)
			ok := true
			for _, w := range want {
				k, v, _ := strings.Cut(w, "=")
				ok = ok && vals.Get(k) == v
			}
			if ok {
				got = q
				return ""
			}
		}
		return fmt.Sprintf("no call with %v since call %d; calls %v", want, from, calls)
	})
	return got
}

// waitTable waits until the table shows ids in state ready.
func waitTable(t *testing.T, p *browserPage, id string, ids []string) tableView {
	t.Helper()
	var v tableView
	waitUntil(t, 10*time.Second, func() string {
		v = p.table(t, id)
		if v.State != "ready" || !slices.Equal(v.IDs, ids) {
			return fmt.Sprintf("table %s: state %s, rows %v; want ready with %v", id, v.State, v.IDs, ids)
		}
		return ""
	})
	return v
}

// waitState waits until the table is in state, and returns what it shows.
func waitState(t *testing.T, p *browserPage, id, state string) tableView {
	t.Helper()
	var v tableView
	waitUntil(t, 10*time.Second, func() string {
		v = p.table(t, id)
		if v.State != state {
			return fmt.Sprintf("table %s is %s, want %s", id, v.State, state)
		}
		return ""
	})
	return v
}

// TestUIKitInBrowser drives <ext-data-table>, <ext-button> and <ext-badge>
// (sdk/ui) in headless Chromium with real mouse and keyboard input: the
// server-side table sorts and pages through the fake API, which is the
// only place rows are ordered.
func TestUIKitInBrowser(t *testing.T) {
	g := newFakeGateway(t)
	p := startBrowser(t)
	base := g.URL() + "/ext-ui/" + testExtensionID + "/" + testContentHash + "/ui-table.html"
	p.navigate(t, base, `window.UI_READY === true && document.getElementById("server").dataset.state === "ready"`)

	t.Run("the first page renders from the API as a real table", func(t *testing.T) {
		waitCall(t, g, 0, "page=1", "page_size=10")
		v := waitTable(t, p, "server", pageIDs(t, "", "", 1, 10))
		if v.Tag != "TABLE THEAD TBODY" {
			t.Errorf("elements %q, want TABLE THEAD TBODY", v.Tag)
		}
		if !slices.Equal(v.Headers, []string{"ID", "Name", "Status", "Amount"}) || !slices.Equal(v.Scopes, []string{"col", "col", "col", "col"}) {
			t.Errorf("headers %v scopes %v", v.Headers, v.Scopes)
		}
		for _, k := range []string{"id", "name", "status", "amount"} {
			if v.AriaSort[k] != "none" {
				t.Errorf("aria-sort of unsorted sortable column %s = %q, want none", k, v.AriaSort[k])
			}
		}
		if v.Page != "Page 1 of 3" || v.Range != "1–10 of 25" || v.PageSize != "10" || !v.PrevDisabled || v.NextDisabled || v.Busy != "false" {
			t.Errorf("pager %+v", v)
		}
		if got := v.Cells[0]; got[2] != testItems[0].Status || got[3] != fmt.Sprintf("$%d", testItems[0].Amount) {
			t.Errorf("rendered cells %v", got)
		}
		var badge struct{ Tag, Tone string }
		p.eval(t, &badge, `(() => { const b = document.querySelector("#server tbody tr td:nth-child(3) ext-badge"); return { tag: b?.tagName, tone: b?.getAttribute("tone") }; })()`)
		if badge.Tag != "EXT-BADGE" || badge.Tone != "success" {
			t.Errorf("status cell badge %+v, want EXT-BADGE with tone success (render returned a Node)", badge)
		}
		var capt string
		p.eval(t, &capt, `document.querySelector("#server caption").textContent`)
		if capt != "Items" {
			t.Errorf("caption %q", capt)
		}
	})

	t.Run("clicking a header sorts server-side, clicking again reverses", func(t *testing.T) {
		from := len(g.itemCalls())
		p.click(t, "#server th[data-key=name] button")
		waitCall(t, g, from, "sort=name", "direction=asc", "page=1")
		v := waitTable(t, p, "server", pageIDs(t, "name", "asc", 1, 10))
		if v.AriaSort["name"] != "ascending" || v.AriaSort["id"] != "none" {
			t.Errorf("aria-sort %v, want name ascending, others none", v.AriaSort)
		}
		if e := p.lastEvent(t); e.Type != "sort-change" || e.Detail["key"] != "name" || e.Detail["direction"] != "asc" {
			t.Errorf("event %+v", e)
		}
		from = len(g.itemCalls())
		p.click(t, "#server th[data-key=name] button")
		waitCall(t, g, from, "sort=name", "direction=desc")
		v = waitTable(t, p, "server", pageIDs(t, "name", "desc", 1, 10))
		if v.AriaSort["name"] != "descending" {
			t.Errorf("aria-sort %v, want name descending", v.AriaSort)
		}
	})

	t.Run("Enter and Space on a header sort from the keyboard and keep the focus", func(t *testing.T) {
		sel := "#server th[data-key=amount] button"
		from := len(g.itemCalls())
		p.press(t, sel, kb.Enter)
		waitCall(t, g, from, "sort=amount", "direction=asc")
		v := waitTable(t, p, "server", pageIDs(t, "amount", "asc", 1, 10))
		if v.AriaSort["amount"] != "ascending" || v.AriaSort["name"] != "none" {
			t.Errorf("aria-sort %v", v.AriaSort)
		}
		var focused bool
		p.eval(t, &focused, `document.activeElement === document.querySelector(`+jsString(sel)+`)`)
		if !focused {
			t.Error("after sorting by Enter the focus left the header button")
		}
		from = len(g.itemCalls())
		p.run(t, "pressing Space", chromedp.KeyEvent(" "))
		waitCall(t, g, from, "sort=amount", "direction=desc")
		v = waitTable(t, p, "server", pageIDs(t, "amount", "desc", 1, 10))
		if v.AriaSort["amount"] != "descending" {
			t.Errorf("aria-sort %v", v.AriaSort)
		}
	})

	t.Run("a larger page size means fewer pages", func(t *testing.T) {
		from := len(g.itemCalls())
		p.eval(t, nil, `(() => { const s = document.querySelector("#server select"); s.value = "20"; s.dispatchEvent(new Event("change", { bubbles: true })); })()`)
		waitCall(t, g, from, "page_size=20", "page=1", "sort=amount", "direction=desc")
		v := waitTable(t, p, "server", pageIDs(t, "amount", "desc", 1, 20))
		if v.Page != "Page 1 of 2" || v.Range != "1–20 of 25" || v.PageSize != "20" {
			t.Errorf("pager %q %q %q, want Page 1 of 2, 1–20 of 25, 20", v.Page, v.Range, v.PageSize)
		}
		if e := p.lastEvent(t); e.Type != "page-size-change" || e.Detail["pageSize"] != 20.0 || e.Detail["page"] != 1.0 {
			t.Errorf("event %+v", e)
		}
	})

	t.Run("Next pages server-side and is disabled on the last page", func(t *testing.T) {
		from := len(g.itemCalls())
		p.click(t, "#server [data-action=next] button")
		waitCall(t, g, from, "page=2", "page_size=20")
		v := waitTable(t, p, "server", pageIDs(t, "amount", "desc", 2, 20))
		if len(v.IDs) != 5 || v.Page != "Page 2 of 2" || v.Range != "21–25 of 25" || !v.NextDisabled || v.PrevDisabled {
			t.Errorf("page 2: %+v", v)
		}
		if e := p.lastEvent(t); e.Type != "page-change" || e.Detail["page"] != 2.0 {
			t.Errorf("event %+v", e)
		}
	})

	t.Run("while the API answers the table is busy", func(t *testing.T) {
		gate := make(chan struct{})
		g.setItems(func(a *itemsAPI) { a.gate = gate })
		p.click(t, "#server [data-action=prev] button")
		p.waitFor(t, "the loading state", `document.getElementById("server").dataset.state === "loading" && document.querySelector("#server table").getAttribute("aria-busy") === "true"`, 10*time.Second)
		g.setItems(func(a *itemsAPI) { a.gate = nil })
		close(gate)
		waitTable(t, p, "server", pageIDs(t, "amount", "desc", 1, 20))
		if v := p.table(t, "server"); v.Busy != "false" {
			t.Errorf("aria-busy after loading = %q", v.Busy)
		}
	})

	t.Run("an API error shows its message, Retry loads again", func(t *testing.T) {
		g.setItems(func(a *itemsAPI) { a.fail = 1 })
		p.click(t, "#server [data-action=next] button")
		v := waitState(t, p, "server", "error")
		if !strings.Contains(v.StateText, "the backend is down") || v.StateRole != "alert" || !v.HasRetry || len(v.IDs) != 0 {
			t.Errorf("error state: text %q role %q retry %v rows %v", v.StateText, v.StateRole, v.HasRetry, v.IDs)
		}
		from := len(g.itemCalls())
		p.click(t, "#server [data-action=retry] button")
		waitCall(t, g, from, "page=2", "page_size=20")
		waitTable(t, p, "server", pageIDs(t, "amount", "desc", 2, 20))
		if e := p.lastEvent(t); e.Type != "retry" {
			t.Errorf("last event %+v, want retry", e)
		}
	})

	t.Run("a row click reports the row, also by keyboard", func(t *testing.T) {
		want := pageIDs(t, "amount", "desc", 2, 20)[1]
		p.click(t, `#server tbody tr[data-row="1"] td`)
		if e := p.lastEvent(t); e.Type != "row-click" || e.Detail["index"] != 1.0 || e.Detail["row"].(map[string]any)["id"] != want {
			t.Errorf("event %+v, want row-click of %s", e, want)
		}
		p.press(t, `#server tbody tr[data-row="0"]`, kb.Enter)
		want = pageIDs(t, "amount", "desc", 2, 20)[0]
		if e := p.lastEvent(t); e.Type != "row-click" || e.Detail["row"].(map[string]any)["id"] != want {
			t.Errorf("event %+v, want row-click of %s", e, want)
		}
	})

	t.Run("an empty answer shows the empty text", func(t *testing.T) {
		g.setItems(func(a *itemsAPI) { a.empty = true })
		defer g.setItems(func(a *itemsAPI) { a.empty = false })
		p.click(t, "#server th[data-key=id] button")
		v := waitState(t, p, "server", "empty")
		if v.StateText != "Nothing here" || v.StateRole != "status" || v.Page != "Page 1 of 1" || v.Range != "0–0 of 0" || !v.NextDisabled {
			t.Errorf("empty state %+v", v)
		}
	})

	t.Run("the header sticks while the body scrolls", func(t *testing.T) {
		g.setItems(func(a *itemsAPI) { a.empty = false })
		p.click(t, "#server th[data-key=id] button")
		waitTable(t, p, "server", pageIDs(t, "id", "desc", 1, 20))
		var r struct {
			Position string  `json:"position"`
			Scrolled float64 `json:"scrolled"`
			Offset   float64 `json:"offset"`
		}
		p.eval(t, &r, `(() => {
			const box = document.querySelector("#server .ext-dt-scroll");
			box.scrollTop = 150;
			const th = document.querySelector("#server thead th");
			return { position: getComputedStyle(th).position, scrolled: box.scrollTop,
				offset: th.getBoundingClientRect().top - box.getBoundingClientRect().top };
		})()`)
		if r.Position != "sticky" || r.Scrolled < 100 || r.Offset < 0 || r.Offset > 2 {
			t.Errorf("header %+v, want sticky at the top of a scrolled box", r)
		}
	})

	t.Run("a client-side table sorts and pages its own rows without the API", func(t *testing.T) {
		from := len(g.itemCalls())
		v := waitTable(t, p, "local", []string{"L-1", "L-2", "L-3"})
		if v.Page != "Page 1 of 2" || v.AriaSort["status"] != "" {
			t.Errorf("local: %+v (a column without sortable has no aria-sort)", v)
		}
		p.click(t, "#local th[data-key=name] button")
		waitTable(t, p, "local", []string{"L-2", "L-4", "L-5"}) // Apple, Banana, Cherry
		p.click(t, "#local [data-action=next] button")
		waitTable(t, p, "local", []string{"L-3", "L-1"}) // Fig, Pear
		if n := len(g.itemCalls()); n != from {
			t.Errorf("the client-side table called the API (%d calls)", n-from)
		}
	})

	t.Run("buttons: variants from tokens, loading swallows clicks", func(t *testing.T) {
		var r struct {
			Primary, Secondary, Danger, Accent, Bg, DangerToken string
			BusyDisabled                                        bool
			BusyAria                                            string
			Spinner                                             bool
		}
		p.eval(t, &r, `(() => {
			const bg = (id) => getComputedStyle(document.querySelector("#" + id + " > button")).backgroundColor;
			const probe = document.createElement("div"); document.body.append(probe);
			const color = (v) => { probe.style.color = "var(" + v + ")"; return getComputedStyle(probe).color; };
			const busy = document.querySelector("#busy > button");
			return { primary: bg("primary"), secondary: bg("secondary"), danger: bg("danger"),
				accent: color("--alga-color-accent"), bg: color("--alga-color-bg"), dangerToken: color("--alga-color-danger"),
				busyDisabled: busy.disabled, busyAria: busy.getAttribute("aria-busy"), spinner: !!busy.querySelector(".ext-spinner") };
		})()`)
		if r.Primary != r.Accent || r.Secondary != r.Bg || r.Danger != r.DangerToken {
			t.Errorf("backgrounds primary %s secondary %s danger %s; tokens accent %s bg %s danger %s", r.Primary, r.Secondary, r.Danger, r.Accent, r.Bg, r.DangerToken)
		}
		if !r.BusyDisabled || r.BusyAria != "true" || !r.Spinner {
			t.Errorf("loading button: disabled %v aria-busy %q spinner %v", r.BusyDisabled, r.BusyAria, r.Spinner)
		}
		p.click(t, "#primary")
		p.click(t, "#busy")
		p.eval(t, nil, `document.getElementById("busy").click()`)
		var clicks map[string]int
		p.eval(t, &clicks, "window.clicks")
		if clicks["primary"] != 1 || clicks["busy"] != 0 {
			t.Errorf("clicks %v, want primary 1 and busy 0", clicks)
		}
		p.eval(t, nil, `document.getElementById("busy").loading = false`)
		p.click(t, "#busy")
		p.eval(t, &clicks, "window.clicks")
		if clicks["busy"] != 1 {
			t.Errorf("clicks %v, want busy 1 once it stopped loading", clicks)
		}
	})

	t.Run("the PSA-style {data, meta: {total}} answer is accepted", func(t *testing.T) {
		from := len(g.itemCalls())
		p.navigate(t, base+"?format=psa", `window.UI_READY === true`)
		waitCall(t, g, from, "format=psa", "page=1")
		v := waitTable(t, p, "server", pageIDs(t, "", "", 1, 10))
		if v.Page != "Page 1 of 3" || v.Range != "1–10 of 25" {
			t.Errorf("pager %q %q, want the total from meta", v.Page, v.Range)
		}
	})
}

// TestUIKitTheme mounts a UI kit page in the host's sandboxed iframe: the
// host's theme tokens style the components, and a theme switch restyles
// them, including the dark defaults of tokens the host does not send.
func TestUIKitTheme(t *testing.T) {
	g := newFakeGateway(t)
	s := openHostPage(t, g)
	p := s.browserPage
	// The demo PSA's two themes (internal/devstack/psa/page.html).
	light := map[string]string{"color-bg": "#ffffff", "color-fg": "#1f2937", "color-accent": "#2563eb", "color-muted": "#6b7280", "color-border": "#e5e7eb"}
	dark := map[string]string{"color-bg": "#111827", "color-fg": "#f9fafb", "color-accent": "#60a5fa", "color-muted": "#9ca3af", "color-border": "#374151"}
	var id int
	p.call(t, &id, "mount", map[string]any{"theme": light, "path": "ui-theme.html"})

	type look struct{ Theme, Button, Body, Badge, Header string }
	lookOf := func() look {
		var l look
		var v string
		s.cmd(t, &v, id, "attr", "html", "data-alga-theme")
		l.Theme = v
		s.cmd(t, &l.Button, id, "style", "#b > button", "background-color")
		s.cmd(t, &l.Body, id, "style", "body", "background-color")
		s.cmd(t, &l.Badge, id, "style", "#badge", "color")
		s.cmd(t, &l.Header, id, "style", "#t thead th", "background-color")
		return l
	}
	wantLight := look{Theme: "light", Button: "rgb(37, 99, 235)", Body: "rgb(255, 255, 255)", Badge: "rgb(220, 38, 38)"}
	wantDark := look{Theme: "dark", Button: "rgb(96, 165, 250)", Body: "rgb(17, 24, 39)", Badge: "rgb(248, 113, 113)"}
	check := func(want look) look {
		var l look
		waitUntil(t, 10*time.Second, func() string {
			l = lookOf()
			got := l
			got.Header = ""
			if got != want {
				return fmt.Sprintf("look %+v, want %+v", l, want)
			}
			return ""
		})
		return l
	}
	before := check(wantLight)
	s.call(t, nil, "setTheme", id, dark)
	after := check(wantDark)
	if before.Header == after.Header {
		t.Errorf("the header background (a token derived from bg and fg) stayed %s after the theme switch", after.Header)
	}
	s.call(t, nil, "setTheme", id, light)
	check(wantLight)
}

// TestReactBindings renders <DataTable> with useExtension() from
// sdk/ui/react.js, with React and ReactDOM from npm at the versions
// testdata/npm pins, inside the host's sandboxed iframe.
func TestReactBindings(t *testing.T) {
	g := newFakeGateway(t)
	g.npmDir = testenv.NPMPackages(t, "testdata/npm")
	s := openHostPage(t, g)
	p := s.browserPage
	var id int
	p.call(t, &id, "mount", map[string]any{"path": "react.html"})

	rows := func(want []string) {
		t.Helper()
		waitUntil(t, 10*time.Second, func() string {
			var ids []string
			s.cmd(t, &ids, id, "texts", "ext-data-table tbody tr[data-row] td:first-child")
			if !slices.Equal(ids, want) {
				return fmt.Sprintf("rows %v, want %v", ids, want)
			}
			return ""
		})
	}
	var version []string
	s.cmd(t, &version, id, "texts", "#react-version")
	rows(pageIDs(t, "", "", 1, 10))
	s.cmd(t, &version, id, "texts", "#react-version")
	if !slices.Equal(version, []string{"19.2.9"}) {
		t.Errorf("React.version %v, want the pinned 19.2.9", version)
	}
	calls := g.itemCalls()
	var auth string
	for _, c := range g.Calls() {
		if c.Path == itemsPath {
			auth = c.Auth
		}
	}
	if !strings.HasPrefix(auth, "Bearer tok-") {
		t.Errorf("the list call carried Authorization %q; useExtension's api.fetch sends the session token", auth)
	}

	from := len(calls)
	s.cmd(t, nil, id, "click", "ext-data-table [data-action=next] button")
	waitCall(t, g, from, "page=2", "page_size=10")
	rows(pageIDs(t, "", "", 2, 10))
	var pageText []string
	s.cmd(t, &pageText, id, "texts", "ext-data-table .ext-dt-page")
	if !slices.Equal(pageText, []string{"Page 2 of 3"}) {
		t.Errorf("pager %v", pageText)
	}

	from = len(g.itemCalls())
	s.cmd(t, nil, id, "click", "ext-data-table th[data-key=name] button")
	waitCall(t, g, from, "sort=name", "direction=asc", "page=1")
	rows(pageIDs(t, "name", "asc", 1, 10))
	var ariaSort string
	s.cmd(t, &ariaSort, id, "attr", "ext-data-table th[data-key=name]", "aria-sort")
	if ariaSort != "ascending" {
		t.Errorf("aria-sort %q", ariaSort)
	}

	from = len(g.itemCalls())
	s.cmd(t, nil, id, "choose", "ext-data-table select", "20")
	waitCall(t, g, from, "page_size=20", "page=1", "sort=name")
	rows(pageIDs(t, "name", "asc", 1, 20))
	s.cmd(t, &pageText, id, "texts", "ext-data-table .ext-dt-page")
	if !slices.Equal(pageText, []string{"Page 1 of 2"}) {
		t.Errorf("pager after page size 20: %v", pageText)
	}
}
