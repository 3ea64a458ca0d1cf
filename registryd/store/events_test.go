package store

import (
	"testing"
	"time"
)

// TestBackoff: each failed attempt doubles the delay from BaseBackoff up
// to MaxBackoff, jitter spreads it by ±Jitter, and the defaults spread
// eight attempts over about an hour (SPEC §18).
func TestBackoff(t *testing.T) {
	p := DefaultDeliveryPolicy()
	for _, tc := range []struct {
		name    string
		attempt int
		r       float64
		want    time.Duration
	}{
		{"first failure waits the base delay", 1, 0.5, 30 * time.Second},
		{"each failure doubles the delay", 3, 0.5, 2 * time.Minute},
		{"jitter at its low end takes 20% off", 2, 0, 48 * time.Second},
		{"jitter near its high end adds almost 20%", 2, 0.999999, 72 * time.Second},
		{"the delay is capped at MaxBackoff", 20, 0.5, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := p.Backoff(tc.attempt, tc.r)
			if d := got - tc.want; d < -time.Millisecond || d > time.Millisecond {
				t.Fatalf("Backoff(%d, %v) = %s, want %s", tc.attempt, tc.r, got, tc.want)
			}
		})
	}
	t.Run("the default attempts span about an hour", func(t *testing.T) {
		var total time.Duration
		for n := 1; n < p.MaxAttempts; n++ {
			total += p.Backoff(n, 0.5)
		}
		if total < 50*time.Minute || total > 70*time.Minute {
			t.Fatalf("%d attempts span %s", p.MaxAttempts, total)
		}
	})
	t.Run("zero fields take the defaults", func(t *testing.T) {
		if got := (DeliveryPolicy{}).WithDefaults(); got != p {
			t.Fatalf("WithDefaults = %+v, want %+v", got, p)
		}
	})
}
