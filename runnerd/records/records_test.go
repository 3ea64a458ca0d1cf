package records

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/testenv"
)

// executionsRegistry implements POST /v1/internal/executions of the
// registryapi contract. registryd is written in parallel; the real
// registryd is used in the end-to-end tests later.
type executionsRegistry struct {
	mu      sync.Mutex
	got     []registryapi.ExecutionRecord
	batches int
	block   chan struct{}
}

func (r *executionsRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.block != nil {
		<-r.block
	}
	var b registryapi.ExecutionBatch
	if req.URL.Path != "/v1/internal/executions" || json.NewDecoder(req.Body).Decode(&b) != nil {
		http.Error(w, `{"error":{"code":"bad_request","message":"x"}}`, 400)
		return
	}
	r.mu.Lock()
	r.got = append(r.got, b.Records...)
	r.batches++
	r.mu.Unlock()
	w.WriteHeader(204)
}

func (r *executionsRegistry) count() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got), r.batches
}

func TestRecordsArriveInBatches(t *testing.T) {
	reg := &executionsRegistry{}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	b := New(registryapi.New(srv.URL, "svc", nil), Config{BatchSize: 10, FlushEvery: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	for i := 0; i < 25; i++ {
		b.Add(registryapi.ExecutionRecord{RequestID: "r", TenantID: "t", Outcome: "ok"})
	}
	testenv.WaitFor(t, 5*time.Second, func() error {
		if n, _ := reg.count(); n != 25 {
			return fmt.Errorf("registry has %d of 25 records", n)
		}
		return nil
	})
	if _, batches := reg.count(); batches < 3 {
		t.Errorf("25 records in %d batches, want at least 3 of at most 10", batches)
	}
	cancel()
	<-done
	if b.Sent() != 25 || b.Dropped() != 0 {
		t.Fatalf("sent %d dropped %d", b.Sent(), b.Dropped())
	}
}

func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	reg := &executionsRegistry{block: make(chan struct{})}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	defer close(reg.block)
	b := New(registryapi.New(srv.URL, "svc", nil), Config{QueueSize: 5, BatchSize: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Run(ctx)
	start := time.Now()
	for i := 0; i < 100; i++ {
		b.Add(registryapi.ExecutionRecord{RequestID: "r"})
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Fatalf("Add blocked for %v with a stuck registry", el)
	}
	if b.Dropped() < 90 {
		t.Fatalf("dropped %d of 100 with a 5-record queue", b.Dropped())
	}
}
