package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
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

// docsWithSnippets are the documents whose Caddyfile examples must adapt,
// relative to the module root.
var docsWithSnippets = []string{"README.md", "caddymodule/README.md", "deploy/README.md"}

// TestDocSnippetsAdapt keeps every ```caddyfile block of the READMEs
// valid: each is adapted with the real Caddyfile adapter. A block that is
// only an `extedge { … }` directive is adapted inside a site block. An
// untagged block that looks like a Caddyfile fails the test, so an
// example cannot escape it by losing its tag.
func TestDocSnippetsAdapt(t *testing.T) {
	total := 0
	for _, doc := range docsWithSnippets {
		raw, err := os.ReadFile(filepath.Join("..", doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range fencedBlocks(string(raw)) {
			name := fmt.Sprintf("%s:%d", doc, b.line)
			if b.lang != "caddyfile" {
				if looksLikeCaddyfile(b.text) {
					t.Errorf("%s: a Caddyfile example in a ```%s block; tag it ```caddyfile", name, b.lang)
				}
				continue
			}
			total++
			t.Run(name, func(t *testing.T) {
				input := b.text
				if strings.HasPrefix(strings.TrimSpace(input), "extedge") {
					input = ":8080 {\n" + input + "\n}\n"
				}
				if got := adapt(t, input); strings.HasPrefix(got, "error:") {
					t.Fatalf("%s: %s\n%s", name, got, b.text)
				}
			})
		}
	}
	if total < 2 {
		t.Fatalf("found %d ```caddyfile blocks in %v, want the README's and caddymodule/README's", total, docsWithSnippets)
	}
}

type fencedBlock struct {
	lang, text string
	line       int // of the opening fence
}

// fencedBlocks returns the ``` blocks of a Markdown document.
func fencedBlocks(doc string) []fencedBlock {
	var out []fencedBlock
	var cur *fencedBlock
	var body []string
	for i, l := range strings.Split(doc, "\n") {
		fence, ok := strings.CutPrefix(strings.TrimSpace(l), "```")
		switch {
		case !ok:
			if cur != nil {
				body = append(body, l)
			}
		case cur == nil:
			cur, body = &fencedBlock{lang: strings.TrimSpace(fence), line: i + 1}, nil
		default:
			cur.text = strings.Join(body, "\n") + "\n"
			out = append(out, *cur)
			cur = nil
		}
	}
	return out
}

func looksLikeCaddyfile(text string) bool {
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && (f[0] == "extedge" || f[0] == "reverse_proxy") {
			return true
		}
	}
	return false
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

func TestCaddyfileFairnessOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		input   string
		want    Handler
		wantErr string // substring, with the line number
	}{
		{name: "tenant_concurrency and the breaker settings are read",
			input: "extedge {\n tenant_concurrency 8\n breaker_failures 5\n breaker_cooldown 30s\n}",
			want:  Handler{TenantConcurrency: 8, BreakerFailures: 5, BreakerCooldown: caddy.Duration(30 * time.Second)}},
		{name: "breaker_failures off is the JSON's negative value",
			input: "extedge {\n breaker_failures off\n}",
			want:  Handler{BreakerFailures: -1}},
		{name: "options may share a line",
			input: "extedge {\n breaker_failures 3 breaker_cooldown 200ms\n}",
			want:  Handler{BreakerFailures: 3, BreakerCooldown: caddy.Duration(200 * time.Millisecond)}},
		{name: "tenant_queue and its wait are read",
			input: "extedge {\n tenant_concurrency 4 tenant_queue 16\n tenant_queue_wait 250ms\n}",
			want:  Handler{TenantConcurrency: 4, TenantQueue: 16, TenantQueueWait: caddy.Duration(250 * time.Millisecond)}},
		{name: "tenant_cost_bytes takes a size",
			input: "extedge {\n tenant_cost_bytes 512 KiB\n}",
			want:  Handler{TenantCostBytes: 512 << 10}},
		{name: "tenant_cost_bytes off weighs every call 1",
			input: "extedge {\n tenant_cost_bytes off\n}",
			want:  Handler{TenantCostBytes: -1}},
		{name: "refusal pacing is read",
			input: "extedge {\n refusal_delay 500ms refusal_max_parked 64\n}",
			want:  Handler{RefusalDelay: caddy.Duration(500 * time.Millisecond), RefusalMaxParked: 64}},
		{name: "refusal_delay off answers at once",
			input: "extedge {\n refusal_delay off\n}",
			want:  Handler{RefusalDelay: -1}},
		{name: "refusal_delay 0 is rejected",
			input:   "extedge {\n refusal_delay 0s\n}",
			wantErr: "refusal_delay: want a positive duration or off, got '0s', at Testfile:2"},
		{name: "tenant_queue off refuses at once",
			input: "extedge {\n tenant_queue off\n}",
			want:  Handler{TenantQueue: -1}},
		{name: "tenant_queue 0 is rejected with its line",
			input:   "extedge {\n tenant_queue 0\n}",
			wantErr: "tenant_queue: want a positive integer, got '0', at Testfile:2"},
		{name: "tenant_queue_wait of zero is rejected",
			input:   "extedge {\n tenant_queue_wait 0s\n}",
			wantErr: "tenant_queue_wait: want a positive duration, got '0s', at Testfile:2"},
		{name: "tenant_concurrency 0 is rejected with its line",
			input:   "extedge {\n timeout 5s\n tenant_concurrency 0\n}",
			wantErr: "tenant_concurrency: want a positive integer, got '0', at Testfile:3"},
		{name: "negative tenant_concurrency is rejected",
			input:   "extedge {\n tenant_concurrency -2\n}",
			wantErr: "tenant_concurrency: want a positive integer, got '-2', at Testfile:2"},
		{name: "breaker_failures that is neither a number nor off is rejected",
			input:   "extedge {\n timeout 5s\n\n breaker_failures never\n}",
			wantErr: "breaker_failures: want a positive integer, got 'never', at Testfile:4"},
		{name: "breaker_failures 0 is rejected (off disables)",
			input:   "extedge {\n breaker_failures 0\n}",
			wantErr: "breaker_failures: want a positive integer, got '0', at Testfile:2"},
		{name: "breaker_failures without a value is rejected",
			input:   "extedge {\n breaker_failures\n timeout 5s\n}",
			wantErr: "Testfile:2"},
		{name: "breaker_cooldown of zero is rejected",
			input:   "extedge {\n breaker_cooldown 0s\n}",
			wantErr: "breaker_cooldown: want a positive duration, got '0s', at Testfile:2"},
		{name: "breaker_cooldown that is not a duration is rejected",
			input:   "extedge {\n tenant_concurrency 4\n breaker_cooldown soon\n}",
			wantErr: "invalid duration 'soon'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.TenantConcurrency != tc.want.TenantConcurrency || h.BreakerFailures != tc.want.BreakerFailures || h.BreakerCooldown != tc.want.BreakerCooldown {
				t.Fatalf("got tenant_concurrency=%d breaker_failures=%d breaker_cooldown=%v, want %d %d %v",
					h.TenantConcurrency, h.BreakerFailures, h.BreakerCooldown,
					tc.want.TenantConcurrency, tc.want.BreakerFailures, tc.want.BreakerCooldown)
			}
		})
	}
}

