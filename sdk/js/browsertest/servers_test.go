package browsertest

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	Cookie string // the Cookie header
}

// apiEcho is the JSON body the fake /api/ext/ endpoint answers with.
type apiEcho struct {
	Method      string `json:"method"`
	Path        string `json:"path"`
	Query       string `json:"query"`
	Auth        string `json:"auth"`
	Cookie      string `json:"cookie"`
	ContentType string `json:"contentType"`
	Trace       string `json:"trace"`   // the X-Ext-Trace header
	BodyHex     string `json:"bodyHex"` // the request body, hex-encoded
}

// fakeGateway plays the parts of the extedge gateway the SDK talks to:
// /ext-sdk/v1/ (the embedded SDK), /ext-ui/ (the test extension's pages with
// the SPEC §8.3 default Content-Security-Policy) and /api/ext/ (records the
// call and echoes it back as JSON, with CORS for the sandbox's origin "null"
// and for the host page's origin, whose bridge calls it for apiproxy).
//
// Under /api/ext/{ext}/slow the endpoint holds the request until the client
// goes away (at most 10 s) and counts both. A request header X-Ext-Status
// sets the answer's status.
type fakeGateway struct {
	srv        *httptest.Server
	hostOrigin string // for frame-ancestors and CORS; set before any page loads
	apiOrigin  string // connect-src of the UI pages; default: this gateway

	// npmDir is the node_modules directory whose React the fake gateway
	// serves under the test extension's vendor/ (see vendorModule); "" when
	// the test does not need it.
	npmDir string

	mu    sync.Mutex
	calls []apiCall
	items itemsAPI

	slowStarted, slowCanceled atomic.Int32
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
			"connect-src 'self' "+g.connectSrc()+"; object-src 'none'; base-uri 'self'; "+
			"form-action 'self'; frame-ancestors "+g.hostOrigin)
	}
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Access-Control-Allow-Origin", "*")
	w.Write(b)
}

func (g *fakeGateway) connectSrc() string {
	if g.apiOrigin != "" {
		return g.apiOrigin
	}
	return g.srv.URL
}

func (g *fakeGateway) serveAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Vary", "Origin")
	origin := r.Header.Get("Origin")
	allowed := origin == "null" || (origin != "" && origin == g.hostOrigin)
	if allowed {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "X-Ext-Reply")
	}
	if r.Method == http.MethodOptions {
		if allowed {
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE")
			h.Set("Access-Control-Allow-Headers", "authorization, content-type, x-ext-trace, x-ext-status")
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
		Origin: origin,
		Cookie: r.Header.Get("Cookie"),
	}
	g.mu.Lock()
	g.calls = append(g.calls, c)
	g.mu.Unlock()
	if c.Path == itemsPath {
		g.serveItems(w, r)
		return
	}
	if strings.HasSuffix(c.Path, "/slow") {
		g.slowStarted.Add(1)
		select {
		case <-r.Context().Done():
			g.slowCanceled.Add(1)
			return
		case <-time.After(10 * time.Second):
		}
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Ext-Reply", "echo-"+r.Method)
	status := http.StatusOK
	if s, err := strconv.Atoi(r.Header.Get("X-Ext-Status")); err == nil && s >= 200 && s <= 599 {
		status = s
	}
	w.WriteHeader(status)
	if status == http.StatusNoContent || r.Method == http.MethodHead {
		return
	}
	json.NewEncoder(w).Encode(apiEcho{
		Method:      r.Method,
		Path:        c.Path,
		Query:       c.Query,
		Auth:        c.Auth,
		Cookie:      c.Cookie,
		ContentType: r.Header.Get("Content-Type"),
		Trace:       r.Header.Get("X-Ext-Trace"),
		BodyHex:     hex.EncodeToString(body),
	})
}

// hostCookie is the PSA session cookie the host page's response sets. Cookies
// are scoped to the host name, not the port, so a request from the host page
// to either gateway listener on 127.0.0.1 carries it if it includes
// credentials: the tests assert that the SDK's requests never do.
const hostCookie = "psa_session=secret"

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
		w.Header().Set("Set-Cookie", hostCookie+"; Path=/; SameSite=Lax")
		w.Write(b)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}
