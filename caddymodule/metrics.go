package caddymodule

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are process-wide collectors registered into each config's
// registry (ctx.GetMetricsRegistry) at Provision, so counts survive
// reloads. Label values never carry tenant ids, keys or addresses of
// clients: outcome codes, routes, scopes and runner addresses only.
var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "extedge", Name: "requests_total",
		Help: "Gateway requests by route and outcome code.",
	}, []string{"route", "code"})
	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "extedge", Name: "request_duration_seconds",
		Help:    "Gateway request latency by route.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route"})
	rateDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "extedge", Name: "ratelimit_decisions_total",
		Help: "Rate-limit and quota decisions by scope, decision and backend.",
	}, []string{"scope", "decision", "backend"})
	breakerEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "extedge", Name: "breaker_events_total",
		Help: "Circuit breaker events: opened (an install's breaker opened or reopened after a failed probe) and rejected (a call answered extension_unhealthy).",
	}, []string{"event"})
	refusalsPaced = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "extedge", Name: "refusals_paced_total",
		Help: "Tenant-caused refusals (rate_limited, quota_exceeded, extension_unhealthy, runners_busy) by pacing: paced (held for refusal_delay) or overflow (answered at once, refusal_max_parked in use).",
	}, []string{"result"})
)

// registerMetrics adds the collectors to reg; registering the same
// collector twice (several extedge handlers in one config) is fine.
func registerMetrics(reg *prometheus.Registry) {
	if reg == nil {
		return
	}
	for _, c := range []prometheus.Collector{requestsTotal, requestDuration, rateDecisions, breakerEvents, refusalsPaced, stateCollector{}} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
		}
	}
}

func observeRequest(route, code string, start time.Time) {
	requestsTotal.WithLabelValues(route, code).Inc()
	requestDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

// stateCollector reports pooled state (runner health, cache sizes and
// counters) at scrape time.
type stateCollector struct{}

var (
	cacheHitsDesc = prometheus.NewDesc("extedge_cache_hits_total",
		"Cache hits by cache (registry, ui).", []string{"cache"}, nil)
	cacheMissesDesc = prometheus.NewDesc("extedge_cache_misses_total",
		"Cache misses by cache (registry, ui).", []string{"cache"}, nil)
	cacheBytesDesc = prometheus.NewDesc("extedge_cache_bytes",
		"Bytes held by the UI cache.", []string{"cache"}, nil)
	runnerHealthyDesc = prometheus.NewDesc("extedge_runner_healthy",
		"1 when the runner is in rotation.", []string{"runner"}, nil)
	runnerInFlightDesc = prometheus.NewDesc("extedge_runner_in_flight",
		"Calls in flight per runner.", []string{"runner"}, nil)
	tenantQueuedDesc = prometheus.NewDesc("extedge_tenant_queue_waiting",
		"Calls waiting in a tenant queue for one of their tenant's slots (tenant_concurrency).", nil, nil)
	tenantQueueDesc = prometheus.NewDesc("extedge_tenant_queue_total",
		"Calls over their tenant's tenant_concurrency by result: admitted (waited, then ran), full (refused at once), timed_out (refused after waiting).", []string{"result"}, nil)
)

func (stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheHitsDesc
	ch <- cacheMissesDesc
	ch <- cacheBytesDesc
	ch <- runnerHealthyDesc
	ch <- runnerInFlightDesc
	ch <- tenantQueuedDesc
	ch <- tenantQueueDesc
}

func (stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := collectStatus()
	seen := make(map[string]bool, len(st.Runners))
	for _, rs := range st.Runners {
		if seen[rs.Address] {
			continue // the same runner in an old and a new config
		}
		seen[rs.Address] = true
		v := 0.0
		if rs.Healthy {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(runnerHealthyDesc, prometheus.GaugeValue, v, rs.Address)
		ch <- prometheus.MustNewConstMetric(runnerInFlightDesc, prometheus.GaugeValue, float64(rs.InFlight), rs.Address)
	}
	var uiBytes, uiHits, uiMisses, regHits, regMisses int64
	for _, u := range st.UICaches {
		uiBytes += u.Bytes
		uiHits += u.Hits
		uiMisses += u.Misses
	}
	for _, r := range st.Registries {
		regHits += r.Hits
		regMisses += r.Misses
	}
	ch <- prometheus.MustNewConstMetric(cacheBytesDesc, prometheus.GaugeValue, float64(uiBytes), "ui")
	ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, float64(uiHits), "ui")
	ch <- prometheus.MustNewConstMetric(cacheMissesDesc, prometheus.CounterValue, float64(uiMisses), "ui")
	ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, float64(regHits), "registry")
	ch <- prometheus.MustNewConstMetric(cacheMissesDesc, prometheus.CounterValue, float64(regMisses), "registry")
	q := st.TenantQueue
	ch <- prometheus.MustNewConstMetric(tenantQueuedDesc, prometheus.GaugeValue, float64(q.Waiting))
	ch <- prometheus.MustNewConstMetric(tenantQueueDesc, prometheus.CounterValue, float64(q.Admitted), "admitted")
	ch <- prometheus.MustNewConstMetric(tenantQueueDesc, prometheus.CounterValue, float64(q.Full), "full")
	ch <- prometheus.MustNewConstMetric(tenantQueueDesc, prometheus.CounterValue, float64(q.TimedOut), "timed_out")
}
