package runnerpool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/testenv"
)

// runner is an execapi test double on a Unix socket (runnerd itself is
// tested in its own package; these tests are about routing and retries).
type runner struct {
	sock  string
	srv   *http.Server
	calls atomic.Int64
	ready atomic.Bool
	reply func(w http.ResponseWriter, r *http.Request)
}

func startRunner(t *testing.T, dir, name string, reply func(w http.ResponseWriter, r *http.Request)) *runner {
	rn := &runner{sock: filepath.Join(dir, name), reply: reply}
	rn.ready.Store(true)
	ln, err := net.Listen("unix", rn.sock)
	if err != nil {
		t.Fatal(err)
	}
	rn.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == execapi.PathReadyz {
			if !rn.ready.Load() {
				w.WriteHeader(503)
			}
			return
		}
		rn.calls.Add(1)
		rn.reply(w, r)
	})}
	go rn.srv.Serve(ln)
	t.Cleanup(func() { rn.srv.Close() })
	return rn
}

func ok(w http.ResponseWriter, r *http.Request) {
	json.NewEncoder(w).Encode(execapi.Response{Status: 200, Body: []byte("ok")})
}

// call is an envelope for content hash key.
func call(key string) *execapi.Request {
	return &execapi.Request{Context: execapi.Context{ContentHash: key}}
}

func busy(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(429)
	json.NewEncoder(w).Encode(execapi.ErrorBody{Error: execapi.Error{Code: execapi.CodeConcurrencyLimited}})
}

func sockDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "rp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func newPool(t *testing.T, cfg Config, runners ...*runner) *Pool {
	for _, r := range runners {
		cfg.Addresses = append(cfg.Addresses, "unix/"+r.sock)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestRendezvousKeepsAHashOnOneRunner(t *testing.T) {
	dir := sockDir(t)
	a, b, c := startRunner(t, dir, "a", ok), startRunner(t, dir, "b", ok), startRunner(t, dir, "c", ok)
	p := newPool(t, Config{}, a, b, c)
	for i := 0; i < 30; i++ {
		key := fmt.Sprintf("sha256:%064d", i)
		res1, err := p.Execute(context.Background(), call(key), 0)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 3; j++ {
			res2, _ := p.Execute(context.Background(), call(key), 0)
			if res2.Runner != res1.Runner {
				t.Fatalf("hash %d moved from %s to %s", i, res1.Runner, res2.Runner)
			}
		}
	}
	for _, r := range []*runner{a, b, c} {
		if r.calls.Load() == 0 {
			t.Errorf("runner %s got no hashes: distribution is skewed", r.sock)
		}
	}
}

func TestRefusedRunnerIsSkippedAndMarkedDown(t *testing.T) {
	dir := sockDir(t)
	a, b := startRunner(t, dir, "a", ok), startRunner(t, dir, "b", ok)
	p := newPool(t, Config{FailDuration: time.Hour}, a, b)
	key := "sha256:" + fmt.Sprintf("%064d", 1)
	first, _ := p.Execute(context.Background(), call(key), 0)
	dead, alive := a, b
	if first.Runner == "unix/"+b.sock {
		dead, alive = b, a
	}
	dead.srv.Close()
	res, err := p.Execute(context.Background(), call(key), 0)
	if err != nil || res.Runner != "unix/"+alive.sock {
		t.Fatalf("got %+v, %v; want the other runner", res, err)
	}
	for _, st := range p.Statuses() {
		if st.Address == "unix/"+dead.sock && st.Healthy {
			t.Fatal("refusing runner still healthy")
		}
	}
}

func TestConcurrencyLimitedIsRetriedElsewhere(t *testing.T) {
	dir := sockDir(t)
	a, b := startRunner(t, dir, "a", busy), startRunner(t, dir, "b", busy)
	p := newPool(t, Config{}, a, b)
	res, err := p.Execute(context.Background(), call("k"), 0)
	if err != nil || res.Err == nil || res.Err.Code != execapi.CodeConcurrencyLimited {
		t.Fatalf("got %+v, %v; want concurrency_limited after trying both", res, err)
	}
	if a.calls.Load() != 1 || b.calls.Load() != 1 {
		t.Fatalf("calls a=%d b=%d, want one each", a.calls.Load(), b.calls.Load())
	}
	b.reply = ok
	a.reply = ok
}

func TestRequestThatReachedARunnerIsNotRetried(t *testing.T) {
	dir := sockDir(t)
	// Both runners read the request and then drop the connection: the call
	// may have run, so it must not be sent again.
	hangup := func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}
	a, b := startRunner(t, dir, "a", hangup), startRunner(t, dir, "b", hangup)
	p := newPool(t, Config{}, a, b)
	_, err := p.Execute(context.Background(), call("k"), 0)
	var bre *BadReplyError
	if !errors.As(err, &bre) {
		t.Fatalf("err = %v, want BadReplyError", err)
	}
	if total := a.calls.Load() + b.calls.Load(); total != 1 {
		t.Fatalf("request sent %d times, want once", total)
	}
}

