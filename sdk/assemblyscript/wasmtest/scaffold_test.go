package wasmtest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/runnerd/runnertest"
)

// npmRun runs npm in dir as an author would, with a deadline.
func npmRun(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm not found; install Node.js and npm (`apt-get install npm`, which deploy/dev/install-deps.sh does)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false"), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// TestScaffoldEndToEnd: `extctl new --lang assemblyscript` → npm install →
// npm test (build + the project's own node --test) → npm run pack (extctl
// pack) → the packed module runs on the engine and answers both endpoints.
func TestScaffoldEndToEnd(t *testing.T) {
	root := repoPath(t, ".")
	extctl := testenv.Binary(t, "./extctl")
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "notes")
	if out, err := exec.Command(extctl, "new", "com.acme.notes", "--lang", "assemblyscript", "--dir", dir, "--sdk", root).CombinedOutput(); err != nil {
		t.Fatalf("extctl new: %v\n%s", err, out)
	}
	start := time.Now()
	npmRun(t, dir, nil, "install", "--ignore-scripts", "--prefer-offline", "--loglevel=error")
	t.Logf("npm install: %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	out := npmRun(t, dir, nil, "test")
	if !strings.Contains(out, "# pass 2") || !strings.Contains(out, "# fail 0") {
		t.Fatalf("npm test:\n%s", out)
	}
	t.Logf("npm test (build + node --test): %v", time.Since(start).Round(time.Millisecond))
	out = npmRun(t, dir, []string{"EXTCTL=" + extctl}, "run", "pack")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	hash := ""
	for _, l := range lines {
		if strings.HasPrefix(l, "sha256:") {
			hash = strings.TrimSpace(l)
		}
	}
	bundlePath := filepath.Join(dir, "build", "notes.tar.zst")
	if got, _, err := bundle.HashFile(bundlePath); err != nil || got != hash {
		t.Fatalf("npm run pack printed %q, bundle hash %s (%v)\n%s", hash, got, err, out)
	}
	f, err := os.Open(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wasm, err := bundle.ReadEntry(f, "dist/main.wasm", bundle.DefaultLimits())
	if err != nil {
		t.Fatalf("reading dist/main.wasm from the bundle: %v", err)
	}
	t.Logf("scaffold module: %d bytes, bundle %s", len(wasm), hash)

	h := runnertest.NewHost(t, runnertest.Config{})
	m := h.Compile(t, wasm)
	call := func(method, handler, body string, caps ...string) *runnertest.Call {
		t.Helper()
		env := &execapi.Request{
			Context:      execapi.Context{RequestID: "r", TenantID: "t", InstallID: "i"},
			HTTP:         execapi.HTTPRequest{Method: method, Path: "/notes", Query: map[string]string{}, Headers: map[string]string{}},
			Endpoint:     execapi.Endpoint{Method: method, Path: "/notes", Handler: handler, Params: map[string]string{}},
			Capabilities: caps,
		}
		if body != "" {
			env.HTTP.Body = []byte(body)
		}
		c := h.Run(t, m, env)
		if c.Err != nil {
			t.Fatalf("%s %s: %v", method, handler, c.Err)
		}
		return c
	}
	for _, text := range []string{"first", "second"} {
		c := call("POST", "dist/handlers/create", `{"text":"`+text+`"}`, "storage.kv")
		if c.Response.Status != 201 {
			t.Fatalf("create: %d %s", c.Response.Status, c.Response.Body)
		}
	}
	var page struct {
		Items []struct {
			ID   string `json:"id"`
			Text string `json:"text"`
		} `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	c := call("GET", "dist/handlers/list", "", "storage.kv")
	if err := json.Unmarshal(c.Response.Body, &page); err != nil || len(page.Items) != 2 ||
		page.Items[0].ID != "0000000001" || page.Items[1].Text != "second" || page.NextCursor != "" {
		t.Fatalf("list: %s", c.Response.Body)
	}
	var denied errorBody
	c = call("GET", "dist/handlers/list", "")
	if json.Unmarshal(c.Response.Body, &denied); c.Response.Status != 403 || denied.Error.Code != "capability_denied" {
		t.Fatalf("list without storage.kv: %d %s", c.Response.Status, c.Response.Body)
	}
}
