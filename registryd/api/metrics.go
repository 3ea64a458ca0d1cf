package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/extedge/extedge/registryd/store"
)

// metrics are registryd's Prometheus collectors. Labels carry route
// patterns and codes only, never tenant ids or tokens.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	publishes     *prometheus.CounterVec
	executions    prometheus.Counter
	feedClients   prometheus.Gauge
	feedEvents    prometheus.Counter
	kvOps         *prometheus.CounterVec
	resolveSealed prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, db *store.DB) *metrics {
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "extedge_registry_http_requests_total",
			Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "extedge_registry_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "extedge_registry_publish_total",
			Help: "Bundle publishes by outcome (created, existing, or an error code).",
		}, []string{"outcome"}),
		executions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "extedge_registry_execution_records_total",
			Help: "Execution records ingested.",
		}),
		feedClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "extedge_registry_change_feed_clients",
			Help: "Connected /v1/changes streams.",
		}),
		feedEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "extedge_registry_change_feed_events_sent_total",
			Help: "Change events written to /v1/changes streams.",
		}),
		kvOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "extedge_registry_kv_operations_total",
			Help: "KV operations by op and outcome code.",
		}, []string{"op", "outcome"}),
		resolveSealed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "extedge_registry_secret_envelopes_sealed_total",
			Help: "Secret envelopes sealed for resolve replies.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.publishes, m.executions, m.feedClients, m.feedEvents, m.kvOps, m.resolveSealed)
	_ = reg.Register(collectors.NewGoCollector())
	_ = reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if db != nil {
		reg.MustRegister(newPoolCollector(db))
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// poolCollector exports pgxpool statistics at scrape time.
type poolCollector struct {
	db                                  *store.DB
	total, idle, acquired, max          *prometheus.Desc
	acquires, emptyAcquires, acquireDur *prometheus.Desc
}

func newPoolCollector(db *store.DB) *poolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("extedge_registry_db_pool_"+name, help, nil, nil)
	}
	return &poolCollector{
		db:            db,
		total:         d("connections", "Open connections."),
		idle:          d("idle_connections", "Idle connections."),
		acquired:      d("acquired_connections", "Connections in use."),
		max:           d("max_connections", "Pool size limit."),
		acquires:      d("acquires_total", "Connection acquisitions."),
		emptyAcquires: d("empty_acquires_total", "Acquisitions that had to wait for a connection."),
		acquireDur:    d("acquire_seconds_total", "Time spent acquiring connections."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.total, c.idle, c.acquired, c.max, c.acquires, c.emptyAcquires, c.acquireDur} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.db.Pool.Stat()
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(st.TotalConns()))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(st.IdleConns()))
	ch <- prometheus.MustNewConstMetric(c.acquired, prometheus.GaugeValue, float64(st.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(st.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.acquires, prometheus.CounterValue, float64(st.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.emptyAcquires, prometheus.CounterValue, float64(st.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.acquireDur, prometheus.CounterValue, st.AcquireDuration().Seconds())
}
