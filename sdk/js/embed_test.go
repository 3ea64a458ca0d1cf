package js

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// importLine matches a static import statement (not one in a comment) and
// captures its module specifier.
var importLine = regexp.MustCompile(`(?m)^\s*import\b[^"'\n]*["']([^"']+)["']`)

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
			for _, m := range importLine.FindAllSubmatch(b, -1) {
				if string(m[1]) != "./protocol.js" {
					t.Errorf("%s imports %s; the SDK imports only its sibling ./protocol.js", tt.file, m[1])
				}
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
	if got := strings.Join(names, ","); got != "host.js,iframe.js,protocol.js" {
		t.Errorf("FS holds %s, want host.js,iframe.js,protocol.js", got)
	}
}

func TestVersionIsV1(t *testing.T) {
	if Version != "v1" {
		t.Errorf("Version = %q, want v1 (the gateway serves /ext-sdk/v1/)", Version)
	}
}

// TestBothSidesTakeTheProtocolFromOneModule: api.fetch (iframe.js) and
// apiproxy (host.js) must refuse the same paths, and both sides must accept
// the same envelopes (SPEC §9, §16), so the rules live in protocol.js only.
func TestBothSidesTakeTheProtocolFromOneModule(t *testing.T) {
	proto, err := fs.ReadFile(FS, "protocol.js")
	if err != nil {
		t.Fatal(err)
	}
	if importLine.Match(proto) {
		t.Error("protocol.js imports another module; it must stand alone")
	}
	for _, name := range []string{"checkApiPath", "parseEnvelope", "validToken"} {
		if !strings.Contains(string(proto), "export function "+name+"(") {
			t.Errorf("protocol.js does not export %s", name)
		}
	}
	for _, file := range []string{"host.js", "iframe.js"} {
		b, err := fs.ReadFile(FS, file)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"checkApiPath", "parseEnvelope"} {
			if strings.Contains(string(b), "function "+name+"(") {
				t.Errorf("%s defines its own %s; import it from protocol.js", file, name)
			}
			if !strings.Contains(string(b), name+"(") {
				t.Errorf("%s does not use %s", file, name)
			}
		}
	}
}
