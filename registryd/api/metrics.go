package api

import (
	"context"
	"net/http"
	"time"

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
	// Events (§18).
	eventsPublished   *prometheus.CounterVec
	deliveriesCreated prometheus.Counter
	deliveryOutcomes  *prometheus.CounterVec
	deliveryAttempts  *prometheus.HistogramVec
	deliveryLag       prometheus.Histogram
}

func newMetrics(reg *prometheus.Registry, db *store.DB, now func() time.Time) *metrics {
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
		eventsPublished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "extedge_registry_events_published_total",
			Help: "POST /v1/events by outcome (created, duplicate, or an error code).",
		}, []string{"outcome"}),
		deliveriesCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "extedge_registry_event_deliveries_created_total",
			Help: "Event deliveries created by fan-out.",
		}),
		deliveryOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "extedge_registry_event_delivery_transitions_total",
			Help: "Event delivery state changes: leased, lease_expired (leased again after its lease ran out), " +
				"succeeded, retry_scheduled, dead, requeued (an admin retried a dead one).",
		}, []string{"outcome"}),
		deliveryAttempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "extedge_registry_event_delivery_attempts",
			Help:    "Attempts a delivery took, observed when it succeeded or died.",
			Buckets: []float64{1, 2, 3, 4, 5, 6, 7, 8, 10, 15, 20},
		}, []string{"outcome"}),
		deliveryLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "extedge_registry_event_delivery_lag_seconds",
			Help:    "How long a delivery had been due (or its lease expired) when a runner leased it.",
			Buckets: []float64{.01, .05, .1, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.publishes, m.executions, m.feedClients, m.feedEvents, m.kvOps, m.resolveSealed,
		m.eventsPublished, m.deliveriesCreated, m.deliveryOutcomes, m.deliveryAttempts, m.deliveryLag)
	_ = reg.Register(collectors.NewGoCollector())
	_ = reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if db != nil {
		reg.MustRegister(newPoolCollector(db), &backlogCollector{db: db, now: now})
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

// backlogCollector reports the delivery queue at scrape time: what is due
// and not leased, how long the oldest of it has waited (the lag runners
// have not caught up with, which the lease-time histogram cannot show
// while nobody leases), and what is leased. Two index-only counts under
// the platform scope, bounded by a short timeout; a failed query leaves
// the series out of that scrape.
type backlogCollector struct {
	db  *store.DB
	now func() time.Time
}

var (
	backlogDue = prometheus.NewDesc("extedge_registry_event_deliveries_due",
		"Pending event deliveries whose next attempt is due, not yet leased.", nil, nil)
	backlogLeased = prometheus.NewDesc("extedge_registry_event_deliveries_leased",
		"Event deliveries currently leased by runners (expired leases included).", nil, nil)
	backlogOldest = prometheus.NewDesc("extedge_registry_event_delivery_oldest_due_seconds",
		"How long the oldest due, unleased delivery has been waiting (0 when none is).", nil, nil)
)

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backlogDue
	ch <- backlogLeased
	ch <- backlogOldest
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	now := c.now()
	b, err := c.db.DeliveryBacklog(ctx, now)
	if err != nil {
		return
	}
	oldest := 0.0
	if !b.OldestDue.IsZero() {
		oldest = now.Sub(b.OldestDue).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(backlogDue, prometheus.GaugeValue, float64(b.Due))
	ch <- prometheus.MustNewConstMetric(backlogLeased, prometheus.GaugeValue, float64(b.Leased))
	ch <- prometheus.MustNewConstMetric(backlogOldest, prometheus.GaugeValue, oldest)
}
