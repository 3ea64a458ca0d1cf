package auth

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// JWKS is a lazily fetched, cached JSON Web Key Set. Nothing is fetched
// until the first token needs a key. Fetches run outside the lock, one at
// a time (callers join the one in flight), and at most once per
// MinRefetch — also before the first success, so tokens sent while the
// IdP is down or slow cannot queue up fetches. A set older than
// RefreshInterval keeps serving while it is refreshed in the background;
// a token naming an unknown kid (key rotation) waits for a refetch, at
// most once per MinRefetch. A failed refresh keeps the previous set.
type JWKS struct {
	URL             string
	RefreshInterval time.Duration // default 5m
	MinRefetch      time.Duration // default 10s: the least time between two fetches
	Client          *http.Client  // default: 10s timeout

	flight    singleflight.Group
	mu        sync.Mutex
	set       *jose.JSONWebKeySet
	fetchedAt time.Time
	triedAt   time.Time // start of the latest fetch
	inflight  bool
	lastErr   error
}

// Key returns the public key for kid that fits alg.
func (s *JWKS) Key(kid, alg string) (any, error) {
	refresh := cmp.Or(s.RefreshInterval, 5*time.Minute)
	minGap := cmp.Or(s.MinRefetch, 10*time.Second)
	now := time.Now()
	s.mu.Lock()
	set, fetchedAt, mayFetch := s.set, s.fetchedAt, s.inflight || s.triedAt.IsZero() || now.Sub(s.triedAt) > minGap
	s.mu.Unlock()
	switch {
	case set == nil && mayFetch:
		set = s.fetch()
	case set != nil && now.Sub(fetchedAt) > refresh && mayFetch:
		go s.fetch()
		mayFetch = false // the refetch below would only join it
	}
	if k := pick(set, kid, alg); k != nil {
		return k, nil
	}
	if set != nil && mayFetch {
		if k := pick(s.fetch(), kid, alg); k != nil {
			return k, nil
		}
	}
	s.mu.Lock()
	set, lastErr := s.set, s.lastErr
	s.mu.Unlock()
	if set == nil && lastErr != nil {
		return nil, lastErr
	}
	if set == nil {
		return nil, errors.New("jwks: no key set loaded yet")
	}
	return nil, fmt.Errorf("no key %q for %s in the JWKS", kid, alg)
}

// fetch downloads the set, or joins the download in flight, and returns
// the set now held (the previous one if the download failed).
func (s *JWKS) fetch() *jose.JSONWebKeySet {
	v, _, _ := s.flight.Do("jwks", func() (any, error) {
		s.mu.Lock()
		s.triedAt, s.inflight = time.Now(), true
		s.mu.Unlock()
		set, err := s.download()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.inflight = false
		if err != nil {
			s.lastErr = err
		} else {
			s.set, s.fetchedAt, s.lastErr = set, time.Now(), nil
		}
		return s.set, nil
	})
	set, _ := v.(*jose.JSONWebKeySet)
	return set
}

func pick(set *jose.JSONWebKeySet, kid, alg string) any {
	if set == nil {
		return nil
	}
	keys := set.Keys
	if kid != "" {
		keys = set.Key(kid)
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

// download fetches and decodes the set (at most 1 MiB, 10 s).
func (s *JWKS) download() (*jose.JSONWebKeySet, error) {
	hc := s.Client
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks: %v", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks: fetching %s: %v", s.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks: fetching %s: status %d", s.URL, resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("jwks: decoding %s: %v", s.URL, err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("jwks: empty key set")
	}
	return &set, nil
}
