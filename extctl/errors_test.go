package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// TestJSONErrors: with --json every failure is one JSON object
// {"error":{"code","message"}} on stderr, nothing on stdout, and the same
// exit code as without --json.
func TestJSONErrors(t *testing.T) {
	registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":{"code":"not_installed","message":"no install of com.example.cli for tenant-a","details":{"tenant":"tenant-a"}}}`))
	}))
	defer registry.Close()
	t.Setenv("EXTEDGE_TOKEN", "t0ken")
	keys := filepath.Join(t.TempDir(), "keys")
	mustRun(t, "keygen", "--out", keys)

	cases := []struct {
		name     string
		args     []string
		exit     int
		code     string
		message  string
		detailed bool
	}{
		{"unknown command", []string{"frobnicate", "--json"}, 2, "unknown_command", `unknown command "frobnicate"`, false},
		{"unknown flag", []string{"inspect", "--nope", "--json"}, 2, "usage", "flag provided but not defined: -nope", false},
		{"missing argument", []string{"pack", "--json"}, 2, "usage", "pack needs one DIR and -o FILE", false},
		{"--json=true before the command's flags", []string{"sign", "--json=true", "x.tar.zst"}, 2, "usage", "sign needs one BUNDLE and --key KEY", false},
		{"local failure", []string{"inspect", "/nonexistent/b.tar.zst", "--json"}, 1, "failed", "/nonexistent/b.tar.zst", false},
		{"refusing to overwrite a key", []string{"keygen", "--out", keys, "--json"}, 1, "failed", "refusing to overwrite", false},
		{"registry refusal keeps the registry's code and details", []string{"enable", "--tenant", "tenant-a", "--extension", "com.example.cli", "--registry", registry.URL, "--json"},
			1, "not_installed", "no install of com.example.cli for tenant-a", true},
		{"unreachable registry", []string{"list", "--registry", "http://127.0.0.1:1", "--json"}, 1, "registry_unreachable", "cannot reach the registry", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			exit, out, errOut := run(t, tc.args...)
			if exit != tc.exit || out != "" {
				t.Fatalf("exit %d (want %d), stdout %q (want none), stderr %q", exit, tc.exit, out, errOut)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasSuffix(errOut, "\n") {
				t.Fatalf("want one line on stderr, got %q", errOut)
			}
			var e struct {
				Error struct {
					Code    string          `json:"code"`
					Message string          `json:"message"`
					Details json.RawMessage `json:"details"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(errOut), &e); err != nil {
				t.Fatalf("stderr is not JSON: %v: %q", err, errOut)
			}
			if e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.message) {
				t.Fatalf("error = %+v, want code %q and a message containing %q", e.Error, tc.code, tc.message)
			}
			if tc.detailed && !strings.Contains(string(e.Error.Details), `"tenant-a"`) {
				t.Fatalf("details = %s, want the registry's details", e.Error.Details)
			}
		})
	}
}

func TestWantsJSON(t *testing.T) {
	cases := []struct {
		args []string
		want bool
	}{
		{[]string{"list", "--json"}, true},
		{[]string{"list", "-json"}, true},
		{[]string{"list", "--json=true"}, true},
		{[]string{"list", "--json=false"}, false},
		{[]string{"list"}, false},
		{[]string{"secrets", "set", "--", "--json"}, false},
		{[]string{"new", "json"}, false},
	}
	for _, tc := range cases {
		if got := wantsJSON(tc.args); got != tc.want {
			t.Errorf("wantsJSON(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}
