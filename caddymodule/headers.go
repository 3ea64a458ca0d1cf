package caddymodule

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
)

// forwardedRequestHeaders are the client headers a guest may see (§8.2
// step 8), besides any x-ext-*. Authorization, cookies and hop-by-hop
// headers are never forwarded.
var forwardedRequestHeaders = map[string]string{
	"Accept":            "accept",
	"Accept-Language":   "accept-language",
	"Content-Type":      "content-type",
	"User-Agent":        "user-agent",
	"If-None-Match":     "if-none-match",
	"If-Modified-Since": "if-modified-since",
}

// guestRequestHeaders builds the header map of the envelope.
func guestRequestHeaders(r *http.Request, requestID, tenant, ext, idemKey string) map[string]string {
	out := make(map[string]string, 8)
	for name, vals := range r.Header {
		if len(vals) == 0 {
			continue
		}
		if lc, ok := forwardedRequestHeaders[name]; ok {
			out[lc] = strings.Join(vals, ", ")
			continue
		}
		if len(name) > 6 && strings.EqualFold(name[:6], "x-ext-") {
			out[strings.ToLower(name)] = strings.Join(vals, ", ")
		}
	}
	out["x-request-id"] = requestID
	out["x-alga-tenant"] = tenant
	out["x-alga-extension"] = ext
	if idemKey != "" {
		out["x-idempotency-key"] = idemKey
	}
	return out
}

// requestID returns the client's X-Request-Id when it is a sane token
// (1–128 characters of [A-Za-z0-9._:-]), else a new random id.
func requestID(r *http.Request) string {
	if v := r.Header.Get("X-Request-Id"); v != "" && len(v) <= 128 && saneToken(v) {
		return v
	}
	return newID()
}

func saneToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// idempotencyKey namespaces the client's key by tenant and extension, so
// one tenant can never collide with (or probe) another's keys; without a
// client key a fresh one is generated. GET and HEAD get none.
func idempotencyKey(r *http.Request, tenant, ext string) string {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return ""
	}
	client := r.Header.Get("X-Idempotency-Key")
	if client == "" {
		client = r.Header.Get("Idempotency-Key")
	}
	if client == "" {
		return newID()
	}
	sum := sha256.Sum256([]byte(tenant + "\x00" + ext + "\x00" + client))
	return hex.EncodeToString(sum[:])
}

// safeCacheDirectives are the cache-control directives a guest may send
// (§8.2 step 10); anything else (public, s-maxage, immutable, …) is
// dropped so an authenticated response is never stored by a shared cache.
var safeCacheDirectives = map[string]bool{
	"private": true, "no-cache": true, "no-store": true, "max-age": true, "must-revalidate": true,
}

// filterCacheControl keeps only the safe directives of v; "" drops the
// header.
func filterCacheControl(v string) string {
	var kept []string
	for _, d := range strings.Split(v, ",") {
		d = strings.TrimSpace(d)
		name, arg, hasArg := strings.Cut(d, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if !safeCacheDirectives[name] {
			continue
		}
		if name == "max-age" {
			if !hasArg || !allDigits(strings.TrimSpace(arg)) {
				continue
			}
			kept = append(kept, "max-age="+strings.TrimSpace(arg))
			continue
		}
		if hasArg {
			continue
		}
		kept = append(kept, name)
	}
	return strings.Join(kept, ", ")
}

func allDigits(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// responseHeaderNames are the guest response headers passed to the
// client, by lowercase name, with their canonical spelling. x-ext-* also
// pass. set-cookie and hop-by-hop headers never do.
var responseHeaderNames = map[string]string{
	"content-type":        "Content-Type",
	"cache-control":       "Cache-Control",
	"etag":                "Etag",
	"last-modified":       "Last-Modified",
	"content-language":    "Content-Language",
	"content-disposition": "Content-Disposition",
}

// copyGuestHeaders writes the allowed guest headers into h.
func copyGuestHeaders(h http.Header, guest map[string]string) {
	for name, v := range guest {
		if strings.ContainsAny(v, "\r\n\x00") {
			continue
		}
		lc := strings.ToLower(name)
		if canon, ok := responseHeaderNames[lc]; ok {
			if lc == "cache-control" {
				if v = filterCacheControl(v); v == "" {
					continue
				}
			}
			h[canon] = []string{v}
			continue
		}
		if strings.HasPrefix(lc, "x-ext-") && validHeaderName(lc) {
			h[http.CanonicalHeaderKey(lc)] = []string{v}
		}
	}
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
