package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	jwt "github.com/golang-jwt/jwt/v5"
)

// pacedGateway rate-limits testTenant to one call a minute and paces its
// refusals by delay with parked places.
func pacedGateway(t *testing.T, delay time.Duration, parked int) *gateway {
	return newGateway(t, func(h *Handler, g *gateway) {
		h.RateLimit = &RateLimitConfig{PerTenant: &RateSpec{Requests: 1, Per: caddyMinute, Burst: 1}}
		h.RefusalDelay = caddy.Duration(delay)
		h.RefusalMaxParked = parked
	})
}

func apiRequest(t *testing.T, path string) *http.Request {
	r := httptest.NewRequest("GET", path, nil)
	r.Header.Set("Authorization", "Bearer "+token(t, jwt.MapClaims{"tenant": testTenant}))
	return r
}

func TestRefusalsArePacedByRefusalDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	g := pacedGateway(t, delay, 4)
	path := "/api/ext/" + testExt + "/agreements"
	expect(t, g.do(apiRequest(t, path)), http.StatusOK, "")

	start := time.Now()
	w := g.do(apiRequest(t, path))
	took := time.Since(start)
	expect(t, w, http.StatusTooManyRequests, codeRateLimited)
	if w.Header().Get("Retry-After") == "" {
		t.Fatal("a paced refusal lost its Retry-After")
	}
	if took < delay {
		t.Fatalf("rate_limited answered after %v, want it held for refusal_delay (%v)", took, delay)
	}

	// Other errors are not the tenant's load and are answered at once.
	start = time.Now()
	expect(t, g.do(apiRequest(t, "/api/ext/Not-A-Name/x")), http.StatusNotFound, codeExtensionNotFound)
	if took := time.Since(start); took >= delay {
		t.Fatalf("extension_not_found took %v, want no pacing", took)
	}

	// A client that goes away ends the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start = time.Now()
	expect(t, g.do(apiRequest(t, path).WithContext(ctx)), http.StatusTooManyRequests, codeRateLimited)
	if took := time.Since(start); took >= delay {
		t.Fatalf("a refusal for a client gone after 20ms was held %v", took)
	}
}

func TestRefusalsArePacedOnlyWhileAPlaceIsFree(t *testing.T) {
	const delay = 2 * time.Second
	g := pacedGateway(t, delay, 1)
	path := "/api/ext/" + testExt + "/agreements"
	expect(t, g.do(apiRequest(t, path)), http.StatusOK, "")

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // takes the one place
		defer wg.Done()
		g.do(apiRequest(t, path))
	}()
	waitFor(t, "the first refusal to park", func() bool { return len(g.h.parked) == 1 })
	start := time.Now()
	expect(t, g.do(apiRequest(t, path)), http.StatusTooManyRequests, codeRateLimited)
	if took := time.Since(start); took >= delay {
		t.Fatalf("with refusal_max_parked 1 in use the second refusal was held %v, want it at once", took)
	}
	wg.Wait()
}

func TestRefusalDelayOffAnswersAtOnce(t *testing.T) {
	g := newGateway(t, func(h *Handler, g *gateway) {
		h.RateLimit = &RateLimitConfig{PerTenant: &RateSpec{Requests: 1, Per: caddyMinute, Burst: 1}}
	}) // the harness turns pacing off
	if g.h.parked != nil {
		t.Fatal("refusal_delay off still made parking places")
	}
}
