package manifest

import (
	"reflect"
	"strings"
	"testing"
)

func mustRouter(t testing.TB, eps ...Endpoint) *Router {
	t.Helper()
	r, err := NewRouter(eps)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ep(method, path string) Endpoint {
	return Endpoint{Method: method, Path: path, Handler: "dist/main#" + strings.ToLower(method)}
}

func TestRouterMatch(t *testing.T) {
	r := mustRouter(t,
		ep("GET", "/"),
		ep("GET", "/agreements"),
		ep("GET", "/agreements/:id"),
		ep("POST", "/agreements/sync"),
		ep("PUT", "/agreements/:id"),
		ep("GET", "/:a/b"),
		ep("GET", "/a/:b"),
		ep("GET", "/files/:name/raw"),
		ep("DELETE", "/users/:user/items/:item"),
		ep("GET", "/x/:p/z"),
		ep("GET", "/x/y/:q"),
		ep("GET", "/v1/items:batch"),
	)
	tests := []struct {
		name         string
		method, path string
		wantPath     string // matched pattern, "" for no match
		wantParams   map[string]string
		wantAllow    []string
	}{
		{"root pattern matches /", "GET", "/", "/", map[string]string{}, nil},
		{"literal path matches", "GET", "/agreements", "/agreements", map[string]string{}, nil},
		{"param captures a segment", "GET", "/agreements/42", "/agreements/:id", map[string]string{"id": "42"}, nil},
		{"literal segment beats param", "POST", "/agreements/sync", "/agreements/sync", map[string]string{}, nil},
		{"param still serves its method when a literal exists for another", "GET", "/agreements/sync", "/agreements/:id", map[string]string{"id": "sync"}, nil},
		{"leftmost literal wins: /a/:b beats /:a/b", "GET", "/a/b", "/a/:b", map[string]string{"b": "b"}, nil},
		{"param-first pattern matches when the literal-first one cannot", "GET", "/z/b", "/:a/b", map[string]string{"a": "z"}, nil},
		{"precedence backtracks when the literal branch has no full match", "GET", "/x/y/z", "/x/y/:q", map[string]string{"q": "z"}, nil},
		{"backtracking to the param branch", "GET", "/x/w/z", "/x/:p/z", map[string]string{"p": "w"}, nil},
		{"two params", "DELETE", "/users/u%201/items/7", "/users/:user/items/:item", map[string]string{"user": "u 1", "item": "7"}, nil},
		{"HEAD matches GET", "HEAD", "/agreements/42", "/agreements/:id", map[string]string{"id": "42"}, nil},
		{"params are URL-decoded", "GET", "/agreements/a%20b%C3%A9", "/agreements/:id", map[string]string{"id": "a bé"}, nil},
		{"a param may decode to contain a slash", "GET", "/agreements/a%2Fb", "/agreements/:id", map[string]string{"id": "a/b"}, nil},
		{"plus is not a space in paths", "GET", "/agreements/a+b", "/agreements/:id", map[string]string{"id": "a+b"}, nil},
		{"encoded literal matches the literal", "GET", "/agreement%73", "/agreements", map[string]string{}, nil},
		{"colon inside a literal", "GET", "/v1/items:batch", "/v1/items:batch", map[string]string{}, nil},
		{"405 lists allowed methods", "PATCH", "/agreements/42", "", nil, []string{"GET", "HEAD", "PUT"}},
		{"405 for a literal path lists all matching patterns' methods", "DELETE", "/agreements/sync", "", nil, []string{"GET", "HEAD", "POST", "PUT"}},
		{"405 without GET has no HEAD", "GET", "/users/1/items/2", "", nil, []string{"DELETE"}},
		{"HEAD gets 405 when there is no GET", "HEAD", "/users/1/items/2", "", nil, []string{"DELETE"}},
		{"methods are case-sensitive", "get", "/agreements", "", nil, []string{"GET", "HEAD"}},
		{"unknown path is 404", "GET", "/nope/nope/nope/nope", "", nil, nil},
		{"segment counts must be equal", "GET", "/agreements/42/extra", "", nil, nil},
		{"trailing slash is not stripped", "GET", "/agreements/", "", nil, nil},
		{"empty segments never match", "GET", "/agreements//42", "", nil, nil},
		{"double slash at the start never matches", "GET", "//agreements", "", nil, nil},
		{"bad escape is no match", "GET", "/agreements/%zz", "", nil, nil},
		{"truncated escape is no match", "GET", "/agreements/%4", "", nil, nil},
		{"escape decoding to invalid UTF-8 is no match", "GET", "/agreements/%ff", "", nil, nil},
		{"relative path is no match", "GET", "agreements", "", nil, nil},
		{"empty path is no match", "GET", "", "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, allow, found := r.Match(tt.method, tt.path)
			if tt.wantPath == "" {
				if found {
					t.Fatalf("matched %s, want no match", m.Endpoint.Path)
				}
				if !reflect.DeepEqual(allow, tt.wantAllow) {
					t.Fatalf("allow = %v, want %v", allow, tt.wantAllow)
				}
				return
			}
			if !found {
				t.Fatalf("no match (allow %v), want %s", allow, tt.wantPath)
			}
			if m.Endpoint.Path != tt.wantPath || !reflect.DeepEqual(m.Params, tt.wantParams) || allow != nil {
				t.Fatalf("got %s %v (allow %v), want %s %v", m.Endpoint.Path, m.Params, allow, tt.wantPath, tt.wantParams)
			}
			wantMethod := tt.method
			if wantMethod == "HEAD" {
				wantMethod = "GET"
			}
			if m.Endpoint.Method != wantMethod {
				t.Fatalf("endpoint method %s, want %s", m.Endpoint.Method, wantMethod)
			}
		})
	}
}

