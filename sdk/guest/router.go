package guest

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
)

// HandlerFunc handles one call.
type HandlerFunc func(r *Request) Response

// router maps calls to handlers. Registrations happen in init functions, so
// the mutex only guards against tests registering concurrently.
type router struct {
	mu        sync.RWMutex
	byHandler map[string]HandlerFunc // manifest handler value, verbatim
	byCanon   map[string]HandlerFunc // canonical form of the same
	routes    []route
	events    map[string]EventFunc // by topic
}

type route struct {
	method  string // uppercase; "*" matches any
	pattern string
	segs    []string
	fn      HandlerFunc
}

var defaultRouter = newRouter()

func newRouter() *router {
	return &router{byHandler: map[string]HandlerFunc{}, byCanon: map[string]HandlerFunc{}, events: map[string]EventFunc{}}
}

// Handle registers fn for calls whose `endpoint.handler` is handler — the
// value written in the manifest, e.g. "dist/handlers/list" or
// "dist/main.wasm#list". A ".wasm" suffix and the default "#handler" export
// are ignored when comparing, so "dist/hello", "dist/hello.wasm" and
// "dist/hello#handler" name the same handler. Handle panics on an empty
// name, a nil fn or a duplicate registration.
func Handle(handler string, fn HandlerFunc) { defaultRouter.handle(handler, fn) }

// Route registers fn for a method and a path pattern such as
// "/agreements/:id" (segments are literals or `:param`). Method "*" matches
// any method; HEAD requests match GET routes. Route panics on a malformed
// pattern, a nil fn or a duplicate registration.
func Route(method, pattern string, fn HandlerFunc) { defaultRouter.route(method, pattern, fn) }

// Serve dispatches r to the registered handler, as the ABI export does, and
// returns its response. It is meant for native unit tests of handlers; a
// panic in the handler propagates to the caller.
func Serve(r *Request) Response { return normalize(defaultRouter.dispatch(r)) }

func (rt *router) handle(handler string, fn HandlerFunc) {
	if handler == "" {
		panic("guest: Handle with empty handler name")
	}
	if fn == nil {
		panic("guest: Handle " + handler + " with nil func")
	}
	canon := canonicalHandler(handler)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if _, dup := rt.byCanon[canon]; dup {
		panic("guest: handler " + handler + " registered twice")
	}
	rt.byHandler[handler] = fn
	rt.byCanon[canon] = fn
}

func (rt *router) route(method, pattern string, fn HandlerFunc) {
	method = strings.ToUpper(strings.TrimSpace(method))
	if method == "" {
		method = "*"
	}
	if fn == nil {
		panic("guest: Route " + method + " " + pattern + " with nil func")
	}
	segs, err := splitPattern(pattern)
	if err != nil {
		panic("guest: Route " + method + " " + pattern + ": " + err.Error())
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, r := range rt.routes {
		if r.method == method && r.pattern == pattern {
			panic("guest: route " + method + " " + pattern + " registered twice")
		}
	}
	rt.routes = append(rt.routes, route{method: method, pattern: pattern, segs: segs, fn: fn})
}

// dispatch picks the handler: an event goes to its topic's OnEvent
// handler; otherwise the exact endpoint.handler name, then its
// canonical form, then a route whose pattern equals endpoint.path, then the
// most specific route matching http.path. Nothing matched is a 404
// `not_found` JSON error.
func (rt *router) dispatch(r *Request) Response {
	if r.Event != nil {
		return rt.dispatchEvent(r)
	}
	rt.mu.RLock()
	fn := rt.lookup(r)
	rt.mu.RUnlock()
	if fn == nil {
		return Error(404, CodeNotFound, fmt.Sprintf("no handler for %s %s", r.HTTP.Method, r.HTTP.Path))
	}
	return fn(r)
}

func (rt *router) lookup(r *Request) HandlerFunc {
	if h := r.Endpoint.Handler; h != "" {
		if fn, ok := rt.byHandler[h]; ok {
			return fn
		}
		if fn, ok := rt.byCanon[canonicalHandler(h)]; ok {
			return fn
		}
	}
	method := r.Endpoint.Method
	if method == "" {
		method = r.HTTP.Method
	}
	method = strings.ToUpper(method)
	if method == "HEAD" {
		method = "GET"
	}
	if p := r.Endpoint.Path; p != "" {
		for _, rr := range rt.routes {
			if rr.pattern == p && methodMatches(rr.method, method) {
				return rr.fn
			}
		}
	}
	if r.HTTP.Path == "" {
		return nil
	}
	segs := strings.Split(strings.TrimPrefix(r.HTTP.Path, "/"), "/")
	var best *route
	for i := range rt.routes {
		rr := &rt.routes[i]
		if !methodMatches(rr.method, method) || !rr.matches(segs) {
			continue
		}
		if best == nil || rr.moreSpecific(best) {
			best = rr
		}
	}
	if best == nil {
		return nil
	}
	if r.Endpoint.Params == nil {
		r.Endpoint.Params = map[string]string{}
	}
	for i, s := range best.segs {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			if _, set := r.Endpoint.Params[name]; !set {
				r.Endpoint.Params[name] = unescapeSegment(segs[i])
			}
		}
	}
	return best.fn
}

func methodMatches(routeMethod, method string) bool {
	return routeMethod == "*" || routeMethod == method
}

func (rr *route) matches(segs []string) bool {
	if len(segs) != len(rr.segs) {
		return false
	}
	for i, s := range rr.segs {
		if !strings.HasPrefix(s, ":") && s != segs[i] {
			return false
		}
	}
	return true
}

// moreSpecific reports whether rr beats other for the same path: at the
// first position where they differ in kind, the literal segment wins (as at
// the gateway, SPEC §4); a specific method beats "*".
func (rr *route) moreSpecific(other *route) bool {
	for i := range rr.segs {
		lit, otherLit := !strings.HasPrefix(rr.segs[i], ":"), !strings.HasPrefix(other.segs[i], ":")
		if lit != otherLit {
			return lit
		}
	}
	return rr.method != "*" && other.method == "*"
}

func splitPattern(pattern string) ([]string, error) {
	if !strings.HasPrefix(pattern, "/") {
		return nil, fmt.Errorf("pattern must start with /")
	}
	segs := strings.Split(pattern[1:], "/")
	for _, s := range segs {
		if s == ":" {
			return nil, fmt.Errorf("empty parameter name")
		}
	}
	return segs, nil
}

func unescapeSegment(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// canonicalHandler reduces a manifest handler reference `path[#export]` to
// a comparable form: no ".wasm" suffix, no default "#handler" export.
func canonicalHandler(ref string) string {
	path, export, _ := strings.Cut(ref, "#")
	path = strings.TrimPrefix(strings.TrimSuffix(path, ".wasm"), "./")
	if export == "" || export == "handler" {
		return path
	}
	return path + "#" + export
}

// normalize applies the ABI defaults the host would apply anyway, so native
// tests see what the wire carries.
func normalize(resp Response) Response {
	if resp.Status == 0 {
		resp.Status = 200
	}
	return resp
}
