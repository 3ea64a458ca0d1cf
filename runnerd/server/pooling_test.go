package server

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/runnerd/engine"
	"github.com/extedge/extedge/runnerd/runnertest/guests"
)

// TestPoolExhaustionIsConcurrencyLimited: a runner whose pool has fewer
// instance slots than its concurrency cap admits more calls than it can
// instantiate. The extra calls wait for a slot within the init deadline
// and then answer 429 concurrency_limited; none is a 500 or a crash, and
// the runner serves normally once the calls end.
func TestPoolExhaustionIsConcurrencyLimited(t *testing.T) {
	eng := logEngine(t, engine.Config{Pooling: engine.Pooling{Instances: 1}})
	mods := &staticModules{mods: map[string]*engine.Module{}}
	for _, g := range []string{"loop.wat", "ok.wat"} {
		m, err := eng.Compile(guests.MustWasm(t, g, nil))
		if err != nil {
			t.Fatal(err)
		}
		mods.mods[hashOf(g)] = m
	}
	s, err := New(Config{Token: testToken, Engine: eng, Modules: mods, MaxConcurrency: 8, MaxConcurrencyPerTenant: 8,
		DefaultLimits: engine.Limits{InitTimeout: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "pool.sock")
	l, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, s, []net.Listener{l}, ServeOptions{Grace: 5 * time.Second}) }()
	defer func() { cancel(); <-done }()
	f := &fixture{srv: s, client: unixClient(sock), base: "http://runner"}

	// One loop holds the only slot for 400 ms; four more calls arrive.
	loop := envelope("loop.wat", "tenant-a")
	loop["limits"] = map[string]any{"timeout_ms": 400}
	var wg sync.WaitGroup
	wg.Add(1)
	var loopStatus int
	go func() { defer wg.Done(); loopStatus, _ = f.post(t, execapi.PathExecute, testToken, loop) }()
	deadline := time.Now().Add(2 * time.Second)
	for s.limits.inFlight() == 0 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // past instantiation: the slot is held
	var mu sync.Mutex
	codes := map[string]int{}
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, body := f.post(t, execapi.PathExecute, testToken, envelope("ok.wat", "tenant-b"))
			var reply struct {
				Error struct{ Code string } `json:"error"`
			}
			_ = json.Unmarshal(body, &reply)
			mu.Lock()
			defer mu.Unlock()
			if st == 200 {
				codes["ok"]++
				return
			}
			if st != 429 {
				t.Errorf("call while the pool is full: %d %s", st, body)
			}
			codes[reply.Error.Code]++
		}()
	}
	wg.Wait()
	if loopStatus != 504 {
		t.Errorf("the loop got %d, want its 504", loopStatus)
	}
	if codes[execapi.CodeConcurrencyLimited] == 0 {
		t.Errorf("outcomes %v: want concurrency_limited while the only slot is held", codes)
	}
	if st, body := f.post(t, execapi.PathExecute, testToken, envelope("ok.wat", "tenant-b")); st != 200 {
		t.Fatalf("after the pool emptied: %d %s", st, body)
	}
}
