package testenv

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// RunnerdOptions configure a runnerd process for a test. BundleStore and
// TrustBundle are required, and a token: TokenFile or Token.
type RunnerdOptions struct {
	BundleStore string // file:///dir or s3://…
	TrustBundle string // PEM file
	TokenFile   string // the runner bearer token, read by --token-file
	Token       string // or the token itself, passed as EXTEDGE_RUNNER_TOKEN
	// Socket is the Unix socket to listen on. Default: runnerd.sock in a
	// new short temporary directory (socket paths are limited to ~100
	// bytes, which t.TempDir can exceed).
	Socket string
	// CacheDir is the bundle and module cache. Default: a t.TempDir.
	CacheDir string
	// Env is added to the process environment (e.g. "GOMAXPROCS=1").
	Env []string
	// Args are extra `serve` flags.
	Args []string
}

// RunnerdServer is a real runnerd process built from this module
// (./runnerd) serving on a Unix socket.
type RunnerdServer struct {
	Socket string
	Bin    string
	Log    string // path of its combined output

	proc *process
}

// Runnerd builds runnerd once per test binary, runs `serve` with opts and
// waits until /readyz answers on its socket. The process is stopped when
// the test ends.
func Runnerd(t testing.TB, opts RunnerdOptions) *RunnerdServer {
	t.Helper()
	if opts.Socket == "" {
		dir, err := os.MkdirTemp("", "rd")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		opts.Socket = filepath.Join(dir, "runnerd.sock")
	}
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	r := &RunnerdServer{
		Socket: opts.Socket,
		Bin:    Binary(t, "./runnerd"),
		Log:    filepath.Join(t.TempDir(), "runnerd.log"),
	}
	// No drain delay: tests stop runnerd with SIGTERM and want it gone
	// (stopTimeout); a test of the drain passes its own --drain-delay in
	// Args, which comes later and wins.
	args := []string{"serve", "--listen", "unix://" + opts.Socket, "--bundle-store", opts.BundleStore,
		"--trust-bundle", opts.TrustBundle, "--cache-dir", opts.CacheDir, "--drain-delay", "0"}
	if opts.TokenFile != "" {
		args = append(args, "--token-file", opts.TokenFile)
	}
	env := opts.Env
	if opts.Token != "" {
		env = append(env, "EXTEDGE_RUNNER_TOKEN="+opts.Token)
	}
	r.proc = startDaemon(t, r.Bin, append(args, opts.Args...), env, r.Log, httpReady(r.Client(time.Second), "http://runner/readyz"))
	return r
}

// Client is an HTTP client that dials the runner's socket; any host name
// in the URL reaches it ("http://runner/v1/execute"). timeout 0 means none.
func (r *RunnerdServer) Client(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		MaxIdleConnsPerHost: 16,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", r.Socket)
		},
	}}
}

// Address is the socket in the gateway's `runners` syntax (unix//path).
func (r *RunnerdServer) Address() string { return "unix/" + r.Socket }

// Kill stops runnerd with SIGKILL (for fault tests) and waits for it.
func (r *RunnerdServer) Kill() { r.proc.kill() }

// Stop sends SIGTERM (the drain) and waits for the process to exit, with
// SIGKILL after a few seconds.
func (r *RunnerdServer) Stop() { r.proc.stop() }

// Exited is closed when the process has ended.
func (r *RunnerdServer) Exited() <-chan struct{} { return r.proc.exited }
