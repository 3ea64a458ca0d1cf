package registryapi

import (
	"testing"
	"time"
)

// TestReconnectBackoffIsJittered: components that lost registryd together
// must not retry in the same instant, so two first waits differ, every wait
// stays within ±50 % of its step, and the steps stop growing at 5 s.
func TestReconnectBackoffIsJittered(t *testing.T) {
	firsts := map[time.Duration]bool{}
	for i := 0; i < 50; i++ {
		d := ReconnectBackoff().NextBackOff()
		if d < 100*time.Millisecond || d > 300*time.Millisecond {
			t.Fatalf("first wait %v outside 200ms ±50%%", d)
		}
		firsts[d] = true
	}
	if len(firsts) < 10 {
		t.Fatalf("50 first waits took only %d distinct values: not jittered", len(firsts))
	}
	b := ReconnectBackoff()
	for i := 0; i < 20; i++ {
		if d := b.NextBackOff(); d > 7500*time.Millisecond {
			t.Fatalf("wait %d = %v beyond 5s +50%%", i, d)
		}
	}
}
