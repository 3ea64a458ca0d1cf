package caddymodule

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/extedge/extedge/caddymodule/auth"
	"github.com/extedge/extedge/caddymodule/breaker"
	"github.com/extedge/extedge/caddymodule/quota"
	"github.com/extedge/extedge/caddymodule/ratelimit"
	"github.com/extedge/extedge/caddymodule/runnerpool"
	"github.com/extedge/extedge/caddymodule/uicache"
	"github.com/extedge/extedge/internal/registryapi"
)

// Usage pools hold the gateway state that must outlive a config reload.
// During a reload the new config provisions (taking a reference) before
// the old one is cleaned up (dropping its reference), so state keyed by
// an unchanged configuration is carried over: rate-limit buckets keep
// counting, the registry cache and its change-feed goroutine keep running,
// runner health and keep-alive connections stay, and the UI cache index
// is not rebuilt. When the last reference goes, the value's Destruct runs.
var (
	registries = caddy.NewUsagePool() // key: registry identity → *registryapi.Cache
	runnerSets = caddy.NewUsagePool() // key: runners identity → *runnerpool.Pool
	limiters   = caddy.NewUsagePool() // key: redis URL + size → *limiterState
	quotaSets  = caddy.NewUsagePool() // key: "quotas" → *quotaState (in-memory quota counters)
	uiCaches   = caddy.NewUsagePool() // key: cache dir → *uicache.Cache
	jwksSets   = caddy.NewUsagePool() // key: JWKS URL → *auth.JWKS
	// breakers keeps open circuits open across a reload: a reload must
	// not hand a failing install a fresh run of calls.
	breakers = caddy.NewUsagePool() // key: "breakers" → *breaker.Set
)

// sharedState is one Handler's view of the pooled state.
type sharedState struct {
	registry *registryapi.Cache
	runners  *runnerpool.Pool
	limiter  *limiterState
	quotas   *quotaState
	ui       *uicache.Cache
	breakers *breaker.Set
	keys     [6]string
}

// limiterState is the request limiter and, when Redis is configured, the
// Redis client (also used by the debug stream and the install quotas:
// one client per Redis URL).
type limiterState struct {
	memory *ratelimit.Memory
	redis  *ratelimit.Redis // nil: in-memory only
	quotas *quota.Redis     // nil: in-memory quotas (quotaState)
	client *redis.Client
	mode   string // "memory" or "redis"
}

// fallbackLogInterval bounds the Warn lines of a failing Redis: it fails
// for every call, and the log must not become the outage.
const fallbackLogInterval = 10 * time.Second

// throttledWarn returns an OnFallback hook that logs msg with the error at
// Warn, at most once per fallbackLogInterval.
func throttledWarn(logger *zap.Logger, msg string) func(err error) {
	var mu sync.Mutex
	var last time.Time
	return func(err error) {
		mu.Lock()
		due := last.IsZero() || time.Since(last) > fallbackLogInterval
		if due {
			last = time.Now()
		}
		mu.Unlock()
		if due {
			logger.Warn(msg, zap.Error(err))
		}
	}
}

func (l *limiterState) limiter() ratelimit.Limiter {
	if l.redis != nil {
		return l.redis
	}
	return l.memory
}

// Destruct closes the Redis client.
func (l *limiterState) Destruct() error {
	if l.client != nil {
		return l.client.Close()
	}
	return nil
}

// tokenFile reads a token file on first use and caches it; a failure is
// retried at most once per second. The whole file is the token, trimmed.
type tokenFile struct {
	path string

	mu    sync.Mutex
	tok   string
	err   error
	tried time.Time
}

