package caddymodule

import (
	"errors"
	"strings"
)

// The /ext-ui Content-Security-Policies by type (SPEC §8.3, §16). Every
// response carries `sandbox`, so a file of an extension opened at the top
// level, outside the host's sandboxed iframe, still has an opaque origin
// and cannot act on the gateway's (and the PSA's) origin.
const (
	// defaultSandbox is added to an HTML policy that has no sandbox
	// directive; an operator's own directive may narrow it.
	defaultSandbox = "sandbox allow-scripts allow-forms allow-popups allow-downloads"
	// activeCSP is for non-HTML types a browser renders as a document
	// that may run script (SVG, XML, XHTML).
	activeCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
	// passiveCSP is for every other type.
	passiveCSP = "default-src 'none'; sandbox"
)

// htmlPolicy returns csp with a sandbox directive (defaultSandbox when it
// has none). A sandbox with allow-same-origin would give extension pages
// the gateway's origin and is refused.
func htmlPolicy(csp string) (string, error) {
	for _, d := range strings.Split(csp, ";") {
		fields := strings.Fields(strings.ToLower(d))
		if len(fields) == 0 || fields[0] != "sandbox" {
			continue
		}
		for _, f := range fields[1:] {
			if f == "allow-same-origin" {
				return "", errors.New("extedge: content_security_policy: sandbox must not allow-same-origin (extension pages would run on the gateway's origin)")
			}
		}
		return csp, nil
	}
	return strings.TrimRight(strings.TrimSpace(csp), ";") + "; " + defaultSandbox, nil
}

// uiPolicy is the CSP of an /ext-ui file of content type ctype; html is
// the HTML policy with {gateway_origin} already filled in.
func uiPolicy(ctype, html string) string {
	mt, _, _ := strings.Cut(ctype, ";")
	switch strings.TrimSpace(mt) {
	case "text/html":
		return html
	case "image/svg+xml", "application/xml", "text/xml", "application/xhtml+xml":
		return activeCSP
	}
	return passiveCSP
}