func TestCaddyfileSizes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		input   string
		want    int64  // MaxRequestBody
		wantErr string // substring, with the line number
	}{
		{name: "binary unit", input: "extedge {\n max_request_body 10MiB\n}", want: 10 << 20},
		{name: "decimal unit", input: "extedge {\n max_request_body 10MB\n}", want: 10_000_000},
		{name: "unit after a space is part of the size", input: "extedge {\n max_request_body 10 MB\n}", want: 10_000_000},
		{name: "binary unit after a space", input: "extedge {\n max_request_body 10 MiB\n}", want: 10 << 20},
		{name: "lower-case unit", input: "extedge {\n max_request_body 2 kib\n}", want: 2048},
		{name: "plain bytes", input: "extedge {\n max_request_body 4096\n}", want: 4096},
		{name: "a number then the next option on the line",
			input: "extedge {\n max_request_body 4096 timeout 5s\n}", want: 4096},
		{name: "misspelt unit after a space is a size error, not an unknown subdirective",
			input:   "extedge {\n max_request_body 10 MBs\n}",
			wantErr: "max_request_body: invalid size unit 'MBs' in '10 MBs': want e.g. 10MiB, 10MB or 10 MB, at Testfile:2"},
		{name: "word is not a size",
			input:   "extedge {\n timeout 5s\n max_request_body lots\n}",
			wantErr: "max_request_body: invalid size 'lots': want e.g. 10MiB, 10MB or 10 MB, at Testfile:3"},
		{name: "zero is not a size", input: "extedge {\n max_request_body 0\n}", wantErr: "max_request_body: invalid size '0'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.MaxRequestBody != tc.want {
				t.Fatalf("max_request_body = %d, want %d", h.MaxRequestBody, tc.want)
			}
		})
	}
}

func TestCaddyfileUICacheSize(t *testing.T) {
	for in, want := range map[string]int64{
		"ui_cache /c 2GiB":  2 << 30,
		"ui_cache /c 2 GiB": 2 << 30,
		"ui_cache /c":       0,
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("extedge {\n " + in + "\n}")); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if h.UICache.Dir != "/c" || h.UICache.MaxSize != want {
			t.Fatalf("%s: got %+v, want dir /c and size %d", in, h.UICache, want)
		}
	}
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("extedge {\n ui_cache /c 2 GiB extra\n}"))
	if err == nil || !strings.Contains(err.Error(), "Testfile:2") {
		t.Fatalf("ui_cache with a trailing argument: %v, want an argument error at line 2", err)
	}
}

func TestCaddyfileRunnerAddresses(t *testing.T) {
	for _, tc := range []struct {
		name, input, wantErr string
	}{
		{"unix socket with the unix/ prefix", "extedge {\n runners unix//run/r.sock\n}", ""},
		{"unix socket url", "extedge {\n runners unix:///run/r.sock\n}", ""},
		{"tcp runner", "extedge {\n runners tcp://10.0.0.5:7071 10.0.0.6:7071\n}", ""},
		{"bare path hints at unix/", "extedge {\n runners /run/r.sock\n}",
			`runner address "/run/r.sock" is a bare path: write unix//run/r.sock for a Unix socket, at Testfile:2`},
		{"relative unix path", "extedge {\n runners unix:run/r.sock\n}", "unix socket path must be absolute, at Testfile:2"},
		{"tcp without a port", "extedge {\n runners tcp://10.0.0.5\n}", "missing port in address, at Testfile:2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
