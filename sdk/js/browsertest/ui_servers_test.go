package browsertest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// itemsPath is the fake list endpoint the UI kit's tables page through.
const itemsPath = "/api/ext/" + testExtensionID + "/items"

// item is one row of the fake list endpoint.
type item struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Amount int    `json:"amount"`
}

// testItems are 25 rows whose name and amount orders differ from the id
// order, so every sort is visible in the first rows.
var testItems = func() []item {
	names := []string{"Kilo", "Alpha", "Tango", "Echo", "Quebec", "Bravo", "Xray", "Golf", "Mike", "Delta",
		"Zulu", "Hotel", "Papa", "Charlie", "Whiskey", "India", "Oscar", "Foxtrot", "Sierra", "Juliet",
		"Lima", "Romeo", "November", "Uniform", "Victor"}
	statuses := []string{"active", "pending", "expired"}
	out := make([]item, len(names))
	for i, n := range names {
		out[i] = item{ID: fmt.Sprintf("IT-%02d", i+1), Name: n, Status: statuses[i%3], Amount: (i*37)%101 + 1}
	}
	return out
}()

// itemsAPI is the fake list endpoint's behaviour, which a test changes
// between steps: fail answers the next calls with 500, empty answers with
// no rows, and gate, while set, holds every answer until it is closed, so a
// test can see the loading state without racing it.
type itemsAPI struct {
	fail  int
	empty bool
	gate  chan struct{}
}

// setItems changes the endpoint's behaviour.
func (g *fakeGateway) setItems(fn func(*itemsAPI)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	fn(&g.items)
}

// itemCalls are the queries of the calls to the list endpoint, in order.
func (g *fakeGateway) itemCalls() []string {
	var out []string
	for _, c := range g.Calls() {
		if c.Path == itemsPath {
			out = append(out, c.Query)
		}
	}
	return out
}

// sortedItems answers what the guest of the sample does: testItems sorted
// by key and direction (ties by id), one page of them.
func sortedItems(key, direction string) ([]item, error) {
	by := map[string]func(a, b item) int{
		"":       func(a, b item) int { return 0 },
		"id":     func(a, b item) int { return 0 },
		"name":   func(a, b item) int { return strings.Compare(a.Name, b.Name) },
		"status": func(a, b item) int { return strings.Compare(a.Status, b.Status) },
		"amount": func(a, b item) int { return cmp.Compare(a.Amount, b.Amount) },
	}[key]
	if by == nil {
		return nil, fmt.Errorf("sort must be one of id, name, status, amount")
	}
	if direction != "" && direction != "asc" && direction != "desc" {
		return nil, fmt.Errorf("direction must be asc or desc")
	}
	rows := slices.Clone(testItems)
	slices.SortStableFunc(rows, func(a, b item) int {
		c := cmp.Or(by(a, b), strings.Compare(a.ID, b.ID))
		if direction == "desc" {
			return -c
		}
		return c
	})
	return rows, nil
}

// serveItems is GET /items?page=&page_size=&sort=&direction=[&format=psa]:
// {items, total}, or {data, meta: {total}} with format=psa.
func (g *fakeGateway) serveItems(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	api := g.items
	if g.items.fail > 0 {
		g.items.fail--
	}
	g.mu.Unlock()
	if api.gate != nil {
		select {
		case <-api.gate:
		case <-r.Context().Done():
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	q := r.URL.Query()
	fail := func(status int, code, msg string) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	}
	if api.fail > 0 {
		fail(500, "backend_down", "the backend is down")
		return
	}
	page, err1 := strconv.Atoi(cmp.Or(q.Get("page"), "1"))
	size, err2 := strconv.Atoi(cmp.Or(q.Get("page_size"), "10"))
	if err1 != nil || err2 != nil || page < 1 || size < 1 {
		fail(400, "invalid_query", "page and page_size must be positive integers")
		return
	}
	rows, err := sortedItems(q.Get("sort"), q.Get("direction"))
	if err != nil {
		fail(400, "invalid_query", err.Error())
		return
	}
	if api.empty {
		rows = nil
	}
	total := len(rows)
	start := min((page-1)*size, total)
	pageRows := rows[start:min(start+size, total)]
	if pageRows == nil {
		pageRows = []item{}
	}
	if q.Get("format") == "psa" {
		json.NewEncoder(w).Encode(map[string]any{"data": pageRows, "meta": map[string]int{"total": total, "page": page}})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"items": pageRows, "total": total})
}

// vendorModules are React's CommonJS builds from npm, served as ES modules
// under the test extension's vendor/ the way an extension without a build
// step would ship them: name → (file in node_modules, the modules it
// requires).
var vendorModules = map[string]struct {
	file     string
	requires []string
}{
	"react.js":            {"react/cjs/react.production.js", nil},
	"scheduler.js":        {"scheduler/cjs/scheduler.production.js", nil},
	"react-dom.js":        {"react-dom/cjs/react-dom.production.js", []string{"react"}},
	"react-dom-client.js": {"react-dom/cjs/react-dom-client.production.js", []string{"react", "react-dom", "scheduler"}},
}

// vendorModule wraps one of vendorModules in an ES module whose default
// export is the CommonJS module.exports.
func (g *fakeGateway) vendorModule(name string) ([]byte, error) {
	m, ok := vendorModules[name]
	if !ok || g.npmDir == "" {
		return nil, os.ErrNotExist
	}
	src, err := os.ReadFile(filepath.Join(g.npmDir, filepath.FromSlash(m.file)))
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	deps := []string{}
	for i, r := range m.requires {
		fmt.Fprintf(&b, "import dep%d from \"./%s.js\";\n", i, r)
		deps = append(deps, fmt.Sprintf("%q: dep%d", r, i))
	}
	fmt.Fprintf(&b, "const require = (n) => { const m = ({%s})[n]; if (!m) throw new Error(\"vendor: no module \" + n); return m; };\n", strings.Join(deps, ", "))
	b.WriteString("const module = { exports: {} }; const exports = module.exports; const process = { env: { NODE_ENV: \"production\" } };\n")
	b.Write(src)
	b.WriteString("\nexport default module.exports;\n")
	return []byte(b.String()), nil
}
