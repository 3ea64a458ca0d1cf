package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// maxDepth bounds JSON nesting; a valid manifest needs 5 levels.
const maxDepth = 64

// MaxItems bounds every list and map in a manifest (endpoints, events,
// capabilities, assets, ui.routes, precompiled).
const MaxItems = 1000

type jsonKind uint8

const (
	kindNull jsonKind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

func (k jsonKind) String() string {
	return [...]string{"null", "a boolean", "a number", "a string", "an array", "an object"}[k]
}

// jnode is a decoded JSON value that keeps object keys in document order.
type jnode struct {
	kind jsonKind
	str  string      // string
	num  json.Number // number
	keys []string    // object
	vals []*jnode    // object values (parallel to keys) or array items
}

// decoder builds a Manifest from JSON, collecting issues instead of
// stopping at the first one. Paths with structural issues are remembered so
// that the semantic checks do not report the same field twice.
type decoder struct {
	issues []Issue
	bad    map[string]bool
}

func (d *decoder) fail(path, msg string) {
	d.issues = append(d.issues, Issue{Path: path, Message: msg})
	if d.bad == nil {
		d.bad = make(map[string]bool)
	}
	d.bad[path] = true
}

// isBad reports whether p is at or below a path that already has a
// structural issue.
func (d *decoder) isBad(p string) bool {
	if len(d.bad) == 0 {
		return false
	}
	for i := 1; i < len(p); i++ {
		// A split inside a quoted key yields an unbalanced prefix, which is
		// never a recorded path.
		if (p[i] == '.' || p[i] == '[') && d.bad[p[:i]] {
			return true
		}
	}
	return d.bad[p]
}

func (d *decoder) decode(data []byte) *Manifest {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	root, err := d.readValue(dec, "$", 0)
	if err != nil {
		d.fail("$", "invalid JSON: "+err.Error())
		return nil
	}
	if _, err := dec.Token(); err != io.EOF {
		d.fail("$", "invalid JSON: unexpected data after the top-level value")
		return nil
	}
	if root.kind != kindObject {
		d.fail("$", "must be an object, not "+root.kind.String())
		return nil
	}
	m := &Manifest{}
	d.object(root, "$", []field{
		{"name", true, func(n *jnode, p string) { m.Name = d.str(n, p) }},
		{"publisher", true, func(n *jnode, p string) { m.Publisher = d.str(n, p) }},
		{"version", true, func(n *jnode, p string) { m.Version = d.str(n, p) }},
		{"runtime", true, func(n *jnode, p string) { m.Runtime = d.str(n, p) }},
		{"capabilities", false, func(n *jnode, p string) { m.Capabilities = d.strs(n, p) }},
		{"ui", false, func(n *jnode, p string) { m.UI = d.ui(n, p) }},
		{"api", false, func(n *jnode, p string) { m.API = d.api(n, p) }},
		{"events", false, func(n *jnode, p string) {
			d.array(n, p, func(n *jnode, p string) {
				var ev Event
				d.object(n, p, []field{
					{"topic", true, func(n *jnode, p string) { ev.Topic = d.str(n, p) }},
					{"handler", true, func(n *jnode, p string) { ev.Handler = d.str(n, p) }},
				})
				m.Events = append(m.Events, ev)
			})
		}},
		{"entry", false, func(n *jnode, p string) { m.Entry = d.nonEmptyStr(n, p) }},
		{"precompiled", false, func(n *jnode, p string) {
			if n.kind != kindObject {
				d.fail(p, "must be an object, not "+n.kind.String())
				return
			}
			if len(n.keys) > MaxItems {
				d.fail(p, fmt.Sprintf("must have at most %d entries", MaxItems))
				return
			}
			m.Precompiled = make(map[string]string, len(n.keys))
			for i, k := range n.keys {
				m.Precompiled[k] = d.nonEmptyStr(n.vals[i], p+keyPath(k))
			}
		}},
		{"assets", false, func(n *jnode, p string) { m.Assets = d.strs(n, p) }},
		{"sbom", false, func(n *jnode, p string) { m.SBOM = d.nonEmptyStr(n, p) }},
	})
	return m
}

func (d *decoder) ui(n *jnode, p string) *UI {
	ui := &UI{}
	d.object(n, p, []field{
		{"type", true, func(n *jnode, p string) { ui.Type = d.str(n, p) }},
		{"entry", true, func(n *jnode, p string) { ui.Entry = d.str(n, p) }},
		{"hooks", false, func(n *jnode, p string) {
			ui.Hooks = &UIHooks{}
			hook := func(dst **UIHook) func(*jnode, string) {
				return func(n *jnode, p string) {
					h := &UIHook{}
					d.object(n, p, []field{{"label", true, func(n *jnode, p string) { h.Label = d.str(n, p) }}})
					*dst = h
				}
			}
			d.object(n, p, []field{
				{"appMenu", false, hook(&ui.Hooks.AppMenu)},
				{"clientPortalMenu", false, hook(&ui.Hooks.ClientPortalMenu)},
			})
		}},
		{"routes", false, func(n *jnode, p string) {
			d.array(n, p, func(n *jnode, p string) {
				var r UIRoute
				d.object(n, p, []field{
					{"path", true, func(n *jnode, p string) { r.Path = d.str(n, p) }},
					{"iframePath", true, func(n *jnode, p string) { r.IframePath = d.str(n, p) }},
				})
				ui.Routes = append(ui.Routes, r)
			})
		}},
	})
	return ui
}

func (d *decoder) api(n *jnode, p string) *API {
	api := &API{}
	d.object(n, p, []field{
		{"endpoints", true, func(n *jnode, p string) {
			api.Endpoints = []Endpoint{}
			d.array(n, p, func(n *jnode, p string) {
				var ep Endpoint
				d.object(n, p, []field{
					{"method", true, func(n *jnode, p string) { ep.Method = d.str(n, p) }},
					{"path", true, func(n *jnode, p string) { ep.Path = d.str(n, p) }},
					{"handler", true, func(n *jnode, p string) { ep.Handler = d.str(n, p) }},
					{"timeout_ms", false, func(n *jnode, p string) { ep.TimeoutMS = d.timeout(n, p) }},
				})
				api.Endpoints = append(api.Endpoints, ep)
			})
		}},
	})
	return api
}

// timeout decodes timeout_ms. Range errors are left to the semantic check,
// which knows the platform maximum; values that do not fit an int become -1.
func (d *decoder) timeout(n *jnode, p string) int {
	if n.kind != kindNumber {
		d.fail(p, "must be an integer, not "+n.kind.String())
		return 0
	}
	if i, err := n.num.Int64(); err == nil {
		if i < 1 || i > math.MaxInt32 {
			return -1
		}
		return int(i)
	}
	f, err := n.num.Float64()
	if err != nil || f != math.Trunc(f) {
		d.fail(p, fmt.Sprintf("must be an integer, not %s", n.num))
		return 0
	}
	if f < 1 || f > math.MaxInt32 {
		return -1
	}
	return int(f)
}

type field struct {
	name     string
	required bool
	set      func(n *jnode, path string)
}

// object decodes n's keys with fields; unknown keys and missing required
// keys are issues.
func (d *decoder) object(n *jnode, p string, fields []field) {
	if n.kind != kindObject {
		d.fail(p, "must be an object, not "+n.kind.String())
		return
	}
	seen := make([]bool, len(fields))
	for i, k := range n.keys {
		known := false
		for j, f := range fields {
			if f.name == k {
				known, seen[j] = true, true
				f.set(n.vals[i], p+keyPath(k))
				break
			}
		}
		if !known {
			d.fail(p+keyPath(k), fmt.Sprintf("unknown field %q%s", k, suggest(k, fields)))
		}
	}
	for j, f := range fields {
		if f.required && !seen[j] {
			d.fail(p+keyPath(f.name), "is required")
		}
	}
}

func (d *decoder) array(n *jnode, p string, item func(n *jnode, p string)) {
	if n.kind != kindArray {
		d.fail(p, "must be an array, not "+n.kind.String())
		return
	}
	if len(n.vals) > MaxItems {
		d.fail(p, fmt.Sprintf("must have at most %d items", MaxItems))
		return
	}
	for i, v := range n.vals {
		item(v, fmt.Sprintf("%s[%d]", p, i))
	}
}

func (d *decoder) str(n *jnode, p string) string {
	if n.kind != kindString {
		d.fail(p, "must be a string, not "+n.kind.String())
		return ""
	}
	return n.str
}

// nonEmptyStr decodes an optional string field that, when present, must not
// be empty (an empty value would vanish on re-marshalling).
func (d *decoder) nonEmptyStr(n *jnode, p string) string {
	s := d.str(n, p)
	if n.kind == kindString && s == "" {
		d.fail(p, "must not be empty")
	}
	return s
}

func (d *decoder) strs(n *jnode, p string) []string {
	var out []string
	d.array(n, p, func(n *jnode, p string) { out = append(out, d.str(n, p)) })
	return out
}

// readValue reads one JSON value. Duplicate object keys are issues; the
// first occurrence wins.
func (d *decoder) readValue(dec *json.Decoder, p string, depth int) (*jnode, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("unexpected end of input")
		}
		return nil, err
	}
	switch t := tok.(type) {
	case nil:
		return &jnode{kind: kindNull}, nil
	case bool:
		return &jnode{kind: kindBool}, nil
	case json.Number:
		return &jnode{kind: kindNumber, num: t}, nil
	case string:
		return &jnode{kind: kindString, str: t}, nil
	case json.Delim:
		switch t {
		case '[':
			n := &jnode{kind: kindArray}
			for i := 0; dec.More(); i++ {
				v, err := d.readValue(dec, fmt.Sprintf("%s[%d]", p, i), depth+1)
				if err != nil {
					return nil, err
				}
				n.vals = append(n.vals, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return n, nil
		case '{':
			n := &jnode{kind: kindObject}
			var seen map[string]bool
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, errors.New("object key is not a string")
				}
				v, err := d.readValue(dec, p+keyPath(k), depth+1)
				if err != nil {
					return nil, err
				}
				if seen == nil {
					seen = make(map[string]bool)
				}
				if seen[k] {
					d.fail(p+keyPath(k), fmt.Sprintf("duplicate key %q", k))
					continue
				}
				seen[k] = true
				n.keys = append(n.keys, k)
				n.vals = append(n.vals, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return n, nil
		}
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// keyPath renders an object key as a JSON path step: ".key" for
// identifier-like keys, else `["key"]`.
func keyPath(k string) string {
	if validIdent(k) {
		return "." + k
	}
	b, _ := json.Marshal(k)
	return "[" + string(b) + "]"
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// suggest returns ` (did you mean "x"?)` when k is a likely typo of a known
// field name, else "".
func suggest(k string, fields []field) string {
	if len(k) > 64 {
		return ""
	}
	best, bestDist := "", 3
	for _, f := range fields {
		if d := editDistance(strings.ToLower(k), strings.ToLower(f.name)); d < bestDist {
			best, bestDist = f.name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
