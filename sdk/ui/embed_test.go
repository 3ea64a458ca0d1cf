package ui

import (
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestFSHoldsTheKit(t *testing.T) {
	names, err := fs.Glob(FS, "*")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"react.js", "ui.css", "ui.js"}; !slices.Equal(names, want) {
		t.Errorf("FS holds %v, want %v", names, want)
	}
}

// staticImport matches the specifier of a static import statement.
var staticImport = regexp.MustCompile(`(?m)^\s*import\s+(?:[^"';]*?\s+from\s+)?["']([^"']+)["']`)

func TestModulesImportOnlyTheSDK(t *testing.T) {
	allowed := map[string][]string{
		"ui.js":    {"./iframe.js"},
		"react.js": {"./iframe.js", "./ui.js"}, // React itself is a dynamic import of the peer
	}
	for file, want := range allowed {
		t.Run(file+" imports only its siblings", func(t *testing.T) {
			b, err := fs.ReadFile(FS, file)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range staticImport.FindAllStringSubmatch(string(b), -1) {
				got = append(got, m[1])
			}
			if !slices.Equal(got, want) {
				t.Errorf("static imports %v, want %v (no dependencies inside the kit)", got, want)
			}
		})
	}
}

// colorLiteral matches a colour written out instead of taken from a token.
var colorLiteral = regexp.MustCompile(`#[0-9a-fA-F]{3,8}\b|\brgba?\(|\bhsla?\(|:\s*(white|black|red|blue|gray|grey)\b`)

// TestStylesComeFromTokens: outside the blocks that define the --alga-*
// tokens, ui.css writes no colour of its own.
func TestStylesComeFromTokens(t *testing.T) {
	b, err := fs.ReadFile(FS, "ui.css")
	if err != nil {
		t.Fatal(err)
	}
	css := string(b)
	start := strings.Index(css, "/* ---- base ---- */")
	if start < 0 {
		t.Fatal("ui.css has no base section after its token blocks")
	}
	tokens, rules := css[:start], css[start:]
	for _, want := range []string{"--alga-color-bg", "--alga-color-fg", "--alga-color-accent", `[data-alga-theme="dark"]`} {
		if !strings.Contains(tokens, want) {
			t.Errorf("token blocks lack %s", want)
		}
	}
	for i, line := range strings.Split(rules, "\n") {
		if strings.Contains(line, "--alga-") && strings.Contains(line, ":") && strings.HasPrefix(strings.TrimSpace(line), "--alga-") {
			t.Errorf("rule line %d defines a token outside the token blocks: %s", i+1, line)
		}
		if m := colorLiteral.FindString(line); m != "" {
			t.Errorf("rule line %d writes the colour %q instead of a token: %s", i+1, m, strings.TrimSpace(line))
		}
	}
}
