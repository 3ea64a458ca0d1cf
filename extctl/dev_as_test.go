package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/testenv"
)

// TestAssemblyScriptScaffoldAnswersThroughCaddy is issue 13's author path
// for AssemblyScript, as a script: `extctl new NAME --lang assemblyscript`,
// `npm install`, then `extctl dev` builds it (npm run build), packs,
// signs, publishes and installs it, and the extension answers through a
// real Caddy: a note is stored in KV and listed back. Needs npm and the
// npm registry, as CI has.
func TestAssemblyScriptScaffoldAnswersThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("installs npm packages, builds a guest and starts a whole stack")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("npm not found; install it (`apt-get install npm`, which deploy/dev/install-deps.sh does)")
	}
	st := newDevStack(t)
	const ext = devStackExt
	project := filepath.Join(t.TempDir(), "notes")
	mustRun(t, "new", ext, "--lang", "assemblyscript", "--dir", project, "--sdk", repoRoot(t), "--publisher", "Example Co")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, npm, "install", "--ignore-scripts", "--prefer-offline", "--loglevel=error")
	install.Dir = project
	install.Env = append(os.Environ(), "npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm install: %v\n%s", err, out)
	}

	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	c := &cli{stdout: stdout, stderr: stderr, stdin: strings.NewReader(""), ctx: ctx}
	args := append([]string{"dev", project, "--tenant", devStackTenant, "--key", filepath.Join(st.r.keys, "publisher.key"),
		"--gateway", st.caddy.URL, "--gateway-token-file", st.write("gw.jwt", st.tok), "--interval", "200ms"}, st.r.flags(st.r.adminToken)...)
	done := make(chan int, 1)
	go func() { done <- c.main(args) }()
	testenv.WaitFor(t, 3*time.Minute, func() error {
		select {
		case code := <-done:
			t.Fatalf("dev ended with %d: %s", code, stderr.String())
		default:
		}
		if !strings.Contains(stderr.String(), "published "+ext+"@0.0.0-dev.1") {
			return fmt.Errorf("not published yet: %s", stderr.String())
		}
		return nil
	})

	call := func(method, body string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, method, st.caddy.URL+"/api/ext/"+ext+"/notes", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+st.tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testenv.WaitFor(t, time.Minute, func() error {
		if code, body := call("POST", `{"text":"from assemblyscript"}`); code != 201 {
			return fmt.Errorf("POST /notes through Caddy: %d %s", code, body)
		}
		return nil
	})
	if code, body := call("GET", ""); code != 200 || !strings.Contains(body, "from assemblyscript") {
		t.Fatalf("GET /notes through Caddy: %d %s\n%s", code, body, st.caddy.Log())
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("dev exited %d after cancel: %s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("dev did not stop when cancelled")
	}
}
