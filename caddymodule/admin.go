package caddymodule

import (
	"encoding/json"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/extedge/extedge/caddymodule/runnerpool"
	"github.com/extedge/extedge/caddymodule/uicache"
	"github.com/extedge/extedge/internal/registryapi"
)

func init() {
	caddy.RegisterModule(AdminStatus{})
}

// AdminStatus is the admin API module `admin.api.extedge`. It serves
// `GET /extedge/status` on Caddy's admin endpoint: every runner with its
// health and in-flight calls, registry and UI cache sizes and hit counts,
// and the rate limiter's mode. Caddy loads admin.api modules by itself.
type AdminStatus struct{}

// CaddyModule returns the Caddy module information.
func (AdminStatus) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.extedge",
		New: func() caddy.Module { return new(AdminStatus) },
	}
}

// Routes implements caddy.AdminRouter.
func (AdminStatus) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{
		Pattern: "/extedge/status",
		Handler: caddy.AdminHandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			if r.Method != http.MethodGet {
				return caddy.APIError{HTTPStatus: errMethod.status, Err: errMethod}
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			return json.NewEncoder(w).Encode(collectStatus())
		}),
	}}
}

var errMethod = newError(codeMethodNotAllowed, "")

// Status is the body of GET /extedge/status.
type Status struct {
	Runners     []runnerpool.Status      `json:"runners"`
	Registries  []registryapi.CacheStats `json:"registry_caches"`
	UICaches    []uicache.Stats          `json:"ui_caches"`
	LimiterMode []string                 `json:"limiter_modes"`
	// RedisFallbacks counts rate-limit decisions taken in memory because
	// Redis failed.
	RedisFallbacks int64 `json:"redis_fallbacks"`
	// TenantQueue sums the tenant queues of every runner pool.
	TenantQueue runnerpool.QueueStats `json:"tenant_queue"`
}

// collectStatus reads every pooled state object, across all loaded configs.
func collectStatus() Status {
	st := Status{Runners: []runnerpool.Status{}, Registries: []registryapi.CacheStats{},
		UICaches: []uicache.Stats{}, LimiterMode: []string{}}
	runnerSets.Range(func(_, v any) bool {
		p := v.(*runnerpool.Pool)
		st.Runners = append(st.Runners, p.Statuses()...)
		q := p.TenantQueueStats()
		st.TenantQueue.Waiting += q.Waiting
		st.TenantQueue.Admitted += q.Admitted
		st.TenantQueue.Full += q.Full
		st.TenantQueue.TimedOut += q.TimedOut
		return true
	})
	registries.Range(func(_, v any) bool {
		st.Registries = append(st.Registries, v.(*registryapi.Cache).Stats())
		return true
	})
	uiCaches.Range(func(_, v any) bool {
		st.UICaches = append(st.UICaches, v.(*uicache.Cache).Stats())
		return true
	})
	limiters.Range(func(_, v any) bool {
		ls := v.(*limiterState)
		st.LimiterMode = append(st.LimiterMode, ls.mode)
		if ls.redis != nil {
			st.RedisFallbacks += ls.redis.Fallbacks()
		}
		return true
	})
	return st
}

// Interface guards
var (
	_ caddy.AdminRouter = (*AdminStatus)(nil)
)