func TestNoRunnerReachable(t *testing.T) {
	p, err := New(Config{Addresses: []string{"unix//nonexistent/a.sock", "unix//nonexistent/b.sock"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Execute(context.Background(), call("k"), 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestActiveHealthFollowsReadyz(t *testing.T) {
	dir := sockDir(t)
	a := startRunner(t, dir, "a", ok)
	p := newPool(t, Config{HealthInterval: 20 * time.Millisecond}, a)
	p.Execute(context.Background(), call("k"), 0) // starts probes
	a.ready.Store(false)
	testenv.WaitFor(t, 2*time.Second, func() error {
		if p.Statuses()[0].Healthy {
			return errors.New("still healthy")
		}
		return nil
	})
	a.ready.Store(true)
	testenv.WaitFor(t, 2*time.Second, func() error {
		if !p.Statuses()[0].Healthy {
			return errors.New("still down")
		}
		return nil
	})
}

func TestResponseTooLarge(t *testing.T) {
	dir := sockDir(t)
	big := func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(execapi.Response{Status: 200, Body: make([]byte, 2048)})
	}
	p := newPool(t, Config{}, startRunner(t, dir, "a", big))
	if _, err := p.Execute(context.Background(), call("k"), 1024); !errors.Is(err, ErrResponseTooLarge) {
		t.Fatalf("err = %v", err)
	}
}

// TestFramedReply: the pool asks for the framed reply, reads it without a
// base64 pass, and checks its body against the limit like a JSON one.
func TestFramedReply(t *testing.T) {
	dir := sockDir(t)
	var accept atomic.Value
	framed := func(w http.ResponseWriter, r *http.Request) {
		accept.Store(r.Header.Get("Accept"))
		body := []byte(strings.Repeat("x\n", 1000))
		meta, _ := execapi.AppendRawReply(nil, &execapi.Response{Status: 203, Headers: map[string]string{"content-type": "text/plain"}})
		w.Header().Set("Content-Type", execapi.ContentTypeRawReply)
		w.Write(append(meta, body...))
	}
	p := newPool(t, Config{}, startRunner(t, dir, "a", framed))
	res, err := p.Execute(context.Background(), call("k"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := accept.Load().(string); !execapi.AcceptsRawReply(a) {
		t.Errorf("Accept %q does not ask for the framed reply", a)
	}
	if r := res.Response; r == nil || r.Status != 203 || r.Headers["content-type"] != "text/plain" || len(r.Body) != 2000 {
		t.Fatalf("result %+v", res.Response)
	}
	if _, err := p.Execute(context.Background(), call("k"), 1024); !errors.Is(err, ErrResponseTooLarge) {
		t.Fatalf("2000-byte framed body with a 1024 limit: err = %v", err)
	}
}

func TestParseAddress(t *testing.T) {
	for _, c := range []struct{ in, network, addr string }{
		{"unix//run/a.sock", "unix", "/run/a.sock"},
		{"unix:///run/a.sock", "unix", "/run/a.sock"},
		{"tcp://127.0.0.1:7071", "tcp", "127.0.0.1:7071"},
		{"127.0.0.1:7071", "tcp", "127.0.0.1:7071"},
	} {
		n, a, err := ParseAddress(c.in)
		if err != nil || n != c.network || a != c.addr {
			t.Errorf("ParseAddress(%q) = %q %q %v", c.in, n, a, err)
		}
	}
	for _, bad := range []string{"unix:relative", "unix:relative.sock", "nohostport"} {
		if _, _, err := ParseAddress(bad); err == nil {
			t.Errorf("ParseAddress(%q) accepted", bad)
		}
	}
}

func TestEnvelopeCarriesTheCallersDeadline(t *testing.T) {
	dir := sockDir(t)
	got := make(chan execapi.Limits, 1)
	echo := func(w http.ResponseWriter, r *http.Request) {
		var env execapi.Request
		if err := json.NewDecoder(r.Body).Decode(&env); err != nil {
			t.Error(err)
		}
		got <- env.Limits
		ok(w, r)
	}
	p := newPool(t, Config{}, startRunner(t, dir, "a", echo))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req := call("k")
	req.Limits.TimeoutMS = 1500
	if _, err := p.Execute(ctx, req, 0); err != nil {
		t.Fatal(err)
	}
	l := <-got
	if l.TimeoutMS != 1500 {
		t.Fatalf("timeout_ms = %d, want 1500", l.TimeoutMS)
	}
	if want := (2*time.Second - ReplyMargin).Milliseconds(); l.DeadlineMS > want || l.DeadlineMS < want-500 {
		t.Fatalf("deadline_ms = %d, want a little under %d", l.DeadlineMS, want)
	}
}

func TestOrderSupportsManyRunners(t *testing.T) {
	var addrs []string
	for i := range 40 {
		addrs = append(addrs, fmt.Sprintf("unix//nonexistent/r%d.sock", i))
	}
	p, err := New(Config{Addresses: addrs})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	order := p.order("sha256:x", nil)
	seen := map[string]bool{}
	for _, r := range order {
		seen[r.Address] = true
	}
	if len(order) != 40 || len(seen) != 40 {
		t.Fatalf("order has %d runners (%d distinct), want all 40", len(order), len(seen))
	}
	// The first runner differs across keys: all 40 take part.
	first := map[string]bool{}
	for i := range 400 {
		first[p.order(fmt.Sprintf("sha256:%d", i), nil)[0].Address] = true
	}
	if len(first) < 30 {
		t.Fatalf("only %d of 40 runners ever come first", len(first))
	}
}

func TestResultCarriesGuestCPUFromTheReplyHeader(t *testing.T) {
	cases := []struct {
		name   string
		header []string // nil: no header
		want   time.Duration
	}{
		{"microseconds become a duration", []string{"40000"}, 40 * time.Millisecond},
		{"zero is zero", []string{"0"}, 0},
		{"absent header is zero", nil, 0},
		{"malformed header is zero", []string{"40ms"}, 0},
		{"negative header is zero", []string{"-5"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, reply := range []struct {
				name string
				f    func(w http.ResponseWriter, r *http.Request)
			}{{"success", ok}, {"error", func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(500)
				json.NewEncoder(w).Encode(execapi.ErrorBody{Error: execapi.Error{Code: execapi.CodeTrap}})
			}}} {
				rn := startRunner(t, sockDir(t), "r", func(w http.ResponseWriter, r *http.Request) {
					if tc.header != nil {
						w.Header()[execapi.HeaderCPU] = tc.header
					}
					reply.f(w, r)
				})
				res, err := newPool(t, Config{}, rn).Execute(context.Background(), call("k"), 0)
				if err != nil {
					t.Fatal(err)
				}
				if res.CPU != tc.want {
					t.Errorf("%s reply: CPU = %v, want %v", reply.name, res.CPU, tc.want)
				}
			}
		})
	}
}
