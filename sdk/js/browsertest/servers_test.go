package browsertest

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"strings"
	"sync"
	"testing"

	sdkjs "github.com/extedge/extedge/sdk/js"
	sdkui "github.com/extedge/extedge/sdk/ui"
)

const testExtensionID = "com.acme.test"

// testContentHash is the content hash under which the fake gateway serves the
// test extension's UI.
var testContentHash = "sha256:" + strings.Repeat("ab", 32)

// apiCall is one request the fake /api/ext/ endpoint answered.
type apiCall struct {
	Method string
	Path   string // escaped path, as the client sent it
	Query  string
	Auth   string // the Authorization header
	Origin string // the Origin header
}

// fakeGateway plays the parts of the extedge gateway the SDK talks to:
// /ext-sdk/v1/ (the embedded SDK), /ext-ui/ (the test extension's pages with
// the SPEC §8.3 default Content-Security-Policy) and /api/ext/ (records the
// call and echoes it back as JSON, with CORS for the sandbox's origin "null").
type fakeGateway struct {
	srv        *httptest.Server
	hostOrigin string // for frame-ancestors; set before any page loads

	// npmDir is the node_modules directory whose React the fake gateway
	// serves under the test extension's vendor/ (see vendorModule); "" when
	// the test does not need it.
	npmDir string

	mu    sync.Mutex
	calls []apiCall
	items itemsAPI
}

func newFakeGateway(t *testing.T) *fakeGateway {
	g := &fakeGateway{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ext-sdk/"+sdkjs.Version+"/", g.serveSDK)
	mux.HandleFunc("/ext-ui/", g.serveUI)
	mux.HandleFunc("/api/ext/", g.serveAPI)
	g.srv = httptest.NewServer(mux)
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGateway) URL() string { return g.srv.URL }

func (g *fakeGateway) Calls() []apiCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]apiCall(nil), g.calls...)
}

// contentTypes of the files the fake gateway serves.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// serveSDK serves the JS SDK and the UI kit from their embeds, which share
// /ext-sdk/v1/ as at the real gateway.
func (g *fakeGateway) serveSDK(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/ext-sdk/"+sdkjs.Version+"/")
	b, err := fs.ReadFile(sdkjs.FS, name)
	if err != nil {
		b, err = fs.ReadFile(sdkui.FS, name)
	}
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", contentTypes[path.Ext(name)])
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Module scripts load in CORS mode; the sandboxed iframe's origin is
	// opaque, so only "*" (or "null") lets it import the SDK.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Write(b)
}

func (g *fakeGateway) serveUI(w http.ResponseWriter, r *http.Request) {
	prefix := "/ext-ui/" + testExtensionID + "/" + testContentHash + "/"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		http.NotFound(w, r)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, prefix)
	if name == "" {
		name = "index.html"
	}
	if name != path.Clean(name) || strings.Contains(name, "..") {
		http.NotFound(w, r)
		return
	}
	var b []byte
	var err error
	if strings.HasPrefix(name, "vendor/") {
		b, err = g.vendorModule(strings.TrimPrefix(name, "vendor/"))
	} else {
		b, err = os.ReadFile("testdata/ext/" + name)
	}
	if err != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentTypes[path.Ext(name)])
	if path.Ext(name) == ".html" {
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; "+
			"style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "+
			"connect-src 'self' "+g.srv.URL+"; object-src 'none'; base-uri 'self'; "+
			"form-action 'self'; frame-ancestors "+g.hostOrigin)
	}
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Access-Control-Allow-Origin", "*")
	w.Write(b)
}

func (g *fakeGateway) serveAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Vary", "Origin")
	allowed := r.Header.Get("Origin") == "null"
	if allowed {
		h.Set("Access-Control-Allow-Origin", "null")
	}
	if r.Method == http.MethodOptions {
		if allowed {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
			h.Set("Access-Control-Allow-Headers", "authorization, content-type")
			h.Set("Access-Control-Max-Age", "600")
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	c := apiCall{
		Method: r.Method,
		Path:   r.URL.EscapedPath(),
		Query:  r.URL.RawQuery,
		Auth:   r.Header.Get("Authorization"),
		Origin: r.Header.Get("Origin"),
	}
	g.mu.Lock()
	g.calls = append(g.calls, c)
	g.mu.Unlock()
	if c.Path == itemsPath {
		g.serveItems(w, r)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]string{"path": c.Path, "query": c.Query, "auth": c.Auth})
}

// newHostServer serves the PSA host page, testdata/host.html, from its own
// origin.
func newHostServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/host.html", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile("testdata/host.html")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(b)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}
