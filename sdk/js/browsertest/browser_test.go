package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// findChromium returns the Chromium binary: $EXTEDGE_CHROMIUM, else the first
// of the usual names on PATH or /usr/bin/chromium.
func findChromium() (string, error) {
	if p := os.Getenv("EXTEDGE_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("EXTEDGE_CHROMIUM=%s: %v", p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("chromium not found (looked for chromium, chromium-browser, google-chrome, /usr/bin/chromium)")
}

// requireChromium returns the Chromium binary, or fails the test with an
// install hint; EXTEDGE_SKIP_BROWSER turns the failure into a skip.
func requireChromium(t *testing.T) string {
	t.Helper()
	p, err := findChromium()
	if err == nil {
		return p
	}
	if v := os.Getenv("EXTEDGE_SKIP_BROWSER"); v != "" {
		t.Skipf("browsertest: %v; skipped because EXTEDGE_SKIP_BROWSER=%s", err, v)
	}
	t.Fatalf("browsertest: %v; install it with `apt-get install chromium` or set EXTEDGE_CHROMIUM (or set EXTEDGE_SKIP_BROWSER=1 to skip these tests)", err)
	return ""
}

// browserPage is one tab of a headless Chromium, with helpers that evaluate
// JavaScript in its top-level document.
type browserPage struct {
	ctx context.Context // chromedp context of the tab; has run once
}

// startBrowser starts Chromium with a fresh profile and returns a tab; the
// browser stops when the test ends.
func startBrowser(t *testing.T) *browserPage {
	t.Helper()
	bin := requireChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1024),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	// The first Run starts the browser; it must not carry a timeout (that
	// would stop the browser), so the deadline is enforced around it.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting chromium %s: %v", bin, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("chromium %s did not start within 20s", bin)
	}
	return &browserPage{ctx: ctx}
}

// navigate loads url and waits until expr is truthy.
func (p *browserPage) navigate(t *testing.T, url, readyExpr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("loading %s: %v", url, err)
	}
	p.waitFor(t, "page ready ("+readyExpr+")", readyExpr, 10*time.Second)
}

// eval evaluates expr (awaiting a promise result) and decodes its JSON value
// into out, which may be nil.
func (p *browserPage) eval(t *testing.T, out any, expr string) {
	t.Helper()
	if err := p.tryEval(out, expr); err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
}

func (p *browserPage) tryEval(out any, expr string) error {
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// call runs window.T[fn](args...) in the host page and decodes the result.
func (p *browserPage) call(t *testing.T, out any, fn string, args ...any) {
	t.Helper()
	p.eval(t, out, jsCall(fn, args...))
}

func jsCall(fn string, args ...any) string {
	if args == nil {
		args = []any{}
	}
	b, err := json.Marshal(args)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("T.%s(...%s)", fn, b)
}

// waitFor polls the JavaScript expression expr until it is truthy, and fails
// the test with desc when timeout passes first.
func (p *browserPage) waitFor(t *testing.T, desc, expr string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingTimeout(timeout),
		chromedp.WithPollingInterval(20*time.Millisecond)))
	if err != nil {
		t.Fatalf("waiting for %s: %v", desc, err)
	}
}

// waitUntil polls check (Go side) until it returns "", failing with the last
// reason when timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := check()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
