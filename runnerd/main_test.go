package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/runnerd/runnertest/bundletest"
	"github.com/extedge/extedge/runnerd/runnertest/guests"
)

// TestServeEndToEnd runs `runnerd serve` in-process with real flags: a file
// blob store holding a signed bundle, a trust bundle, a token file and a
// Unix socket. It executes a handler, checks the socket mode, and drains on
// SIGTERM.
func TestServeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	store := bundletest.LocalStore(t)
	pub := bundletest.NewPublisher(t, "Acme Inc.")
	hash := pub.Publish(t, store, map[string][]byte{
		"manifest.json":           bundletest.Manifest("com.acme.e2e", "Acme Inc.", "dist/handlers/ok", "dist/handlers/loop"),
		"dist/handlers/ok.wasm":   guests.MustWasm(t, "ok.wat", nil),
		"dist/handlers/loop.wasm": guests.MustWasm(t, "loop.wat", nil),
	})
	trust := filepath.Join(dir, "trust.pem")
	os.WriteFile(trust, pub.TrustPEM, 0o600)
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("  tok-123\n"), 0o600)
	sock := filepath.Join(dir, "runner.sock")

	done := make(chan error, 1)
	go func() {
		done <- serve([]string{"--listen", "unix://" + sock, "--token-file", tokenFile, "--trust-bundle", trust,
			"--bundle-store", store.String(), "--cache-dir", filepath.Join(dir, "cache"), "--grace", "5s", "--drain-delay", "100ms", "--log-level", "error"})
	}()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	waitReady(t, client, done)
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v %v", fi.Mode().Perm(), err)
	}
	exec := func(handler string, timeoutMS int) (int, []byte) {
		env := map[string]any{
			"context":  map[string]any{"request_id": "r-1", "tenant_id": "t1", "extension_id": "com.acme.e2e", "install_id": "i1", "version_id": "v1", "content_hash": hash},
			"http":     map[string]any{"method": "GET", "path": "/h0"},
			"endpoint": map[string]any{"method": "GET", "path": "/h0", "handler": handler},
			"limits":   map[string]any{"timeout_ms": timeoutMS},
		}
		b, _ := json.Marshal(env)
		req, _ := http.NewRequest("POST", "http://runner/v1/execute", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer tok-123")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	status, body := exec("dist/handlers/ok", 1000)
	var resp execapi.Response
	if status != 200 || json.Unmarshal(body, &resp) != nil || resp.Status != 201 || string(resp.Body) != "hello" {
		t.Fatalf("execute: %d %s", status, body)
	}
	mresp, err := client.Get("http://runner/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mtext, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{`extedge_runner_cache_lookups_total{layer="bundle_disk",result="miss"} 1`,
		`extedge_runner_cache_lookups_total{layer="disk",result="miss"} 1`, "extedge_runner_instantiate_seconds_bucket",
		`extedge_runner_invocations_total{outcome="ok"} 1`} {
		if !strings.Contains(string(mtext), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// SIGTERM while a call is in flight: the call finishes, then serve returns.
	got := make(chan int, 1)
	go func() { st, _ := exec("dist/handlers/loop", 300); got <- st }()
	testenv.WaitFor(t, 5*time.Second, func() error {
		resp, err := client.Get("http://runner/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), "extedge_runner_in_flight 1") {
			return fmt.Errorf("loop call not in flight yet")
		}
		return nil
	})
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := <-got; st != 504 {
		t.Fatalf("in-flight call during drain got %d, want its 504", st)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after SIGTERM")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Error("socket left behind after shutdown")
	}
}

func TestServeRefusesMissingTrustBundle(t *testing.T) {
	t.Setenv("SIGNING_TRUST_BUNDLE", "")
	t.Setenv("EXTEDGE_TRUST_BUNDLE", "")
	err := serve([]string{"--listen", "unix://" + filepath.Join(t.TempDir(), "s.sock")})
	if err == nil || !strings.Contains(err.Error(), "trust-bundle") {
		t.Fatalf("err = %v, want a missing trust bundle error", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "64MiB": 64 << 20, "2GiB": 2 << 30, "10KB": 10000} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "ten", "5TB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded", in)
		}
	}
}

// waitReady waits until the in-process serve answering on client is ready,
// failing the test if serve returns first (done receives its error).
func waitReady(t *testing.T, client *http.Client, done <-chan error) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, func() error {
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v", err)
		default:
		}
		resp, err := client.Get("http://runner/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
}
