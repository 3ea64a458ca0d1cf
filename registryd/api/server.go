// Package api is registryd's HTTP API (SPEC §7.3, §7.4): the admin API for
// extctl and operators, the service API for gateways and runners, health
// and metrics. Handlers are thin: they authenticate, decode, call the store
// or the publish pipeline, and map typed error codes to statuses through
// one table (errors.go).
package api

import (
	"context"
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
	// ExecutionLogRetention is how long execution records are kept (the
	// per-minute usage rows stay). Zero keeps them forever.
	ExecutionLogRetention time.Duration
}

// Server serves the registry API.
type Server struct {
	cfg     Config
	log     *zap.Logger
	mux     *http.ServeMux
	metrics *metrics
	now     func() time.Time
	closing chan struct{}
	once    sync.Once
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
	s := &Server{cfg: cfg, log: cfg.Log, mux: http.NewServeMux(), now: cfg.Now, closing: make(chan struct{})}
	s.metrics = newMetrics(cfg.Metrics, cfg.DB)
	s.routes()
	return s
}

// Role sets used by the routes.
var (
	anyRole       = []string{store.RolePlatformAdmin, store.RoleTenantAdmin, store.RoleService}
	platformAdmin = []string{store.RolePlatformAdmin}
	tenantAdmins  = []string{store.RolePlatformAdmin, store.RoleTenantAdmin}
	serviceRoles  = []string{store.RoleService, store.RolePlatformAdmin}
)

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	m.Handle("GET /metrics", s.metrics.handler())

	m.Handle("POST /v1/bundles", s.auth(platformAdmin, s.publishBundle))
	m.Handle("GET /v1/extensions", s.auth(anyRole, s.listExtensions))
	m.Handle("GET /v1/extensions/{name}", s.auth(anyRole, s.getExtension))
	m.Handle("GET /v1/extensions/{name}/versions", s.auth(anyRole, s.listVersions))
	m.Handle("GET /v1/extensions/{name}/versions/{version}", s.auth(anyRole, s.getVersion))
	m.Handle("POST /v1/extensions/{name}/deprecate", s.auth(platformAdmin, s.deprecate))
	m.Handle("POST /v1/extensions/{name}/versions/{version}/revoke", s.auth(platformAdmin, s.revoke))

	m.Handle("GET /v1/tenants/{tenant}/installs", s.auth(tenantAdmins, s.listInstalls))
	m.Handle("GET /v1/tenants/{tenant}/installs/{name}", s.auth(tenantAdmins, s.getInstall))
	m.Handle("PUT /v1/tenants/{tenant}/installs/{name}", s.auth(tenantAdmins, s.putInstall))
	m.Handle("DELETE /v1/tenants/{tenant}/installs/{name}", s.auth(tenantAdmins, s.deleteInstall))
	m.Handle("POST /v1/tenants/{tenant}/installs/{name}/enable", s.auth(tenantAdmins, s.enableInstall))
	m.Handle("POST /v1/tenants/{tenant}/installs/{name}/disable", s.auth(tenantAdmins, s.disableInstall))
	m.Handle("PUT /v1/tenants/{tenant}/installs/{name}/secrets", s.auth(tenantAdmins, s.putSecrets))

	m.Handle("GET /v1/resolve/{tenant}/{extension}", s.auth(serviceRoles, s.resolve))
	m.Handle("GET /v1/bundles/{hash}/status", s.auth(serviceRoles, s.bundleStatus))
	m.Handle("GET /v1/changes", s.auth(serviceRoles, s.changes))
	m.Handle("POST /v1/internal/storage", s.auth(serviceRoles, s.storage))
	m.Handle("POST /v1/internal/executions", s.auth(serviceRoles, s.executions))
}

// Handler returns the API with metrics, logging and panic recovery.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serve)
}

// RunJanitor removes expired KV records and execution records past their
// retention every interval until ctx ends. It is a platform job: it runs
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
