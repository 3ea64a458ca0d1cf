package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// findChromium returns the Chromium binary: $EXTEDGE_CHROMIUM, else the
// first of the usual names on PATH or /usr/bin/chromium.
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

// Chromium starts a headless Chromium (Debian's package; flags for running
// as root in a sandboxed container on a closed network) with a fresh
// profile and a window of the given size, and returns the chromedp context
// of its first tab, already started. The browser stops when the test ends.
// Without Chromium the test fails with an install hint, or skips when
// EXTEDGE_SKIP_BROWSER is set.
func Chromium(t testing.TB, width, height int) context.Context {
	t.Helper()
	bin, err := findChromium()
	if err != nil {
		if v := os.Getenv("EXTEDGE_SKIP_BROWSER"); v != "" {
			t.Skipf("testenv: %v; skipped because EXTEDGE_SKIP_BROWSER=%s", err, v)
		}
		t.Fatalf("testenv: %v; install it with `apt-get install chromium` or set EXTEDGE_CHROMIUM (or set EXTEDGE_SKIP_BROWSER=1 to skip browser tests)", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox, // Debian's chromium as root in a container
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
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
	case <-time.After(30 * time.Second):
		t.Fatalf("chromium %s did not start within 30s", bin)
	}
	return ctx
}

// Navigate loads url in the tab of ctx (from Chromium) and waits for its
// load event, failing the test after 20s.
func Navigate(t testing.TB, ctx context.Context, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("loading %s: %v", url, err)
	}
}
