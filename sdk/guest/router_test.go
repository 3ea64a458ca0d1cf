package guest

import (
	"encoding/json"
	"testing"
)

func tag(name string) HandlerFunc {
	return func(r *Request) Response { return Text(200, name) }
}

func TestRouterDispatch(t *testing.T) {
	rt := newRouter()
	rt.handle("dist/handlers/list", tag("list"))
	rt.handle("dist/main.wasm#get", tag("get-export"))
	rt.route("GET", "/agreements/:id", tag("get"))
	rt.route("GET", "/agreements/sync", tag("sync-get"))
	rt.route("POST", "/agreements/sync", tag("sync"))
	rt.route("*", "/any/:x", tag("any"))
	rt.route("DELETE", "/any/:x", tag("any-delete"))
	rt.route("GET", "/:a/b", tag("param-first"))
	rt.route("GET", "/a/:b", tag("literal-first"))

	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"exact handler name wins", Request{Endpoint: Endpoint{Handler: "dist/handlers/list", Method: "GET", Path: "/agreements/:id"}}, "list"},
		{"handler name ignores .wasm suffix", Request{Endpoint: Endpoint{Handler: "dist/handlers/list.wasm"}}, "list"},
		{"handler name ignores default #handler export", Request{Endpoint: Endpoint{Handler: "dist/handlers/list#handler"}}, "list"},
		{"handler name keeps a non-default export", Request{Endpoint: Endpoint{Handler: "dist/main#get"}}, "get-export"},
		{"unknown handler falls back to endpoint pattern", Request{Endpoint: Endpoint{Handler: "dist/x", Method: "GET", Path: "/agreements/:id"}}, "get"},
		{"endpoint pattern with method", Request{Endpoint: Endpoint{Method: "POST", Path: "/agreements/sync"}}, "sync"},
		{"concrete path matches param route", Request{HTTP: HTTP{Method: "GET", Path: "/agreements/42"}}, "get"},
		{"literal segment beats param", Request{HTTP: HTTP{Method: "GET", Path: "/agreements/sync"}}, "sync-get"},
		{"leftmost literal wins", Request{HTTP: HTTP{Method: "GET", Path: "/a/b"}}, "literal-first"},
		{"HEAD matches GET route", Request{HTTP: HTTP{Method: "HEAD", Path: "/agreements/7"}}, "get"},
		{"method is case-insensitive", Request{HTTP: HTTP{Method: "post", Path: "/agreements/sync"}}, "sync"},
		{"star route matches any method", Request{HTTP: HTTP{Method: "PATCH", Path: "/any/1"}}, "any"},
		{"specific method beats star", Request{HTTP: HTTP{Method: "DELETE", Path: "/any/1"}}, "any-delete"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := rt.dispatch(&tt.req)
			if string(resp.Body) != tt.want {
				t.Fatalf("dispatched to %q (status %d), want %q", resp.Body, resp.Status, tt.want)
			}
		})
	}
}

func TestRouterNotFound(t *testing.T) {
	rt := newRouter()
	rt.route("GET", "/agreements/:id", tag("get"))
	tests := []struct {
		name string
		req  Request
	}{
		{"no routes match the path", Request{HTTP: HTTP{Method: "GET", Path: "/nope"}}},
		{"segment count must be equal", Request{HTTP: HTTP{Method: "GET", Path: "/agreements/1/x"}}},
		{"method must match", Request{HTTP: HTTP{Method: "POST", Path: "/agreements/1"}}},
		{"unknown handler and no path", Request{Endpoint: Endpoint{Handler: "dist/other"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := rt.dispatch(&tt.req)
			if resp.Status != 404 {
				t.Fatalf("status %d, want 404", resp.Status)
			}
			var eb ErrorBody
			if err := json.Unmarshal(resp.Body, &eb); err != nil {
				t.Fatal(err)
			}
			if eb.Error.Code != "not_found" {
				t.Fatalf("code %q, want not_found", eb.Error.Code)
			}
			if resp.Headers["content-type"] != "application/json" {
				t.Fatalf("content-type %q", resp.Headers["content-type"])
			}
		})
	}
}

func TestRouterParams(t *testing.T) {
	rt := newRouter()
	var got map[string]string
	rt.route("GET", "/t/:tenant/items/:id", func(r *Request) Response {
		got = map[string]string{"tenant": r.Param("tenant"), "id": r.Param("id")}
		return Text(200, "")
	})
	tests := []struct {
		name   string
		req    Request
		tenant string
		id     string
	}{
		{"params are taken from the concrete path", Request{HTTP: HTTP{Method: "GET", Path: "/t/acme/items/42"}}, "acme", "42"},
		{"params are URL-decoded", Request{HTTP: HTTP{Method: "GET", Path: "/t/a%20b/items/x%2Fy"}}, "a b", "x/y"},
		{"gateway params are not overwritten", Request{
			HTTP:     HTTP{Method: "GET", Path: "/t/acme/items/42"},
			Endpoint: Endpoint{Params: map[string]string{"id": "from-gateway"}}}, "acme", "from-gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt.dispatch(&tt.req)
			if got["tenant"] != tt.tenant || got["id"] != tt.id {
				t.Fatalf("params %v, want tenant=%q id=%q", got, tt.tenant, tt.id)
			}
		})
	}
}

func TestRouterRegistrationPanics(t *testing.T) {
	tests := []struct {
		name string
		fn   func(rt *router)
	}{
		{"empty handler name", func(rt *router) { rt.handle("", tag("x")) }},
		{"nil handler func", func(rt *router) { rt.handle("dist/a", nil) }},
		{"duplicate handler", func(rt *router) { rt.handle("dist/a", tag("x")); rt.handle("dist/a", tag("y")) }},
		{"duplicate handler in another spelling", func(rt *router) { rt.handle("dist/a", tag("x")); rt.handle("dist/a.wasm#handler", tag("y")) }},
		{"pattern without leading slash", func(rt *router) { rt.route("GET", "a/b", tag("x")) }},
		{"empty param name", func(rt *router) { rt.route("GET", "/a/:", tag("x")) }},
		{"nil route func", func(rt *router) { rt.route("GET", "/a", nil) }},
		{"duplicate route", func(rt *router) { rt.route("GET", "/a", tag("x")); rt.route("get", "/a", tag("y")) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tt.fn(newRouter())
		})
	}
}
