package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy/forwardauth"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestCaddyfileAdapt adapts every testdata/adapt/*.caddyfiletest (a
// Caddyfile, a line of dashes, the expected JSON or, for error cases, the
// expected error text) and compares. Run with -update to rewrite.
func TestCaddyfileAdapt(t *testing.T) {
	files, _ := filepath.Glob("testdata/adapt/*.caddyfiletest")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".caddyfiletest"), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(raw), "\n----------\n")
			if !ok {
				t.Fatalf("%s: no ---------- separator", f)
			}
			got := adapt(t, input)
			if *update {
				if err := os.WriteFile(f, []byte(input+"\n----------\n"+got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if strings.TrimSpace(got) != strings.TrimSpace(want) {
				t.Errorf("adapting %s:\n got: %s\nwant: %s", f, got, strings.TrimSpace(want))
			}
		})
	}
}

// adapt returns indented JSON, or "error: <message>" when adapting fails.
func adapt(t *testing.T, input string) string {
	t.Helper()
	ad := caddyconfig.GetAdapter("caddyfile")
	out, _, err := ad.Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return "error: " + err.Error()
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "\t"); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestCaddyfileExampleAdapts keeps the shipped Caddyfile.example valid.
func TestCaddyfileExampleAdapts(t *testing.T) {
	raw, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	if got := adapt(t, string(raw)); strings.HasPrefix(got, "error:") {
		t.Fatalf("Caddyfile.example: %s", got)
	}
}

// TestREADMECaddyfileAdapts keeps the README's Caddyfile snippet (the
// first ``` block under "### Caddyfile") valid.
func TestREADMECaddyfileAdapts(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "### Caddyfile\n")
	_, block, ok2 := strings.Cut(section, "```\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README has no Caddyfile snippet under ### Caddyfile")
	}
	if got := adapt(t, block); strings.HasPrefix(got, "error:") {
		t.Fatalf("README Caddyfile snippet: %s", got)
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     *RateSpec
	}{
		{"per second", "200r/s", &RateSpec{Requests: 200, Per: 1e9}},
		{"per minute", "50r/m", &RateSpec{Requests: 50, Per: 60e9}},
		{"per hour", "7r/h", &RateSpec{Requests: 7, Per: 3600e9}},
		{"zero is rejected", "0r/s", nil},
		{"unknown unit is rejected", "5r/d", nil},
		{"missing r/ is rejected", "5/s", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRate(tc.in)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("parseRate(%q) = %+v, want error", tc.in, got)
				}
				return
			}
			if err != nil || *got != *tc.want {
				t.Fatalf("parseRate(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}