func TestRouterParamNamesPerEndpoint(t *testing.T) {
	// The same position may carry different names under different methods.
	r := mustRouter(t, ep("GET", "/a/:x"), ep("PUT", "/a/:y"))
	if m, _, _ := r.Match("GET", "/a/1"); m.Params["x"] != "1" || len(m.Params) != 1 {
		t.Fatalf("GET params = %v", m.Params)
	}
	if m, _, _ := r.Match("PUT", "/a/1"); m.Params["y"] != "1" || len(m.Params) != 1 {
		t.Fatalf("PUT params = %v", m.Params)
	}
}

func TestNewRouterRejects(t *testing.T) {
	tests := []struct {
		name     string
		eps      []Endpoint
		path     string
		fragment string
	}{
		{"ambiguous patterns are rejected", []Endpoint{ep("GET", "/a/:x"), ep("GET", "/a/:y")}, "$.api.endpoints[1].path", "ambiguous"},
		{"ambiguous multi-param patterns are rejected", []Endpoint{ep("GET", "/:a/x/:b"), ep("GET", "/:c/x/:d")}, "$.api.endpoints[1].path", "ambiguous"},
		{"duplicate (method, path) is rejected", []Endpoint{ep("POST", "/a"), ep("POST", "/a")}, "$.api.endpoints[1].path", "duplicate endpoint POST /a"},
		{"bad method is rejected", []Endpoint{ep("OPTIONS", "/a")}, "$.api.endpoints[0].method", "not allowed"},
		{"bad path is rejected", []Endpoint{ep("GET", "/a/")}, "$.api.endpoints[0].path", "empty segment"},
		{"overlong path is rejected", []Endpoint{ep("GET", "/"+strings.Repeat("a", 1024))}, "$.api.endpoints[0].path", "at most 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRouter(tt.eps)
			if err == nil {
				t.Fatal("NewRouter accepted the endpoints")
			}
			if !hasIssue(issuesOf(t, err), tt.path, tt.fragment) {
				t.Fatalf("want %s containing %q, got %v", tt.path, tt.fragment, err)
			}
		})
	}
}

func TestNewRouterAcceptsOrderedOverlaps(t *testing.T) {
	tests := []struct {
		name string
		eps  []Endpoint
	}{
		{"/:a/b and /a/:b are ordered by the leftmost literal", []Endpoint{ep("GET", "/:a/b"), ep("GET", "/a/:b")}},
		{"same pattern under different methods", []Endpoint{ep("GET", "/a/:x"), ep("DELETE", "/a/:y")}},
		{"literal and param at the same position", []Endpoint{ep("GET", "/a/:id"), ep("GET", "/a/sync")}},
		{"different segment counts", []Endpoint{ep("GET", "/:a"), ep("GET", "/:a/:b")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewRouter(tt.eps); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func BenchmarkRouterMatch(b *testing.B) {
	var eps []Endpoint
	for _, res := range []string{"agreements", "tickets", "clients", "invoices", "projects", "contacts", "assets", "contracts"} {
		eps = append(eps,
			ep("GET", "/"+res), ep("POST", "/"+res),
			ep("GET", "/"+res+"/:id"), ep("PUT", "/"+res+"/:id"), ep("DELETE", "/"+res+"/:id"),
			ep("POST", "/"+res+"/sync"), ep("GET", "/"+res+"/:id/notes/:note"))
	}
	r := mustRouter(b, eps...)
	cases := []struct{ name, method, path string }{
		{"literal", "GET", "/contracts"},
		{"param", "GET", "/contracts/12345"},
		{"two_params_escaped", "GET", "/contracts/12%2034/notes/n-1"},
		{"405", "PATCH", "/contracts/12345"},
		{"404", "GET", "/nope/1/2"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.Match(c.method, c.path)
			}
		})
	}
}

func TestRouterIsSafeForConcurrentUse(t *testing.T) {
	r := mustRouter(t, ep("GET", "/a/:id"), ep("POST", "/a/sync"))
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 200; i++ {
				if m, _, ok := r.Match("GET", "/a/x"); !ok || m.Params["id"] != "x" {
					t.Error("concurrent match failed")
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}
