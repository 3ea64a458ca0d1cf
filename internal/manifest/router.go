package manifest

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"
)

// Router matches request paths against a manifest's endpoints (§4 "Route
// matching at the gateway"). It is immutable after NewRouter and safe for
// concurrent use. See the package documentation for the precedence rule.
type Router struct {
	root routeNode
}

// Match is a matched endpoint and its URL-decoded params. Params is non-nil
// (empty when the pattern has none).
type Match struct {
	Endpoint Endpoint
	Params   map[string]string
}

// routeNode is one segment position in the pattern trie. Literal children
// are tried before the param child, which yields the precedence order.
type routeNode struct {
	literals map[string]*routeNode
	param    *routeNode
	routes   []*route // patterns ending here, at most one per method
}

type route struct {
	endpoint Endpoint
	params   []routeParam
}

type routeParam struct {
	index int // segment position
	name  string
}

// NewRouter compiles endpoints. Invalid methods or paths, duplicate
// (method, path) pairs and ambiguous patterns are reported as a
// *ValidationError with paths like "$.api.endpoints[1].path".
func NewRouter(endpoints []Endpoint) (*Router, error) {
	r, issues := compileRoutes(endpoints, 0)
	if len(issues) > 0 {
		return nil, &ValidationError{Issues: issues}
	}
	return r, nil
}

// compileRoutes builds a router and reports every endpoint problem. A
// maxTimeout of 0 skips the timeout_ms check.
func compileRoutes(endpoints []Endpoint, maxTimeout int) (*Router, []Issue) {
	var issues []Issue
	add := func(p, msg string) { issues = append(issues, Issue{Path: p, Message: msg}) }
	r := &Router{}
	// shapes maps "METHOD shape" (params written as ":") to the first endpoint
	// index with that shape: equal shapes match the same paths with the same
	// precedence.
	shapes := make(map[string]int, len(endpoints))
	for i, ep := range endpoints {
		p := fmt.Sprintf("$.api.endpoints[%d]", i)
		methodOK := true
		switch {
		case ep.Method == "":
			add(p+".method", "is required")
			methodOK = false
		case !validMethod(ep.Method):
			add(p+".method", fmt.Sprintf("%q is not allowed: must be one of GET, POST, PUT, PATCH, DELETE", ep.Method))
			methodOK = false
		}
		if maxTimeout > 0 && ep.TimeoutMS != 0 && (ep.TimeoutMS < 1 || ep.TimeoutMS > maxTimeout) {
			add(p+".timeout_ms", fmt.Sprintf("must be between 1 and %d", maxTimeout))
		}
		segs, params, err := parsePattern(ep.Path)
		if err != nil {
			add(p+".path", err.Error())
			continue
		}
		if !methodOK {
			continue
		}
		var shape strings.Builder
		shape.WriteString(ep.Method)
		shape.WriteByte(' ')
		for _, s := range segs {
			shape.WriteByte('/')
			if isParamSeg(s) {
				shape.WriteByte(':')
			} else {
				shape.WriteString(s)
			}
		}
		key := shape.String()
		if j, dup := shapes[key]; dup {
			other := endpoints[j]
			if other.Path == ep.Path {
				add(p+".path", fmt.Sprintf("duplicate endpoint %s %s (also $.api.endpoints[%d])", ep.Method, ep.Path, j))
			} else {
				add(p+".path", fmt.Sprintf("ambiguous: %s %s and $.api.endpoints[%d] (%s %s) match the same paths with the same precedence", ep.Method, ep.Path, j, other.Method, other.Path))
			}
			continue
		}
		shapes[key] = i
		n := &r.root
		for _, s := range segs {
			if isParamSeg(s) {
				if n.param == nil {
					n.param = &routeNode{}
				}
				n = n.param
				continue
			}
			if n.literals == nil {
				n.literals = make(map[string]*routeNode)
			}
			c := n.literals[s]
			if c == nil {
				c = &routeNode{}
				n.literals[s] = c
			}
			n = c
		}
		n.routes = append(n.routes, &route{endpoint: ep, params: params})
	}
	return r, issues
}

func isParamSeg(s string) bool { return s[0] == ':' }

// isLiteralByte reports whether c may appear in a literal segment: RFC 3986
// pchar without percent-encoding.
func isLiteralByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@", c) >= 0
}

