package e2e

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentileIsNearestRank(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var out []time.Duration
		for _, v := range n {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"no samples give zero", nil, 99, 0},
		{"one sample is every percentile", ms(7), 50, 7 * time.Millisecond},
		{"p50 of 1..100 is 50", ms(hundred...), 50, 50 * time.Millisecond},
		{"p99 of 1..100 is 99", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 is the maximum", ms(hundred...), 100, 100 * time.Millisecond},
		{"p99 of four samples is the largest", ms(1, 2, 3, 4), 99, 4 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("Percentile(p%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

// TestRunCountsOnlyTheMeasuredWindow checks the load generator against a
// local server: warm-up requests are not counted, rejected responses count
// as errors with their status, and rps counts successes only.
func TestRunCountsOnlyTheMeasuredWindow(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := served.Add(1)
		if n%10 == 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("hello"))
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Load{
		Concurrency: 4,
		Warmup:      100 * time.Millisecond,
		Duration:    300 * time.Millisecond,
		Request:     func(int) (*http.Request, error) { return http.NewRequest(http.MethodGet, srv.URL, nil) },
		Check: func(status int, body []byte) error {
			if status != 200 || string(body) != "hello" {
				return errors.New("not hello")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Requests >= served.Load() {
		t.Errorf("counted %d of %d served requests; want some, and fewer (warm-up excluded)", res.Requests, served.Load())
	}
	if res.Statuses[200]+res.Statuses[503] != res.Requests || res.Errors != res.Statuses[503] {
		t.Errorf("statuses %v, errors %d, requests %d: want errors = 503s and statuses summing to requests", res.Statuses, res.Errors, res.Requests)
	}
	if res.Errors == 0 || !strings.Contains(res.FirstError, "503") {
		t.Errorf("errors %d, first error %q: want the 503s reported", res.Errors, res.FirstError)
	}
	if res.Elapsed < 300*time.Millisecond {
		t.Errorf("window %v shorter than Duration", res.Elapsed)
	}
	want := float64(res.Requests-res.Errors) / res.Elapsed.Seconds()
	if res.RPS != want {
		t.Errorf("rps %v, want successes per second %v", res.RPS, want)
	}
	if !(res.P50 > 0 && res.P50 <= res.P99 && res.P99 <= res.Max) {
		t.Errorf("latencies p50 %v p99 %v max %v not ordered", res.P50, res.P99, res.Max)
	}
	if tab := Table([]Row{{Name: "stub", Result: res, Note: "x"}}); !strings.Contains(tab, "stub") || !strings.Contains(tab, "p99") {
		t.Errorf("table misses the row or header:\n%s", tab)
	}
}

func TestRunStopsWhenRequestFails(t *testing.T) {
	_, err := Run(context.Background(), Load{
		Concurrency: 2,
		Duration:    10 * time.Second,
		Request:     func(int) (*http.Request, error) { return nil, errors.New("boom") },
	})
	if !errors.Is(err, errRequest) {
		t.Fatalf("err = %v, want errRequest", err)
	}
}
