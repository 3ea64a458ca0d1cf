package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/extedge/extedge/internal/testenv"
)

// browserPage is one tab of a headless Chromium, with helpers that evaluate
// JavaScript in its top-level document.
type browserPage struct {
	ctx context.Context // chromedp context of the tab; has run once
}

// startBrowser starts Chromium with a fresh profile and returns a tab; the
// browser stops when the test ends.
func startBrowser(t *testing.T) *browserPage {
	t.Helper()
	ctx := testenv.Chromium(t, 1280, 1024)
	return &browserPage{ctx: ctx}
}

// navigate loads url and waits until expr is truthy.
func (p *browserPage) navigate(t *testing.T, url, readyExpr string) {
	t.Helper()
	testenv.Navigate(t, p.ctx, url)
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
