package main

import (
	"bytes"
	"context"
	"crypto/tls"
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
	"github.com/extedge/extedge/internal/tlsconf"
	"github.com/extedge/extedge/runnerd/runnertest/bundletest"
	"github.com/extedge/extedge/runnerd/runnertest/guests"
)

// serveFixture is what `runnerd serve` needs on disk: a file blob store
// holding one signed bundle (handlers ok, slow and loop), its trust bundle
// and a token file.
type serveFixture struct {
	dir, store, trust, tokenFile, hash string
	sock                               string // the Unix socket serve listens on
}

const serveToken = "tok-123"

func newServeFixture(t *testing.T) *serveFixture {
	t.Helper()
	dir := t.TempDir()
	store := bundletest.LocalStore(t)
	pub := bundletest.NewPublisher(t, "Acme Inc.")
	hash := pub.Publish(t, store, map[string][]byte{
		"manifest.json":           bundletest.Manifest("com.acme.e2e", "Acme Inc.", "dist/handlers/ok", "dist/handlers/slow", "dist/handlers/loop"),
		"dist/handlers/ok.wasm":   guests.MustWasm(t, "ok.wat", nil),
		"dist/handlers/slow.wasm": guests.MustWasm(t, "slow.wat", map[string]string{"MS": "3000"}),
		"dist/handlers/loop.wasm": guests.MustWasm(t, "loop.wat", nil),
	})
	f := &serveFixture{dir: dir, store: store.String(), trust: filepath.Join(dir, "trust.pem"),
		tokenFile: filepath.Join(dir, "token"), hash: hash, sock: filepath.Join(dir, "runner.sock")}
	os.WriteFile(f.trust, pub.TrustPEM, 0o600)
	os.WriteFile(f.tokenFile, []byte(serveToken+"\n"), 0o600)
	return f
}

// args are the flags serve needs for the fixture, then extra.
func (f *serveFixture) args(extra ...string) []string {
	return append([]string{"--listen", "unix://" + f.sock, "--token-file", f.tokenFile, "--trust-bundle", f.trust,
		"--bundle-store", f.store, "--cache-dir", filepath.Join(f.dir, "cache"), "--log-level", "error"}, extra...)
}

// start runs serve in-process and waits until /readyz answers 200 on the
// Unix socket. The returned channel carries serve's result.
func (f *serveFixture) start(t *testing.T, extra ...string) <-chan error {
	t.Helper()
	return f.startArgs(t, f.args(extra...))
}

// startArgs is start with exactly args.
func (f *serveFixture) startArgs(t *testing.T, args []string) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- serve(args) }()
	client := f.unixClient()
	waitReady(t, client, done)
	return done
}

// unixClient opens a new connection per request, so each call is a new
// connection to the listener.
func (f *serveFixture) unixClient() *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", f.sock)
		}}}
}

// execute calls handler through client at base; it returns the HTTP status
// and the decoded guest reply.
func (f *serveFixture) execute(client *http.Client, base, handler string, timeoutMS int) (int, *execapi.Response, error) {
	env := map[string]any{
		"context":  map[string]any{"request_id": "r-1", "tenant_id": "t1", "extension_id": "com.acme.e2e", "install_id": "i1", "version_id": "v1", "content_hash": f.hash},
		"http":     map[string]any{"method": "GET", "path": "/h0"},
		"endpoint": map[string]any{"method": "GET", "path": "/h0", "handler": handler},
		"limits":   map[string]any{"timeout_ms": timeoutMS},
	}
	b, _ := json.Marshal(env)
	req, _ := http.NewRequest("POST", base+"/v1/execute", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+serveToken)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out execapi.Response
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &out); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("reply %q: %v", body, err)
		}
	}
	return resp.StatusCode, &out, nil
}

// stop sends this process SIGTERM, as an orchestrator would, and waits for
// serve to return.
func stop(t *testing.T, done <-chan error, within time.Duration) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(within):
		t.Fatal("serve did not return after SIGTERM")
	}
}

func freeTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServeTLSOnTCP: with --tls-cert/--tls-key the tcp:// listener speaks
// TLS with that certificate, and a client trusting the CA calls the
// runner; the Unix socket stays plain.
func TestServeTLSOnTCP(t *testing.T) {
	f := newServeFixture(t)
	ca := testenv.WriteTestCA(t, t.TempDir())
	addr := freeTCPAddr(t)
	done := f.start(t, "--listen", "tcp://"+addr, "--tls-cert", ca.CertFile, "--tls-key", ca.KeyFile, "--drain-delay", "0")

	clientTLS, err := tlsconf.Client(ca.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	trusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS}}
	st, reply, err := f.execute(trusting, "https://"+addr, "dist/handlers/ok", 1000)
	if err != nil || st != 200 || reply.Status != 201 || string(reply.Body) != "hello" {
		t.Fatalf("execute over TLS: %d %+v %v", st, reply, err)
	}

	// The same listener refuses a client that does not trust the CA, and
	// plain HTTP gets no reply.
	if _, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}).Get("https://" + addr + "/readyz"); err == nil {
		t.Error("a client with the system roots trusted the test CA")
	}
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served on the TLS listener")
		}
	}
	if st, reply, err := f.execute(f.unixClient(), "http://runner", "dist/handlers/ok", 1000); err != nil || st != 200 || reply.Status != 201 {
		t.Fatalf("execute over the plain Unix socket: %d %+v %v", st, reply, err)
	}
	stop(t, done, 10*time.Second)
}

