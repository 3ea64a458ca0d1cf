package server

import (
	"context"
	"testing"
	"time"
)

// TestFreedSlotGoesToTheTenantWithFewestRunning: tenant a holds both
// slots and has two calls queued before b's one; when a slot frees, b
// (no call running) gets it ahead of a's older waiters.
func TestFreedSlotGoesToTheTenantWithFewestRunning(t *testing.T) {
	l := newLimiter(2, 2, 4, time.Minute)
	ctx := context.Background()
	a1, _ := l.acquire(ctx, "a")
	a2, _ := l.acquire(ctx, "a")
	if a1 == nil || a2 == nil {
		t.Fatal("a could not take the two free slots")
	}
	got := make(chan string, 3)
	start := func(tenant string) {
		go func() {
			if rel, _ := l.acquire(ctx, tenant); rel != nil {
				got <- tenant
			}
		}()
	}
	for _, tenant := range []string{"a", "a", "b"} {
		before := l.waiting()
		start(tenant)
		for l.waiting() == before {
			time.Sleep(time.Millisecond)
		}
	}
	a1()
	if first := <-got; first != "b" {
		t.Fatalf("the freed slot went to %s, want b (no call running) before a's older waiters", first)
	}
}

// TestQueueIsBoundedPerTenant: past maxQueue a tenant's call is refused at
// once, while another tenant still queues.
func TestQueueIsBoundedPerTenant(t *testing.T) {
	l := newLimiter(1, 1, 1, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hold, _ := l.acquire(ctx, "a")
	defer hold()
	go l.acquire(ctx, "a")
	for l.waiting() == 0 {
		time.Sleep(time.Millisecond)
	}
	if rel, waited := l.acquire(ctx, "a"); rel != nil || waited != 0 {
		t.Fatalf("a's second queued call: release %v, waited %v; want refused at once", rel != nil, waited)
	}
	go l.acquire(ctx, "b")
	for l.waiting() != 2 {
		time.Sleep(time.Millisecond)
	}
}
