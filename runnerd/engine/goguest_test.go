package engine

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/egress"
	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/runnerd/hostapi"
	"github.com/extedge/extedge/runnerd/hostapi/httpfetch"
	"github.com/extedge/extedge/runnerd/hostapi/kv"
	hostlog "github.com/extedge/extedge/runnerd/hostapi/log"
	hostmetrics "github.com/extedge/extedge/runnerd/hostapi/metrics"
	"github.com/extedge/extedge/runnerd/hostapi/secrets"
	"github.com/extedge/extedge/runnerd/runnertest/guests"
)

func goRequest(path string) []byte {
	b, _ := json.Marshal(execapi.GuestRequest{
		Context:  execapi.Context{RequestID: "r1", TenantID: "tenant-go"},
		HTTP:     execapi.HTTPRequest{Method: "GET", Path: path, Query: map[string]string{}, Headers: map[string]string{}},
		Endpoint: execapi.Endpoint{Method: "GET", Path: path, Handler: "dist/main"},
	})
	return b
}

// TestGoGuest runs a real Go handler built with sdk/guest (a wasip1
// reactor with _initialize) through the engine.
func TestGoGuest(t *testing.T) {
	// Go guests built with the SDK import every host function, so the
	// engine links the full production set.
	e, m := goGuestEngine(t)
	run := func(path string, lim Limits, caps ...string) (*Result, *hostapi.Report, error) {
		inv := hostapi.NewInvocation(context.Background(), &execapi.Request{Capabilities: caps}, hostapi.Budgets{})
		res, err := e.Run(context.Background(), m, "handler", goRequest(path), lim, inv)
		return res, &res.Host, err
	}
	t.Run("handler answers and logs", func(t *testing.T) {
		res, rep, err := run("/hello", Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Response.Status != 200 || !strings.Contains(string(res.Response.Body), `"tenant":"tenant-go"`) {
			t.Fatalf("response %d %s", res.Response.Status, res.Response.Body)
		}
		if len(rep.Logs) != 1 || rep.Logs[0].Message != "hello for tenant-go" {
			t.Fatalf("logs %+v", rep.Logs)
		}
		t.Logf("instantiate+_initialize %v, guest %v", res.Stats.Instantiate, res.Stats.Guest)
	})
	t.Run("go runtime out of memory is a memory limit", func(t *testing.T) {
		_, _, err := run("/oom", Limits{MemoryBytes: 32 << 20})
		if codeOf(err) != execapi.CodeMemoryLimit {
			t.Fatalf("err = %v, want memory_limit", err)
		}
	})
	t.Run("busy loop is a timeout", func(t *testing.T) {
		start := time.Now()
		_, _, err := run("/loop", Limits{Timeout: 200 * time.Millisecond})
		if codeOf(err) != execapi.CodeTimeout {
			t.Fatalf("err = %v, want timeout", err)
		}
		if el := time.Since(start); el > 300*time.Millisecond+200*time.Millisecond {
			t.Fatalf("Go loop stopped after %v", el)
		}
	})
	t.Run("storage without the capability is denied and the guest answers", func(t *testing.T) {
		res, _, err := run("/kv", Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(res.Response.Body), hostapi.CodeCapabilityDenied) {
			t.Fatalf("response %d %s", res.Response.Status, res.Response.Body)
		}
	})
	t.Run("panic is answered by the sdk or trapped, never crashes the runner", func(t *testing.T) {
		res, _, err := run("/panic", Limits{})
		if err == nil && res.Response.Status < 500 {
			t.Fatalf("panic answered %d", res.Response.Status)
		}
		if err != nil && codeOf(err) != execapi.CodeTrap && codeOf(err) != execapi.CodeHandlerError {
			t.Fatalf("panic classified as %v", err)
		}
	})
	t.Run("runtime stderr is captured into the log stream", func(t *testing.T) {
		_, rep, err := run("/print", Limits{})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, l := range rep.Logs {
			if l.Stream == "stderr" && strings.Contains(l.Message, "to stderr from the go runtime") {
				found = true
			}
		}
		if !found {
			t.Fatalf("stderr not captured: %+v", rep.Logs)
		}
	})
}

// TestGoGuestWithInstanceReuse: a real Go runtime (wasip1 reactor) in a
// kept instance keeps its package state between calls of one install, and
// its failures still discard the instance.
func TestGoGuestWithInstanceReuse(t *testing.T) {
	e, m := goGuestEngine(t)
	run := func(reuse *Reuse, path string, lim Limits) (*Result, error) {
		inv := hostapi.NewInvocation(context.Background(), &execapi.Request{}, hostapi.Budgets{})
		if reuse == nil {
			return e.Run(context.Background(), m, "handler", goRequest(path), lim, inv)
		}
		return e.RunReused(context.Background(), *reuse, m, "handler", goRequest(path), lim, inv)
	}
	count := func(t *testing.T, reuse *Reuse, want string) {
		t.Helper()
		res, err := run(reuse, "/count", Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(res.Response.Body); got != `{"calls":`+want+`}` {
			t.Fatalf("body = %s, want calls %s", got, want)
		}
	}
	a, b := &Reuse{Key: "tenant-a/i1"}, &Reuse{Key: "tenant-b/i2"}
	t.Run("package state persists for one install and not for another", func(t *testing.T) {
		count(t, a, "1")
		count(t, a, "2")
		count(t, b, "1")
		count(t, a, "3")
	})
	t.Run("reuse off gets a fresh Go runtime per call", func(t *testing.T) {
		count(t, nil, "1")
		count(t, nil, "1")
	})
	t.Run("stderr of each call is captured with that call", func(t *testing.T) {
		for range 2 {
			res, err := run(a, "/print", Limits{})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, l := range res.Host.Logs {
				if l.Stream == "stderr" && strings.Contains(l.Message, "to stderr from the go runtime") {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("stderr lines %+v, want exactly this call's one", res.Host.Logs)
			}
		}
		count(t, a, "4")
	})
	t.Run("out of memory and a busy loop discard the instance", func(t *testing.T) {
		if _, err := run(a, "/loop", Limits{Timeout: 200 * time.Millisecond}); codeOf(err) != execapi.CodeTimeout {
			t.Fatalf("err = %v, want timeout", err)
		}
		count(t, a, "1")
		// The memory cap is part of what a kept instance must match.
		small := Limits{MemoryBytes: 32 << 20}
		for _, want := range []string{"1", "2"} {
			res, err := run(a, "/count", small)
			if err != nil || string(res.Response.Body) != `{"calls":`+want+`}` {
				t.Fatalf("count at 32 MiB = %v, want %s", err, want)
			}
		}
		if _, err := run(a, "/oom", small); codeOf(err) != execapi.CodeMemoryLimit {
			t.Fatalf("err = %v, want memory_limit", err)
		}
		if res, err := run(a, "/count", small); err != nil || string(res.Response.Body) != `{"calls":1}` {
			t.Fatalf("count after oom = %v, want a fresh instance", err)
		}
		count(t, a, "2") // the 64 MiB instance was untouched
	})
}

// goGuestEngine is an engine with the production host set (Go guests built
// with the SDK import every host function) and the goguest test module
// compiled on it; the engine is closed when the test ends.
func goGuestEngine(t *testing.T) (*Engine, *Module) {
	t.Helper()
	fetch, err := httpfetch.New(httpfetch.Config{Policy: egress.NewPolicy(nil, nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	set, err := hostapi.NewSet(hostlog.Capability{}, hostmetrics.Capability{}, fetch, kv.New(nil), secrets.New(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{}, set)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e, compile(t, e, guests.GoGuest(t, "goguest"))
}
