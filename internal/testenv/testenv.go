// Package testenv starts the real services that extedge's integration tests
// talk to (MinIO, Redis, and later Postgres) as child processes of the test
// binary, waits for them to be ready with a deadline, and tears them down by
// PID when the test ends.
//
// A missing binary fails the test with an install instruction. Setting
// EXTEDGE_SKIP_<NAME> (EXTEDGE_SKIP_MINIO, EXTEDGE_SKIP_REDIS) turns that
// failure into an explicit t.Skip, so nothing is ever skipped silently.
//
// The harness is Linux-only (process groups, Pdeathsig), like the services'
// deployment targets.
//
// Servers shared by a whole test binary (see SharedMinIO) are stopped by Main,
// which a package opts into with:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Main runs the tests of a package and then stops every shared server that
// the tests started. Use it as the whole body of TestMain.
func Main(m *testing.M) {
	mainActive.Store(true)
	code := m.Run()
	stopShared()
	os.Exit(code)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// kernel does not reserve it, so a server started on it may still lose a race;
// the starters in this package retry on a fresh port when that happens.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("testenv: finding a free port: %v", err)
	}
	return port
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitFor calls check until it returns nil or timeout elapses, and fails the
// test with check's last error if the deadline passes.
func WaitFor(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	if err := poll(timeout, nil, check); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// pollInterval is how often poll retries; short, because every integration
// test waits on it.
const pollInterval = 20 * time.Millisecond

// poll retries check until it succeeds, the deadline passes, or exited (if
// not nil) is closed, which means the process being waited for has died.
func poll(timeout time.Duration, exited <-chan struct{}, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if exited != nil {
			select {
			case <-exited:
				return fmt.Errorf("process exited while waiting: %v", err)
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %v", timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// findBinary looks for name in $envVar, PATH and the extra directories, in
// that order.
func findBinary(name, envVar string, extraDirs ...string) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$%s=%s: %v", envVar, p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range extraDirs {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in $%s, PATH or %v", name, envVar, extraDirs)
}

// requireBinary resolves a binary or ends the test: with t.Skip when skipEnv
// is set, otherwise with t.Fatalf carrying the install instruction.
func requireBinary(t testing.TB, find func() (string, error), skipEnv, installHint string) string {
	t.Helper()
	p, err := find()
	if err == nil {
		return p
	}
	if v := os.Getenv(skipEnv); v != "" {
		t.Skipf("testenv: %v; skipped because %s=%s", err, skipEnv, v)
	}
	t.Fatalf("testenv: %v; install it with `%s` (or set %s=1 to skip these tests)", err, installHint, skipEnv)
	return ""
}

// process is one run of a server binary in its own process group, with its
// output captured in a log file for error messages.
type process struct {
	cmd       *exec.Cmd
	exited    chan struct{} // closed once Wait has returned
	waitErr   error         // valid after exited is closed
	logPath   string
	logOffset int64 // where this run's output starts in logPath
}

// startProcess starts bin with args and extra environment variables, writing
// stdout and stderr to logPath (appending, so restarts keep earlier output).
func startProcess(bin string, args, env []string, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	var offset int64
	if fi, err := logFile.Stat(); err == nil {
		offset = fi.Size()
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: stopping kills the server and anything it forked.
		Setpgid: true,
		// If the test binary dies without cleaning up (panic, timeout), the
		// kernel kills the server instead of leaving it behind.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %v", bin, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{}), logPath: logPath, logOffset: offset}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	return p, nil
}

// stopTimeout bounds how long a server may take to exit after SIGTERM before
// it gets SIGKILL.
const stopTimeout = 5 * time.Second

// stop terminates the process group and waits for the process to be reaped.
func (p *process) stop() {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
	}
	// Children that ignored SIGTERM while the leader exited.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// logTail returns the last few KiB of this run's output, for error messages.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.logPath, err)
	}
	if p.logOffset <= int64(len(b)) {
		b = b[p.logOffset:]
	}
	const max = 4 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(bytes.TrimSpace(b))
}

// errPortInUse marks a start that lost the race for its port; callers retry
// on a fresh port.
var errPortInUse = errors.New("port already in use")

// launch starts a server process and waits until ready succeeds, the process
// dies, or timeout passes. On failure the process is gone and the error
// carries the tail of its output.
func launch(bin string, args, env []string, logPath string, timeout time.Duration, ready func() error) (*process, error) {
	p, err := startProcess(bin, args, env, logPath)
	if err != nil {
		return nil, err
	}
	if err := poll(timeout, p.exited, ready); err != nil {
		p.stop()
		out := p.logTail()
		if strings.Contains(strings.ToLower(out), "already in use") {
			return nil, fmt.Errorf("%w: %v; %s output:\n%s", errPortInUse, err, filepath.Base(bin), out)
		}
		return nil, fmt.Errorf("%v; %s output:\n%s", err, filepath.Base(bin), out)
	}
	return p, nil
}

// sharedStopper holds what Main stops after the tests ran.
var (
	sharedMu      sync.Mutex
	sharedStopper []func()
)

// mainActive records whether the package runs under Main; without it there is
// nobody to stop shared servers, so the Shared* helpers fall back to private ones.
var mainActive atomic.Bool

func registerShared(stop func()) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	sharedStopper = append(sharedStopper, stop)
}

func stopShared() {
	sharedMu.Lock()
	stops := sharedStopper
	sharedStopper = nil
	sharedMu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
}

// startDaemon runs one of this module's daemons for t: it starts bin with
// startProcess, stops it when the test ends, and waits up to 60 s until
// ready succeeds. If the process exits first, the test fails with its
// output.
func startDaemon(t testing.TB, bin string, args, env []string, logPath string, ready func() error) *process {
	t.Helper()
	p, err := startProcess(bin, args, env, logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	WaitFor(t, 60*time.Second, func() error {
		select {
		case <-p.exited:
			t.Fatalf("%s exited during startup (%v):\n%s", filepath.Base(bin), p.waitErr, p.logTail())
		default:
		}
		return ready()
	})
	return p
}

// kill stops the process group with SIGKILL (for fault tests) and waits
// for the process to be reaped.
func (p *process) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// httpReady is a readiness check: GET url answers 200.
func httpReady(c *http.Client, url string) func() error {
	return func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %d", url, resp.StatusCode)
		}
		return nil
	}
}
