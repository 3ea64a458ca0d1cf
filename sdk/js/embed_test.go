package js

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// importLine matches a static import statement (not one in a comment).
var importLine = regexp.MustCompile(`(?m)^\s*import[\s{*"']`)

func TestFSHoldsBothModules(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		exports []string
	}{
		{"host bridge exports mountExtension and buildExtUiSrc", "host.js", []string{"export function mountExtension(", "export function buildExtUiSrc("}},
		{"iframe sdk exports connect, api, onTheme and navigate", "iframe.js", []string{"export function connect(", "export const api", "export function onTheme(", "export function navigate("}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := fs.ReadFile(FS, tt.file)
			if err != nil {
				t.Fatalf("reading %s from FS: %v", tt.file, err)
			}
			for _, e := range tt.exports {
				if !strings.Contains(string(b), e) {
					t.Errorf("%s does not contain %q", tt.file, e)
				}
			}
			if importLine.Match(b) {
				t.Errorf("%s imports another module; the SDK must be dependency-free", tt.file)
			}
		})
	}
}

func TestFSHoldsNothingElse(t *testing.T) {
	entries, err := fs.ReadDir(FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, ","); got != "host.js,iframe.js" {
		t.Errorf("FS holds %s, want host.js,iframe.js", got)
	}
}

func TestVersionIsV1(t *testing.T) {
	if Version != "v1" {
		t.Errorf("Version = %q, want v1 (the gateway serves /ext-sdk/v1/)", Version)
	}
}

// TestAPIPathRuleIsIdenticalInBothModules holds the two copies of
// checkApiPath together: api.fetch (iframe.js) and apiproxy (host.js) must
// refuse the same paths (SPEC §16), and the modules cannot share code because
// each stands alone (SPEC §9).
func TestAPIPathRuleIsIdenticalInBothModules(t *testing.T) {
	extract := func(file string) string {
		b, err := fs.ReadFile(FS, file)
		if err != nil {
			t.Fatalf("reading %s: %v", file, err)
		}
		src := string(b)
		start := strings.Index(src, "// checkApiPath returns")
		if start < 0 {
			t.Fatalf("%s has no checkApiPath comment", file)
		}
		end := strings.Index(src[start:], "\n}\n")
		if end < 0 {
			t.Fatalf("%s: checkApiPath has no end", file)
		}
		rule := src[start : start+end+3]
		// The constants the rule uses are part of it.
		for _, c := range []string{"const CONTROL_RE = ", "const MAX_PATH_LENGTH = "} {
			i := strings.Index(src, c)
			if i < 0 {
				t.Fatalf("%s does not define %s", file, c)
			}
			rule += src[i:i+strings.Index(src[i:], "\n")] + "\n"
		}
		return rule
	}
	host, iframe := extract("host.js"), extract("iframe.js")
	if !strings.Contains(host, "function checkApiPath(path) {") {
		t.Fatalf("host.js: the extracted rule is not checkApiPath:\n%s", host)
	}
	if host != iframe {
		t.Errorf("checkApiPath differs between host.js and iframe.js:\nhost.js:\n%s\niframe.js:\n%s", host, iframe)
	}
}
