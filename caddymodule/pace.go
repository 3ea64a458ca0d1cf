package caddymodule

import (
	"context"
	"time"
)

// pacedCodes are the refusals a tenant earns by its own load: its rate
// limits, its install's quotas and breaker, its share of the runners. They
// are answered after RefusalDelay rather than at once.
var pacedCodes = map[string]bool{
	codeRateLimited:        true,
	codeQuotaExceeded:      true,
	codeExtensionUnhealthy: true,
	codeRunnersBusy:        true,
}

// pace holds a refusal of pacedCodes for RefusalDelay (never past its
// Retry-After, never past the client going away) when one of the
// RefusalMaxParked places is free; otherwise, or for other codes, it
// returns at once. A client that floods in a closed loop and ignores
// Retry-After would otherwise turn each refusal, which costs the gateway
// microseconds, into its next request: thousands a second, whose CPU the
// quiet tenants on the same cores then lack. Paced, each of its
// connections costs one refusal per delay. The places bound what pacing
// holds (goroutines and connections); past them refusals are immediate, as
// without pacing.
func (h *Handler) pace(ctx context.Context, ge *gatewayError) {
	if h.parked == nil || !pacedCodes[ge.code] {
		return
	}
	delay := time.Duration(h.RefusalDelay)
	if ge.retryAfter > 0 {
		delay = min(delay, ge.retryAfter)
	}
	select {
	case h.parked <- struct{}{}:
	default:
		refusalsPaced.WithLabelValues("overflow").Inc()
		return
	}
	defer func() { <-h.parked }()
	refusalsPaced.WithLabelValues("paced").Inc()
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
