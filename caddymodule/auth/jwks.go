package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// JWKS is a lazily fetched, cached JSON Web Key Set. Nothing is fetched
// until the first token needs a key; the set is refreshed after
// RefreshInterval and, rate-limited, when a token names an unknown kid
// (key rotation). A failed refresh keeps serving the previous set.
type JWKS struct {
	URL             string
	RefreshInterval time.Duration // default 5m
	MinRefetch      time.Duration // default 10s: bound on unknown-kid refetches
	Client          *http.Client  // default: 10s timeout

	mu        sync.Mutex
	set       *jose.JSONWebKeySet
	fetchedAt time.Time
	triedAt   time.Time
	lastErr   error
}

// Key returns the public key for kid that fits alg.
func (s *JWKS) Key(kid, alg string) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	refresh := s.RefreshInterval
	if refresh == 0 {
		refresh = 5 * time.Minute
	}
	minGap := s.MinRefetch
	if minGap == 0 {
		minGap = 10 * time.Second
	}
	now := time.Now()
	if s.set == nil || now.Sub(s.fetchedAt) > refresh {
		if s.set == nil || now.Sub(s.triedAt) > minGap {
			s.fetchLocked(now)
		}
	}
	if k := s.pick(kid, alg); k != nil {
		return k, nil
	}
	if s.set != nil && now.Sub(s.triedAt) > minGap {
		s.fetchLocked(now)
		if k := s.pick(kid, alg); k != nil {
			return k, nil
		}
	}
	if s.set == nil && s.lastErr != nil {
		return nil, s.lastErr
	}
	return nil, fmt.Errorf("no key %q for %s in the JWKS", kid, alg)
}

func (s *JWKS) pick(kid, alg string) any {
	if s.set == nil {
		return nil
	}
	keys := s.set.Keys
	if kid != "" {
		keys = s.set.Key(kid)
	}
	for _, k := range keys {
		if !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		for _, m := range methodsFor(k.Key) {
			if m == alg {
				return k.Key
			}
		}
	}
	return nil
}

func (s *JWKS) fetchLocked(now time.Time) {
	s.triedAt = now
	hc := s.Client
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		s.lastErr = fmt.Errorf("jwks: %v", err)
		return
	}
	resp, err := hc.Do(req)
	if err != nil {
		s.lastErr = fmt.Errorf("jwks: fetching %s: %v", s.URL, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.lastErr = fmt.Errorf("jwks: fetching %s: status %d", s.URL, resp.StatusCode)
		return
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		s.lastErr = fmt.Errorf("jwks: decoding %s: %v", s.URL, err)
		return
	}
	if len(set.Keys) == 0 {
		s.lastErr = errors.New("jwks: empty key set")
		return
	}
	s.set, s.fetchedAt, s.lastErr = &set, now, nil
}
