package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/testenv"
)

// The extension's files in these tests are hostile: each tries to use the
// gateway's origin, which here (as in the demo and a one-origin
// deployment) is also the PSA's: read a PSA route with the user's cookie.
var hostileUIFiles = map[string]string{
	"manifest.json": `{"name":"com.acme.agreements","publisher":"Acme Inc.","version":"1.0.0","runtime":"wasm@1","ui":{"type":"iframe","entry":"ui/index.html"}}`,
	"ui/index.html": `<!doctype html><title>loading</title><script src="steal.js"></script>`,
	"ui/steal.js":   stealJS,
	"ui/steal.svg":  `<svg xmlns="http://www.w3.org/2000/svg"><script>window.ran = self.origin;` + stealJS + `</script></svg>`,
	"ui/steal.xml":  `<?xml version="1.0"?><x:script xmlns:x="http://www.w3.org/1999/xhtml">window.ran = self.origin;</x:script>`,
}

// stealJS reads the PSA's /whoami with the user's cookie and reports what
// it got in window.result (and the title, for HTML).
const stealJS = `
window.result = "pending";
let cookie;
try { cookie = document.cookie } catch (e) { cookie = "threw " + e.name }
fetch("/whoami", {credentials: "include"})
  .then(r => r.text())
  .then(t => { window.result = "READ " + t + " cookie=" + cookie + " origin=" + self.origin })
  .catch(e => { window.result = "BLOCKED " + e.name + " cookie=" + cookie + " origin=" + self.origin })
  .finally(() => { document.title = window.result });
`

// psaSecret is what the PSA's /whoami answers to its logged-in user.
const psaSecret = "SESSION-OF-alice"

// TestBrowserExtensionContentNeverActsOnThePSAOrigin (issue 10 findings 1
// and 2, SPEC §16) opens hostile extension content at the top level, not
// inside the host's sandboxed iframe, in headless Chromium against a real
// Caddy that serves the PSA app and extedge on one origin. Controls served
// by the PSA app itself prove each probe would see the attack work.
func TestBrowserExtensionContentNeverActsOnThePSAOrigin(t *testing.T) {
	fx := publishUIBundle(t, hostileUIFiles, "Acme Inc.", "")
	g := newGatewayFiles(t)
	g.registry.statuses[fx.hash+"/"+testExt] = &registryapi.BundleStatus{ContentHash: fx.hash, Extension: testExt, Published: true}
	runner := newStubRunner(t)
	runner.setRespond(func(req *execapi.Request) (int, any) {
		return 200, execapi.Response{Status: 200, Headers: map[string]string{"content-type": "text/html; charset=utf-8"},
			Body: []byte(`<!doctype html><title>guest</title><script>window.ran = self.origin;` + stealJS + `</script>`)}
	})
	session := token(t, nil)
	// The PSA app: /login sets the session cookie (also extedge's auth
	// cookie), /whoami answers the cookie's user, /control.* serve the
	// hostile content from the PSA itself, without extedge's headers.
	psa := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			http.SetCookie(w, &http.Cookie{Name: "psa_session", Value: session, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
			http.SetCookie(w, &http.Cookie{Name: "psa_pref", Value: "visible-to-scripts", Path: "/"})
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<!doctype html><title>psa</title>")
		case "/whoami":
			if c, err := r.Cookie("psa_session"); err == nil && c.Value == session {
				fmt.Fprint(w, psaSecret)
				return
			}
			http.Error(w, "not logged in", http.StatusUnauthorized)
		case "/control.svg":
			w.Header().Set("Content-Type", "image/svg+xml")
			fmt.Fprint(w, hostileUIFiles["ui/steal.svg"])
		case "/control.html":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, `<!doctype html><title>loading</title><script>window.ran = self.origin;`+stealJS+`</script>`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer psa.Close()
	site := caddySite(g, []string{runner.Addr()}, fmt.Sprintf("\t\tbundle_store %s\n\t\ttrust_bundle %s", fx.storeURL, fx.trustFile))
	site = strings.Replace(site, "audience extedge\n", "audience extedge\n\t\t\tcookie psa_session\n", 1)
	c := testenv.Caddy(t, site+"\n\treverse_proxy "+strings.TrimPrefix(psa.URL, "http://"))

	ctx := testenv.Chromium(t, 1024, 768)
	b := &tab{ctx: ctx}
	b.open(t, c.URL+"/login")
	origin := c.URL

	t.Run("control: the PSA's own page reads /whoami with the cookie", func(t *testing.T) {
		b.open(t, origin+"/control.html")
		got := b.waitResult(t)
		if !strings.HasPrefix(got, "READ "+psaSecret) || !strings.Contains(got, "origin="+origin) {
			t.Fatalf("control page: %q, want READ %s with origin %s (else the probes below prove nothing)", got, psaSecret, origin)
		}
	})
	t.Run("an extension page opened at the top level runs with an opaque origin", func(t *testing.T) {
		b.open(t, origin+uiURL(fx, "index.html"))
		got := b.waitResult(t)
		if strings.Contains(got, psaSecret) || !strings.HasPrefix(got, "BLOCKED ") {
			t.Fatalf("top-level extension page: %q, want BLOCKED without the PSA's answer", got)
		}
		if !strings.Contains(got, "origin=null") || !strings.Contains(got, "cookie=threw SecurityError") {
			t.Fatalf("top-level extension page: %q, want origin null and document.cookie refused", got)
		}
	})
	t.Run("control: an SVG served by the PSA runs its script on the PSA origin", func(t *testing.T) {
		b.open(t, origin+"/control.svg")
		if got := b.eval(t, `String(window.ran)`); got != origin {
			t.Fatalf("control SVG: window.ran = %q, want %q (else the probe below proves nothing)", got, origin)
		}
	})
	for _, file := range []string{"steal.svg", "steal.xml"} {
		t.Run("an extension "+file+" opened at the top level runs no script", func(t *testing.T) {
			b.open(t, origin+uiURL(fx, file))
			if got := b.eval(t, `String(window.ran) + " " + String(window.result)`); got != "undefined undefined" {
				t.Fatalf("%s: window.ran, window.result = %q, want the script not to run", file, got)
			}
		})
	}
	t.Run("a guest's text/html answer opened at the top level runs no script", func(t *testing.T) {
		b.open(t, origin+"/api/ext/"+testExt+"/agreements")
		if got := b.eval(t, `String(window.ran) + " " + String(window.result)`); got != "undefined undefined" {
			t.Fatalf("guest HTML: window.ran, window.result = %q, want the script not to run", got)
		}
		if runner.lastRequest() == nil {
			t.Fatal("the guest was never called: the probe did not reach it (cookie auth failed?)")
		}
	})
}

// tab is a Chromium tab with failing helpers.
type tab struct{ ctx context.Context }

// open navigates and waits for the load event.
func (b *tab) open(t *testing.T, url string) { t.Helper(); testenv.Navigate(t, b.ctx, url) }

// eval evaluates expr (awaiting a promise) as a string.
func (b *tab) eval(t *testing.T, expr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return out
}

// waitResult waits until stealJS has reported.
func (b *tab) waitResult(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := b.eval(t, `String(window.result)`)
		if got != "pending" && got != "undefined" || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}
