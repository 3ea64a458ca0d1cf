package envflag

import (
	"bytes"
	"flag"
	"strings"
	"testing"
	"time"
)

func newSet() (*flag.FlagSet, *string, *time.Duration, *bool) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	dir := fs.String("cache-dir", "/default", "cache directory")
	timeout := fs.Duration("timeout", time.Second, "call timeout")
	fuel := fs.Bool("fuel", false, "meter fuel")
	fs.String("token", "", "a secret")
	return fs, dir, timeout, fuel
}

func TestPrecedence(t *testing.T) {
	aliases := map[string][]string{"cache-dir": {"EXT_CACHE_ROOT"}}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"default without flag or variable", nil, nil, "/default"},
		{"variable beats default", map[string]string{"EXTEDGE_CACHE_DIR": "/env"}, nil, "/env"},
		{"flag beats variable", map[string]string{"EXTEDGE_CACHE_DIR": "/env"}, []string{"--cache-dir", "/flag"}, "/flag"},
		{"alias is read", map[string]string{"EXT_CACHE_ROOT": "/alias"}, nil, "/alias"},
		{"rule name beats alias", map[string]string{"EXTEDGE_CACHE_DIR": "/env", "EXT_CACHE_ROOT": "/alias"}, nil, "/env"},
		{"empty variable is unset", map[string]string{"EXTEDGE_CACHE_DIR": ""}, nil, "/default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs, dir, _, _ := newSet()
			if err := Parse(fs, tt.args, aliases); err != nil {
				t.Fatal(err)
			}
			if *dir != tt.want {
				t.Fatalf("cache-dir = %q, want %q", *dir, tt.want)
			}
		})
	}
}

func TestTypedValuesAndErrors(t *testing.T) {
	t.Setenv("EXTEDGE_TIMEOUT", "250ms")
	t.Setenv("EXTEDGE_FUEL", "true")
	fs, _, timeout, fuel := newSet()
	if err := Parse(fs, nil, nil); err != nil {
		t.Fatal(err)
	}
	if *timeout != 250*time.Millisecond || !*fuel {
		t.Fatalf("timeout %v fuel %v", *timeout, *fuel)
	}

	t.Setenv("EXTEDGE_TIMEOUT", "soon")
	fs, _, _, _ = newSet()
	err := Parse(fs, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "EXTEDGE_TIMEOUT") || !strings.Contains(err.Error(), "--timeout") {
		t.Fatalf("bad variable: err = %v, want it to name EXTEDGE_TIMEOUT and --timeout", err)
	}
}

func TestSkippedFlagHasNoVariable(t *testing.T) {
	t.Setenv("EXTEDGE_TOKEN", "s3cret")
	fs, _, _, _ := newSet()
	if err := Parse(fs, nil, nil, "token"); err != nil {
		t.Fatal(err)
	}
	if v := fs.Lookup("token").Value.String(); v != "" {
		t.Fatalf("skipped flag read its variable: %q", v)
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	fs, _, _, _ := newSet()
	var out bytes.Buffer
	fs.SetOutput(&out)
	Parse(fs, []string{"-help"}, map[string][]string{"cache-dir": {"EXT_CACHE_ROOT"}}, "token")
	help := out.String()
	for _, want := range []string{"[env EXTEDGE_CACHE_DIR, EXT_CACHE_ROOT]", "[env EXTEDGE_TIMEOUT]", "[env EXTEDGE_FUEL]"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	if strings.Contains(help, "EXTEDGE_TOKEN") {
		t.Errorf("help names a variable for a skipped flag:\n%s", help)
	}
}
