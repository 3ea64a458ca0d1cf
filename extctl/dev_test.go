package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/testenv"
)

// TestDevLoop: against a real stack (registryd on Postgres, runnerd, Caddy
// with the extedge gateway and Redis), `extctl dev` on a project `extctl
// new` scaffolded publishes 0.0.0-dev.1 and installs it; after a source
// edit it publishes 0.0.0-dev.2 and the gateway answers the new text; it
// tails the debug stream; cancelling it returns exit 0.
func TestDevLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm guest twice and starts a whole stack")
	}
	st := newDevStack(t)
	r, caddy, tok, write := st.r, st.caddy, st.tok, st.write
	const ext, tenant = devStackExt, devStackTenant

	project := filepath.Join(t.TempDir(), "notes")
	mustRun(t, "new", ext, "--dir", project, "--sdk", repoRoot(t), "--publisher", "Example Co")
	t.Setenv("EXTCTL", testenv.Binary(t, "./extctl"))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	c := &cli{stdout: stdout, stderr: stderr, stdin: strings.NewReader(""), ctx: ctx}
	args := append([]string{"dev", project, "--tenant", tenant, "--key", filepath.Join(r.keys, "publisher.key"),
		"--gateway", caddy.URL, "--gateway-token-file", write("gw.jwt", tok), "--interval", "200ms"}, r.flags(r.adminToken)...)
	done := make(chan int, 1)
	go func() { done <- c.main(args) }()
	waitOutput := func(what string, timeout time.Duration) {
		t.Helper()
		testenv.WaitFor(t, timeout, func() error {
			select {
			case code := <-done:
				t.Fatalf("dev ended with %d: %s", code, stderr.String())
			default:
			}
			if !strings.Contains(stderr.String(), what) {
				return fmt.Errorf("no %q yet", what)
			}
			return nil
		})
	}
	// post POSTs a note; an empty one the guest refuses with its own
	// message, without touching storage.
	post := func(text string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, "POST", caddy.URL+"/api/ext/"+ext+"/notes", strings.NewReader(`{"text":"`+text+`"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	answers := func(want string) {
		t.Helper()
		testenv.WaitFor(t, 60*time.Second, func() error {
			if code, body := post(""); code != 400 || !strings.Contains(body, want) {
				return fmt.Errorf("call: %d %s (want 400 with %q)", code, body, want)
			}
			return nil
		})
	}

	waitOutput("published com.acme.notes@0.0.0-dev.1", 3*time.Minute)
	waitOutput("following the live debug stream", 20*time.Second)
	answers("text must be 1 to 1000 bytes")
	// The guest's log line of a stored note comes through the debug stream.
	if code, body := post("hello"); code != 201 {
		t.Fatalf("storing a note: %d %s\n%s", code, body, caddy.Log())
	}
	testenv.WaitFor(t, 20*time.Second, func() error {
		if !strings.Contains(stdout.String(), "stored note") {
			return fmt.Errorf("no guest log line on stdout yet: %q", stdout.String())
		}
		return nil
	})

	src := filepath.Join(project, "guest", "main.go")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), `"text must be 1 to %d bytes"`, `"a dev note must be 1 to %d bytes"`, 1)
	if edited == string(b) {
		t.Fatal("scaffold's guest lacks the message this test edits")
	}
	if err := os.WriteFile(src, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	waitOutput("published com.acme.notes@0.0.0-dev.2", 3*time.Minute)
	answers("a dev note must be 1 to 1000 bytes")

	// A change outside the bundle (README.md is not packed) rebuilds but
	// publishes nothing.
	if err := os.WriteFile(filepath.Join(project, "README.md"), []byte("# notes\nedited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitOutput("the bundle did not change; nothing published", time.Minute)

	// A broken build is printed and the loop waits; the fix back to what
	// is published rebuilds and publishes nothing.
	if err := os.WriteFile(src, []byte(edited+"\nfunc broken() {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitOutput("build (./build.sh) failed", time.Minute)
	if err := os.WriteFile(src, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, func() error {
		if n := strings.Count(stderr.String(), "the bundle did not change"); n != 2 {
			return fmt.Errorf("%d unchanged rounds, want 2", n)
		}
		return nil
	})

	ins := decodeJSON[[]registryapi.Install](t, r.admin(t, "list", "--tenant", tenant, "--json"))
	if len(ins) != 1 || ins[0].Version.Version != "0.0.0-dev.2" || strings.Join(ins[0].GrantedCaps, ",") != "log.emit,storage.kv" {
		t.Fatalf("installs after two rounds: %+v", ins)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after cancel: %s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("dev did not stop when cancelled")
	}
	t.Logf("dev output:\n%s", stderr.String())
	if n := len(regexp.MustCompile(`dev: published `).FindAllString(stderr.String(), -1)); n != 2 {
		t.Fatalf("%d publishes, want 2:\n%s", n, stderr.String())
	}

	// A new run continues from the registry's highest dev version; with
	// --json its events are JSON lines on stdout.
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	stdout2, stderr2 := &syncBuffer{}, &syncBuffer{}
	c2 := &cli{stdout: stdout2, stderr: stderr2, stdin: strings.NewReader(""), ctx: ctx2}
	done2 := make(chan int, 1)
	go func() { done2 <- c2.main(append(args, "--no-follow", "--json")) }()
	testenv.WaitFor(t, 2*time.Minute, func() error {
		if !strings.Contains(stderr2.String(), "published com.acme.notes@0.0.0-dev.3") {
			return fmt.Errorf("second run: %q", stderr2.String())
		}
		return nil
	})
	cancel2()
	if code := <-done2; code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr2.String())
	}
	ev := jsonLines[devEvent](t, stdout2.String())
	if len(ev) != 1 || ev[0] != (devEvent{Type: "published", Extension: ext, Version: "0.0.0-dev.3", ContentHash: ev[0].ContentHash, Tenant: tenant}) ||
		!strings.HasPrefix(ev[0].ContentHash, "sha256:") {
		t.Fatalf("--json events %+v", ev)
	}
}

// devStack is a registry, a runner with Redis and the registry for KV, and
// Caddy with the extedge module in front of them: what `extctl dev` talks
// to. tok is a session token of tenant with extension:debug.
type devStack struct {
	r     *registry
	caddy *testenv.CaddyServer
	tok   string
	write func(name, content string) string
}

const (
	devStackExt    = "com.acme.notes"
	devStackTenant = "tenant-a"
)

func newDevStack(t *testing.T) *devStack {
	r := startRegistry(t)
	rds := testenv.Redis(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const tenant = devStackTenant
	runnerTok := write("runner.token", "dev-runner-token")
	sockDir, _ := os.MkdirTemp("", "dev")
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	service := r.token(t, "service.token", "--role", "service")
	rd := testenv.Runnerd(t, testenv.RunnerdOptions{Socket: filepath.Join(sockDir, "r.sock"),
		BundleStore: "file://" + filepath.Join(r.dir, "blobs"), TrustBundle: filepath.Join(r.keys, "publisher.pub"), TokenFile: runnerTok,
		Args: []string{"--registry", r.url, "--registry-token-file", service, "--secrets-key-file", r.secretsKey, "--redis", rds.URL()}})
	gw := startGateway(t, dir, r.url, service, rd.Socket, runnerTok, rds.URL())
	tok := gw.token(t, tenant, "extension:read extension:write extension:debug")
	return &devStack{r: r, caddy: gw.CaddyServer, tok: tok, write: write}
}