func (t *tokenFile) get() (string, error) {
	if t.path == "" {
		return "", nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != "" {
		return t.tok, nil
	}
	if t.err != nil && time.Since(t.tried) < time.Second {
		return "", t.err
	}
	t.tried = time.Now()
	tok, err := readToken(t.path)
	if err != nil {
		t.err = fmt.Errorf("token file: %v", err)
		return "", t.err
	}
	t.tok, t.err = tok, nil
	return tok, nil
}

func acquireState(h *Handler, files *loadedFiles) (*sharedState, error) {
	logger := h.logger
	st := &sharedState{}
	reg := h.Registry
	st.keys[0] = fmt.Sprintf("%s|%s|%s|%d|%d", reg.URL, reg.TokenFile, reg.CAFile, reg.CacheTTL, reg.MaxStale)
	v, _, err := registries.LoadOrNew(st.keys[0], func() (caddy.Destructor, error) {
		tf := &tokenFile{path: reg.TokenFile}
		hc := new(http.Client)
		if files.registryTLS != nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = files.registryTLS
			hc.Transport = tr
		}
		return registryapi.NewCache(registryapi.CacheConfig{
			Client: func() (*registryapi.Client, error) {
				tok, err := tf.get()
				if err != nil {
					return nil, err
				}
				return registryapi.New(reg.URL, tok, hc), nil
			},
			TTL:      time.Duration(reg.CacheTTL),
			MaxStale: time.Duration(reg.MaxStale),
			Logger:   logger.Named("registry"),
		}), nil
	})
	if err != nil {
		return nil, err
	}
	st.registry = v.(*registryapi.Cache)

	rc := h.Runners
	st.keys[1] = fmt.Sprintf("%s|%s|%s|%d|%d", strings.Join(rc.Addresses, ","), rc.TokenFile, rc.CAFile, rc.HealthInterval, rc.FailDuration)
	v, _, err = runnerSets.LoadOrNew(st.keys[1], func() (caddy.Destructor, error) {
		tf := &tokenFile{path: rc.TokenFile}
		return runnerpool.New(runnerpool.Config{
			Addresses:      rc.Addresses,
			Token:          tf.get,
			TLS:            files.runnersTLS,
			HealthInterval: time.Duration(rc.HealthInterval),
			FailDuration:   time.Duration(rc.FailDuration),
			Logger:         logger.Named("runners"),
		})
	})
	if err != nil {
		st.release()
		return nil, err
	}
	st.runners = v.(*runnerpool.Pool)
	// The tenant cap and queue are not part of the key: a reload that
	// changes only them keeps the pool's connections, in-flight counts and
	// queued calls; new and reused pools alike get them here.
	st.runners.SetTenantLimits(h.TenantConcurrency, h.TenantQueue, time.Duration(h.TenantQueueWait))
	st.runners.SetTenantCostBytes(h.TenantCostBytes)

	st.keys[3] = "quotas"
	v, _, _ = quotaSets.LoadOrNew(st.keys[3], func() (caddy.Destructor, error) { return newQuotaState(nil), nil })
	st.quotas = v.(*quotaState)

	var redisURL string
	maxKeys := 0
	if h.RateLimit != nil {
		redisURL, maxKeys = h.RateLimit.Redis, h.RateLimit.MaxKeys
	}
	st.keys[2] = fmt.Sprintf("%s|%d", redisURL, maxKeys)
	v, _, err = limiters.LoadOrNew(st.keys[2], func() (caddy.Destructor, error) {
		ls := &limiterState{memory: ratelimit.NewMemory(maxKeys, nil), mode: "memory"}
		if redisURL != "" {
			opts, err := redis.ParseURL(redisURL)
			if err != nil {
				return nil, fmt.Errorf("rate_limit redis: %v", err)
			}
			// Blocking reads (the debug stream) must end with the client's
			// request, so contexts bound every command.
			opts.ContextTimeoutEnabled = true
			ls.client = redis.NewClient(opts) // connects lazily
			ls.redis = ratelimit.NewRedis(ls.client, ls.memory)
			ls.redis.OnFallback = throttledWarn(logger.Named("ratelimit"), "redis rate limiter failed, using in-memory limits")
			// The quota pool outlives every limiter (each config holds
			// both), so its counters are a safe fallback here.
			ls.quotas = quota.NewRedis(ls.client, st.quotas.memory)
			ls.quotas.OnFallback = throttledWarn(logger.Named("quota"), "redis quota counters failed, using in-memory quotas")
			ls.mode = "redis"
		}
		return ls, nil
	})
	if err != nil {
		st.release()
		return nil, err
	}
	st.limiter = v.(*limiterState)

	uc := h.UICache
	st.keys[4] = uc.Dir
	v, _, err = uiCaches.LoadOrNew(st.keys[4], func() (caddy.Destructor, error) {
		return uicache.New(uicache.Config{Dir: uc.Dir, MaxBytes: uc.MaxSize, Logger: logger.Named("uicache")}), nil
	})
	if err != nil {
		st.release()
		return nil, err
	}
	st.ui = v.(*uicache.Cache)
	// A reload may change the size bound of an existing cache.
	st.ui.SetMaxBytes(uc.MaxSize)

	// The breaker policy is passed per call (h.breakerPolicy), so the set
	// is one per process, like quotas.
	st.keys[5] = "breakers"
	v, _, _ = breakers.LoadOrNew(st.keys[5], func() (caddy.Destructor, error) { return breaker.New(maxBreakerKeys), nil })
	st.breakers = v.(*breaker.Set)
	return st, nil
}

// release drops this config's references.
func (st *sharedState) release() {
	pools := [...]*caddy.UsagePool{registries, runnerSets, limiters, quotaSets, uiCaches, breakers}
	for i, p := range pools {
		if st.keys[i] != "" {
			_, _ = p.Delete(st.keys[i])
		}
	}
}

type jwksValue struct{ *auth.JWKS }

func (jwksValue) Destruct() error { return nil }

func acquireJWKS(url string) *auth.JWKS {
	v, _, _ := jwksSets.LoadOrNew(url, func() (caddy.Destructor, error) {
		return jwksValue{&auth.JWKS{URL: url}}, nil
	})
	return v.(jwksValue).JWKS
}

func releaseJWKS(url string) { _, _ = jwksSets.Delete(url) }
