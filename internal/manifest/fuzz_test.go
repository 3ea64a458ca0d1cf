package manifest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every rejection is a
// *ValidationError with JSON paths, and that an accepted manifest marshals
// and parses back to the same value.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/valid/*.json")
	invalid, _ := filepath.Glob("testdata/invalid/*.json")
	files = append(append(files, invalid...), "testdata/spec-example.json")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"name":"a.b","publisher":"p","version":"0.0.0","runtime":"wasm@1","capabilities":[],"api":{"endpoints":[]},"events":[],"precompiled":{},"assets":[],"ui":{"type":"iframe","entry":"ui/i","hooks":{},"routes":[]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data, Options{})
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Issues) == 0 {
				t.Fatalf("rejection is not a *ValidationError with issues: %v", err)
			}
			for _, is := range ve.Issues {
				if !strings.HasPrefix(is.Path, "$") || is.Message == "" {
					t.Fatalf("bad issue %+v", is)
				}
			}
			return
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		m2, err := Parse(out, Options{})
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the manifest:\n%#v\n%#v", m, m2)
		}
		if _, err := NewRouter(apiEndpoints(m)); err != nil {
			t.Fatalf("valid manifest's endpoints do not compile: %v", err)
		}
	})
}

func apiEndpoints(m *Manifest) []Endpoint {
	if m.API == nil {
		return nil
	}
	return m.API.Endpoints
}

// FuzzRouterMatch compiles fuzzed patterns ("METHOD /path" per line) and
// checks Match against a brute-force reference: the highest-precedence
// pattern for the method, or the sorted methods of all matching patterns.
func FuzzRouterMatch(f *testing.F) {
	f.Add("GET /agreements\nGET /agreements/:id\nPOST /agreements/sync", "GET", "/agreements/sync")
	f.Add("GET /:a/b\nGET /a/:b", "GET", "/a/b")
	f.Add("GET /x/:p/z\nGET /x/y/:q\nPUT /x/y/z", "HEAD", "/x/y/z")
	f.Add("DELETE /u/:id", "GET", "/u/%2F")
	f.Add("GET /", "GET", "/")
	f.Add("GET /a", "GET", "/a/")
	f.Add("GET /a/:b", "GET", "/a/%zz")
	f.Fuzz(func(t *testing.T, patterns, method, path string) {
		var eps []Endpoint
		for _, line := range strings.Split(patterns, "\n") {
			m, p, ok := strings.Cut(line, " ")
			if !ok {
				continue
			}
			eps = append(eps, Endpoint{Method: m, Path: p, Handler: "dist/main"})
		}
		r, err := NewRouter(eps)
		if err != nil {
			return
		}
		got, allow, found := r.Match(method, path)
		want, wantAllow, wantFound := referenceMatch(eps, method, path)
		if found != wantFound || !reflect.DeepEqual(allow, wantAllow) {
			t.Fatalf("Match(%q, %q) = found %v allow %v, want found %v allow %v", method, path, found, allow, wantFound, wantAllow)
		}
		if found && (got.Endpoint != want.Endpoint || !reflect.DeepEqual(got.Params, want.Params)) {
			t.Fatalf("Match(%q, %q) = %+v, want %+v", method, path, got, want)
		}
	})
}

// referenceMatch is a linear, obviously-correct implementation of the §4
// matching rules used to check Router.
func referenceMatch(eps []Endpoint, method, path string) (Match, []string, bool) {
	if method == "HEAD" {
		method = "GET"
	}
	segs, ok := splitRequestPath(path, nil)
	if !ok {
		return Match{}, nil, false
	}
	var best *Endpoint
	var bestSegs []string
	var methods []string
	for i := range eps {
		psegs, _, err := parsePattern(eps[i].Path)
		if err != nil || len(psegs) != len(segs) {
			continue
		}
		matches := true
		for j, s := range psegs {
			if !isParamSeg(s) && s != segs[j] {
				matches = false
				break
			}
		}
		if !matches {
			continue
		}
		if !slices.Contains(methods, eps[i].Method) {
			methods = append(methods, eps[i].Method)
		}
		if eps[i].Method != method {
			continue
		}
		if best == nil || beats(psegs, bestSegs) {
			best, bestSegs = &eps[i], psegs
		}
	}
	if best != nil {
		params := map[string]string{}
		for j, s := range bestSegs {
			if isParamSeg(s) {
				params[s[1:]] = segs[j]
			}
		}
		return Match{Endpoint: *best, Params: params}, nil, true
	}
	if len(methods) == 0 {
		return Match{}, nil, false
	}
	if slices.Contains(methods, "GET") {
		methods = append(methods, "HEAD")
	}
	slices.Sort(methods)
	return Match{}, methods, false
}

// beats reports whether pattern a has precedence over b: at the first
// position where one has a literal and the other a param, the literal wins.
func beats(a, b []string) bool {
	for i := range a {
		la, lb := !isParamSeg(a[i]), !isParamSeg(b[i])
		if la != lb {
			return la
		}
	}
	return false
}
