// Package e2e holds extedge's end-to-end benchmarks (SPEC §13): a small
// closed-loop HTTP load generator (this file) and, in the tests, the runs
// that drive the whole stack (client → Caddy with the extedge module →
// runnerd over a Unix socket → wasm → client) next to baselines measured in
// the same run: Caddy's plain reverse_proxy to a Go stub, one runner
// against two, a quiet tenant against one next to a flooding neighbour.
//
// The benchmarks only run with EXTEDGE_BENCH=1; see README.md.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Load is one closed-loop load run: Concurrency workers each send a
// request, wait for the whole response, and send the next, for Warmup
// (not measured) and then Duration (measured).
type Load struct {
	// Concurrency is the number of workers (default 1).
	Concurrency int
	// Warmup runs before the measured window; its requests are not counted.
	Warmup time.Duration
	// Duration is the measured window (default 1s).
	Duration time.Duration
	// Client sends the requests (default NewClient(Concurrency)).
	Client *http.Client
	// Request builds worker w's next request. It is called once per
	// request, from the worker's goroutine.
	Request func(w int) (*http.Request, error)
	// Check judges a response from its status and body; nil accepts
	// any 2xx. A non-nil error counts the request as failed.
	Check func(status int, body []byte) error
}

// Result is what a Load measured in its window. Latencies cover
// successful and failed requests alike (a fast error is still a reply).
type Result struct {
	Requests int64         // completed in the window, failures included
	Errors   int64         // transport errors and rejected responses
	Elapsed  time.Duration // the measured window as it really lasted
	RPS      float64       // successful requests per second
	P50      time.Duration
	P90      time.Duration
	P99      time.Duration
	Max      time.Duration
	// Statuses counts responses by HTTP status (0 = transport error).
	Statuses map[int]int64
	// FirstError describes the first failure, for the report.
	FirstError string
}

// NewClient returns a client for load runs: keep-alive connections, at
// least conns idle ones per host so no worker ever redials, no proxy from
// the environment, no compression negotiation, no redirects.
func NewClient(conns int) *http.Client {
	conns = max(conns, 1)
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns * 2,
			MaxIdleConnsPerHost: conns * 2,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
}

// errRequest marks a Request function failure: a bug in the caller, so
// Run stops instead of counting it.
var errRequest = errors.New("load: building a request")

// Run performs l and returns its measurements. It stops early, with an
// error, when ctx ends or Request fails.
func Run(ctx context.Context, l Load) (Result, error) {
	if l.Request == nil {
		return Result{}, errors.New("load: Request is nil")
	}
	if l.Concurrency <= 0 {
		l.Concurrency = 1
	}
	if l.Duration <= 0 {
		l.Duration = time.Second
	}
	if l.Client == nil {
		l.Client = NewClient(l.Concurrency)
	}
	if l.Check == nil {
		l.Check = func(status int, _ []byte) error {
			if status/100 != 2 {
				return fmt.Errorf("status %d", status)
			}
			return nil
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	start := time.Now()
	measureFrom := start.Add(l.Warmup)
	end := measureFrom.Add(l.Duration)
	type sample struct {
		latencies []time.Duration
		statuses  map[int]int64
		errors    int64
		firstErr  string
		fatal     error
	}
	samples := make([]sample, l.Concurrency)
	var wg sync.WaitGroup
	for w := range l.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &samples[w]
			s.statuses = map[int]int64{}
			s.latencies = make([]time.Duration, 0, 4096)
			buf := make([]byte, 0, 4096)
			for ctx.Err() == nil {
				req, err := l.Request(w)
				if err != nil {
					s.fatal = fmt.Errorf("%w: %v", errRequest, err)
					cancel()
					return
				}
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				status, body, err := do(l.Client, req.WithContext(ctx), buf[:0])
				t1 := time.Now()
				buf = body
				if t0.Before(measureFrom) {
					continue // warm-up
				}
				if ctx.Err() != nil {
					return
				}
				if err == nil {
					err = l.Check(status, body)
				}
				s.latencies = append(s.latencies, t1.Sub(t0))
				s.statuses[status]++
				if err != nil {
					s.errors++
					if s.firstErr == "" {
						s.firstErr = fmt.Sprintf("status %d: %v (body %q)", status, err, truncate(body, 200))
					}
				}
			}
		}()
	}
	wg.Wait()
	// Workers take no request after end; the window closes when the
	// last one in flight has returned.
	elapsed := time.Since(measureFrom)

	res := Result{Statuses: map[int]int64{}, Elapsed: elapsed}
	var all []time.Duration
	for _, s := range samples {
		if s.fatal != nil {
			return Result{}, s.fatal
		}
		all = append(all, s.latencies...)
		for k, v := range s.statuses {
			res.Statuses[k] += v
		}
		res.Errors += s.errors
		if res.FirstError == "" {
			res.FirstError = s.firstErr
		}
	}
	if err := ctx.Err(); err != nil && len(all) == 0 {
		return Result{}, err
	}
	res.Requests = int64(len(all))
	res.RPS = float64(res.Requests-res.Errors) / elapsed.Seconds()
	slices.Sort(all)
	res.P50, res.P90, res.P99 = Percentile(all, 50), Percentile(all, 90), Percentile(all, 99)
	if len(all) > 0 {
		res.Max = all[len(all)-1]
	}
	return res, nil
}

// do sends req and reads the whole body into buf.
func do(c *http.Client, req *http.Request, buf []byte) (int, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, buf, err
	}
	defer resp.Body.Close()
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := resp.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return resp.StatusCode, buf, nil
		}
		if err != nil {
			return resp.StatusCode, buf, err
		}
	}
}

// Percentile returns the p-th percentile (nearest rank) of sorted
// latencies, 0 for none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// Row is one line of a summary table.
type Row struct {
	Name string
	Result
	// Note is free text after the numbers (ratios, error summary).
	Note string
}

// Table renders rows as an aligned text table: name, rps, p50, p90, p99,
// max, errors, note.
func Table(rows []Row) string {
	w := len("scenario")
	for _, r := range rows {
		w = max(w, len(r.Name))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s %9s %9s %9s %9s %9s %7s  %s\n", w, "scenario", "rps", "p50", "p90", "p99", "max", "errors", "note")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-*s %9.0f %9s %9s %9s %9s %7d  %s\n", w, r.Name, r.RPS,
			ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), r.Errors, r.Note)
	}
	return b.String()
}

// ms formats d in milliseconds with three decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/1e6) }