// parsePattern splits an endpoint path into segments and checks its syntax.
func parsePattern(p string) (segs []string, params []routeParam, err error) {
	switch {
	case p == "":
		return nil, nil, fmt.Errorf("is required")
	case p[0] != '/':
		return nil, nil, fmt.Errorf("%q must start with \"/\"", p)
	case len(p) > maxRoutePathLen:
		return nil, nil, fmt.Errorf("must be at most %d bytes", maxRoutePathLen)
	case p == "/":
		return nil, nil, nil
	}
	segs = strings.Split(p[1:], "/")
	for i, s := range segs {
		switch {
		case s == "":
			return nil, nil, fmt.Errorf("%q has an empty segment (trailing or double \"/\")", p)
		case s[0] == ':':
			name := s[1:]
			if !validIdent(name) {
				return nil, nil, fmt.Errorf("%q: param %q must be \":\" followed by an identifier ([A-Za-z_][A-Za-z0-9_]*)", p, s)
			}
			for _, q := range params {
				if q.name == name {
					return nil, nil, fmt.Errorf("%q: param %q appears twice", p, name)
				}
			}
			params = append(params, routeParam{index: i, name: name})
		case s == "." || s == "..":
			return nil, nil, fmt.Errorf("%q must not contain \".\" or \"..\" segments", p)
		default:
			for j := 0; j < len(s); j++ {
				if !isLiteralByte(s[j]) {
					return nil, nil, fmt.Errorf("%q: literal segment %q may only contain A-Z a-z 0-9 and -._~!$&'()*+,;=:@", p, s)
				}
			}
		}
	}
	return segs, params, nil
}

// Match finds the endpoint for method and the escaped request path without
// query (as in url.URL.EscapedPath, relative to the extension:
// "/agreements/42").
// HEAD is matched as GET. When no endpoint for the method matches but some
// endpoints match the path under other methods, found is false and allow
// lists those methods, sorted, with HEAD added when GET is there (for a 405).
// When nothing matches the path at all, allow is nil (a 404).
func (r *Router) Match(method, path string) (m Match, allow []string, found bool) {
	if method == "HEAD" {
		method = "GET"
	}
	var buf [16]string
	segs, ok := splitRequestPath(path, buf[:0])
	if !ok {
		return Match{}, nil, false
	}
	if rt := r.root.find(segs, method); rt != nil {
		params := make(map[string]string, len(rt.params))
		for _, p := range rt.params {
			params[p.name] = segs[p.index]
		}
		return Match{Endpoint: rt.endpoint, Params: params}, nil, true
	}
	var methods []string
	r.root.collectMethods(segs, &methods)
	if len(methods) == 0 {
		return Match{}, nil, false
	}
	for _, m := range methods {
		if m == "GET" {
			methods = append(methods, "HEAD")
			break
		}
	}
	sort.Strings(methods)
	return Match{}, methods, false
}

// splitRequestPath splits an escaped path into percent-decoded segments.
// It fails for paths not starting with "/", empty segments, bad escapes
// and segments that decode to invalid UTF-8. "/" has zero segments.
func splitRequestPath(p string, segs []string) ([]string, bool) {
	if p == "" || p[0] != '/' {
		return nil, false
	}
	if p == "/" {
		return segs, true
	}
	rest := p[1:]
	for {
		i := strings.IndexByte(rest, '/')
		s := rest
		if i >= 0 {
			s = rest[:i]
		}
		if s == "" {
			return nil, false
		}
		if strings.IndexByte(s, '%') >= 0 {
			d, err := url.PathUnescape(s)
			if err != nil || !utf8.ValidString(d) {
				return nil, false
			}
			s = d
		}
		segs = append(segs, s)
		if i < 0 {
			return segs, true
		}
		rest = rest[i+1:]
	}
}

// find returns the highest-precedence route for method matching segs:
// depth-first, literal child before param child.
func (n *routeNode) find(segs []string, method string) *route {
	if len(segs) == 0 {
		for _, rt := range n.routes {
			if rt.endpoint.Method == method {
				return rt
			}
		}
		return nil
	}
	if c := n.literals[segs[0]]; c != nil {
		if rt := c.find(segs[1:], method); rt != nil {
			return rt
		}
	}
	if n.param != nil {
		return n.param.find(segs[1:], method)
	}
	return nil
}

// collectMethods adds the methods of every route matching segs to out,
// without duplicates.
func (n *routeNode) collectMethods(segs []string, out *[]string) {
	if len(segs) == 0 {
	next:
		for _, rt := range n.routes {
			for _, m := range *out {
				if m == rt.endpoint.Method {
					continue next
				}
			}
			*out = append(*out, rt.endpoint.Method)
		}
		return
	}
	if c := n.literals[segs[0]]; c != nil {
		c.collectMethods(segs[1:], out)
	}
	if n.param != nil {
		n.param.collectMethods(segs[1:], out)
	}
}
