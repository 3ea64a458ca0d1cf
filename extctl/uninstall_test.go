package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestUninstallConfirmation: uninstall deletes only when confirmed — by
// --yes, or by answering y at the prompt when stdin is a terminal. Without
// a terminal and without --yes it refuses before any request.
func TestUninstallConfirmation(t *testing.T) {
	var deletes atomic.Int32
	registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete && r.URL.Path == "/v1/tenants/tenant-a/installs/com.example.cli" {
			deletes.Add(1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.Error(w, `{"error":{"code":"not_found","message":"unexpected `+r.Method+" "+r.URL.Path+`"}}`, http.StatusNotFound)
	}))
	defer registry.Close()
	t.Setenv("EXTEDGE_TOKEN", "t0ken")
	args := []string{"uninstall", "--tenant", "tenant-a", "--extension", "com.example.cli", "--registry", registry.URL}

	cases := []struct {
		name      string
		stdin     string
		terminal  bool // stdin is a terminal
		extra     []string
		exit      int
		deleted   bool
		stderrHas string
	}{
		{"non-terminal stdin without --yes is refused", "y\n", false, nil, 1, false,
			"extctl: refusing to uninstall com.example.cli from tenant tenant-a (deleting its secrets and stored data) without --yes: stdin is not a terminal, so extctl cannot ask\n"},
		{"the refusal is a JSON error with --json", "", false, []string{"--json"}, 1, false,
			`{"error":{"code":"confirmation_required",`},
		{"--yes skips the question", "", false, []string{"--yes"}, 0, true, ""},
		{"a terminal is asked and y deletes", "y\n", true, nil, 0, true, "[y/N] "},
		{"a terminal answer other than y aborts", "n\n", true, nil, 1, false, "extctl: aborted; nothing was changed"},
		{"an empty answer aborts", "", true, nil, 1, false, "aborted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := deletes.Load()
			var out, errb strings.Builder
			c := &cli{stdout: &out, stderr: &errb, stdin: strings.NewReader(tc.stdin), stdinTerminal: tc.terminal}
			exit, errOut := c.main(append(append([]string{}, args...), tc.extra...)), errb.String()
			if exit != tc.exit || !strings.Contains(errOut, tc.stderrHas) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", exit, tc.exit, errOut, tc.stderrHas)
			}
			if deleted := deletes.Load() > before; deleted != tc.deleted {
				t.Fatalf("DELETE sent: %v, want %v", deleted, tc.deleted)
			}
		})
	}
}
