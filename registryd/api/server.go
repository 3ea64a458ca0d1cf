// Package api is registryd's HTTP API (SPEC §7.3, §7.4): the admin API for
// extctl and operators, the service API for gateways and runners, health
// and metrics. Handlers are thin: they authenticate, decode, call the store
// or the publish pipeline, and map typed error codes to statuses through
// one table (errors.go).
package api

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/registryd/publish"
	"github.com/extedge/extedge/registryd/store"
)

// Config wires a Server.
type Config struct {
	DB *store.DB
	// Publish runs POST /v1/bundles.
	Publish *publish.Pipeline
	// Feed wakes /v1/changes streams; Run it for the server's lifetime.
	Feed *store.Feed
	// Keys seals secrets at rest and secret envelopes. Nil disables
	// secrets: PUT …/secrets answers 503 secrets_unavailable.
	Keys *secretbox.Keys
	// KVQuota bounds each install's KV data. Default: 10 000 records, 64 MiB.
	KVQuota store.KVQuota
	// EnvelopeTTL is the lifetime of a secret envelope. Default: 10m.
	EnvelopeTTL time.Duration
	// Log is the request and error log. Default: no logging.
	Log *zap.Logger
	// Metrics is where the server registers its collectors. Default: a
	// new registry, served on /metrics.
	Metrics *prometheus.Registry
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Delivery is how event deliveries are retried (§18). Zero fields
	// take store.DefaultDeliveryPolicy's.
	Delivery store.DeliveryPolicy
	// Rand draws the backoff jitter, uniform in [0, 1). Default:
	// math/rand/v2.Float64.
	Rand func() float64
	// ExecutionLogRetention is how long execution records are kept (the
	// per-minute usage rows stay). Zero keeps them forever.
	ExecutionLogRetention time.Duration
	// EventRetention is how long events whose deliveries are all finished
	// (succeeded or dead) are kept, with those deliveries; it is also how
	// long an event id stays idempotent. Zero keeps them forever.
	EventRetention time.Duration
}

// Server serves the registry API.
type Server struct {
	cfg     Config
	log     *zap.Logger
	mux     *http.ServeMux
	metrics *metrics
	now     func() time.Time
	// timeouts maps a route pattern to its request deadline (routes.go).
	timeouts map[string]time.Duration
	// openAPI is the JSON served at GET /openapi.json, built from the
	// route table once.
	openAPI        []byte
	metricsHandler http.Handler
	closing        chan struct{}
	once           sync.Once
}

// CloseStreams ends every /v1/changes stream (clients reconnect to another
// replica); call it before http.Server.Shutdown, which does not wait for
// streams otherwise.
func (s *Server) CloseStreams() {
	s.once.Do(func() { close(s.closing) })
}

// New returns a Server; mount Handler on an http.Server.
func New(cfg Config) *Server {
	if cfg.EnvelopeTTL <= 0 {
		cfg.EnvelopeTTL = 10 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Delivery = cfg.Delivery.WithDefaults()
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	s := &Server{cfg: cfg, log: cfg.Log, mux: http.NewServeMux(), now: cfg.Now, closing: make(chan struct{})}
	s.metrics = newMetrics(cfg.Metrics, cfg.DB, cfg.Now)
	s.metricsHandler = s.metrics.handler()
	s.openAPI = openAPIDocument(routes)
	s.register()
	return s
}

// Handler returns the API with metrics, logging and panic recovery.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serve)
}

// RunJanitor removes expired KV records, and execution records and
// finished events past their retention, every interval until ctx ends. It is a platform job: it runs
// with the '*' tenant scope.
func (s *Server) RunJanitor(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := s.cfg.DB.PurgeExpiredKV(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.Warn("kv janitor failed", zap.Error(err))
			} else if n > 0 {
				s.log.Debug("kv janitor removed expired records", zap.Int64("records", n))
			}
			if s.cfg.EventRetention > 0 {
				n, err := s.cfg.DB.PurgeEvents(ctx, s.now().Add(-s.cfg.EventRetention))
				if err != nil && ctx.Err() == nil {
					s.log.Warn("event retention failed", zap.Error(err))
				} else if n > 0 {
					s.log.Debug("event retention removed events", zap.Int64("events", n))
				}
			}
			if s.cfg.ExecutionLogRetention > 0 {
				n, err := s.cfg.DB.PurgeExecutionLog(ctx, s.now().Add(-s.cfg.ExecutionLogRetention))
				if err != nil && ctx.Err() == nil {
					s.log.Warn("execution log retention failed", zap.Error(err))
				} else if n > 0 {
					s.log.Debug("execution log retention removed records", zap.Int64("records", n))
				}
			}
		}
	}
}