// TestRegistryClientTrustsCAFile: --ca-file makes runnerd's registry client
// trust that CA (and only with it does the TLS handshake succeed).
func TestRegistryClientTrustsCAFile(t *testing.T) {
	ca := testenv.WriteTestCA(t, t.TempDir())
	srvTLS, err := tlsconf.Server(ca.CertFile, ca.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvTLS)
	if err != nil {
		t.Fatal(err)
	}
	gotAuth := make(chan string, 4)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth <- r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{}`)
	})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	f := newServeFixture(t)
	regToken := filepath.Join(f.dir, "service.token")
	os.WriteFile(regToken, []byte("svc-token\n"), 0o600)
	daemonFor := func(extra ...string) *daemon {
		t.Helper()
		o, err := parseOptions(f.args(append([]string{"--registry", "https://" + ln.Addr().String(), "--registry-token-file", regToken}, extra...)...), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		d := &daemon{o: o}
		if err := d.loadInputs(); err != nil {
			t.Fatal(err)
		}
		return d
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := daemonFor().reg.Do(ctx, "GET", "/v1/ping", nil, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without --ca-file: err = %v, want a certificate error", err)
	}
	var out map[string]any
	if err := daemonFor("--ca-file", ca.CAFile).reg.Do(ctx, "GET", "/v1/ping", nil, &out); err != nil {
		t.Fatalf("with --ca-file: %v", err)
	}
	if auth := <-gotAuth; auth != "Bearer svc-token" {
		t.Fatalf("registry saw Authorization %q", auth)
	}
}

// TestSIGTERMDrainsAfterDelay is the drain sequence: on SIGTERM /readyz
// answers 503 at once; for --drain-delay the listener still accepts new
// connections and serves them; then it closes, and a slow call in flight
// still completes within --grace before serve returns.
func TestSIGTERMDrainsAfterDelay(t *testing.T) {
	const drainDelay = 1500 * time.Millisecond
	f := newServeFixture(t)
	done := f.start(t, "--drain-delay", drainDelay.String(), "--grace", "15s")
	client := f.unixClient() // a new connection per request
	get := func(path string) (int, string, error) {
		resp, err := client.Get("http://runner" + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}

	type result struct {
		status int
		reply  *execapi.Response
		err    error
	}
	slow := make(chan result, 1)
	go func() {
		st, reply, err := f.execute(client, "http://runner", "dist/handlers/slow", 10000)
		slow <- result{st, reply, err}
	}()
	testenv.WaitFor(t, 5*time.Second, func() error {
		_, text, err := get("/metrics")
		if err != nil {
			return err
		}
		if !strings.Contains(text, "extedge_runner_in_flight 1") {
			return fmt.Errorf("slow call not in flight yet")
		}
		return nil
	})

	sigterm := time.Now()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Second, func() error {
		st, body, err := get("/readyz")
		if err != nil {
			return err
		}
		if st != 503 || !strings.Contains(body, "draining") {
			return fmt.Errorf("readyz %d %s", st, body)
		}
		return nil
	})
	if st, _, err := get("/healthz"); err != nil || st != 200 {
		t.Fatalf("healthz during drain: %d %v, want 200 (the process is alive)", st, err)
	}
	st, reply, err := f.execute(client, "http://runner", "dist/handlers/ok", 1000)
	if err != nil || st != 200 || reply.Status != 201 {
		t.Fatalf("new call on a new connection during the drain delay: %d %+v %v", st, reply, err)
	}
	if since := time.Since(sigterm); since >= drainDelay {
		t.Fatalf("checks took %v, longer than the drain delay: the test proves nothing", since)
	}

	// After the delay the listener closes while the slow call still runs.
	testenv.WaitFor(t, 5*time.Second, func() error {
		if _, _, err := get("/healthz"); err == nil {
			return fmt.Errorf("still accepting")
		}
		return nil
	})
	if since := time.Since(sigterm); since < drainDelay {
		t.Fatalf("listener closed %v after SIGTERM, before the drain delay %v", since, drainDelay)
	}
	select {
	case r := <-slow:
		t.Fatalf("slow call ended before the listener closed: %+v", r)
	default:
	}
	r := <-slow
	if r.err != nil || r.status != 200 || r.reply.Status != 200 || string(r.reply.Body) != "slow" {
		t.Fatalf("slow call in flight during the drain: %d %+v %v", r.status, r.reply, r.err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after the drain")
	}
	if _, err := os.Stat(f.sock); !os.IsNotExist(err) {
		t.Error("socket left behind after the drain")
	}
}

// TestRunnerTokenFromTheEnvironment: without --token-file,
// EXTEDGE_RUNNER_TOKEN holds the token itself (SPEC §6.1), as before
// envflag; EXTEDGE_TOKEN_FILE names a file like --token-file.
func TestRunnerTokenFromTheEnvironment(t *testing.T) {
	for _, tt := range []struct {
		name, variable string
		value          func(f *serveFixture) string
	}{
		{"token itself", runnerTokenEnv, func(*serveFixture) string { return serveToken }},
		{"token file", "EXTEDGE_TOKEN_FILE", func(f *serveFixture) string { return f.tokenFile }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newServeFixture(t)
			t.Setenv(tt.variable, tt.value(f))
			done := f.startArgs(t, without(f.args("--drain-delay", "0"), "--token-file"))
			st, reply, err := f.execute(f.unixClient(), "http://runner", "dist/handlers/ok", 1000)
			if err != nil || st != 200 || reply.Status != 201 {
				t.Fatalf("execute with the token from %s: %d %+v %v", tt.variable, st, reply, err)
			}
			stop(t, done, 10*time.Second)
		})
	}
}
