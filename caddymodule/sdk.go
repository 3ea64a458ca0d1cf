package caddymodule

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	sdkjs "github.com/extedge/extedge/sdk/js"
	sdkui "github.com/extedge/extedge/sdk/ui"
)

// sdkFile is one embedded SDK file with its precomputed strong ETag.
type sdkFile struct {
	body  []byte
	etag  string
	ctype string
}

// sdkTypes are the content types of the files under /ext-sdk/v1/.
var sdkTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
}

// sdkFiles is built once from the embeds of the JS SDK (§9) and the UI kit
// (§19), which share one directory so that ui.js can import ./iframe.js;
// it never changes at run time.
var sdkFiles = func() map[string]*sdkFile {
	out := map[string]*sdkFile{}
	for _, fsys := range []fs.FS{sdkjs.FS, sdkui.FS} {
		_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			ctype, ok := sdkTypes[path.Ext(p)]
			if !ok {
				return nil
			}
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			out[p] = &sdkFile{body: b, etag: `"sha256-` + hex.EncodeToString(sum[:]) + `"`, ctype: ctype}
			return nil
		})
	}
	return out
}()

// serveSDK serves /ext-sdk/v1/{name} (.js, .css) from the embeds with
// immutable caching: the files change only with the gateway build, and the
// strong ETag covers revalidation after an upgrade.
func (h *Handler) serveSDK(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.URL.Path[len(prefixSDK):]
	f, ok := sdkFiles[name]
	if !ok || strings.Contains(name, "/") {
		writeError(w, requestID(r), newError(codeNotFound, "no such file"))
		observeRequest(routeSDK, codeNotFound, start)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		ge := newError(codeMethodNotAllowed, "method not allowed")
		ge.allow = "GET, HEAD"
		writeError(w, requestID(r), ge)
		observeRequest(routeSDK, codeMethodNotAllowed, start)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", f.ctype)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	hdr.Set("Access-Control-Allow-Origin", "*") // ES module imports from sandboxed (opaque-origin) iframes
	hdr.Set("Cross-Origin-Resource-Policy", "cross-origin")
	hdr.Set("Etag", f.etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	observeRequest(routeSDK, "ok", start)
}
