package server

import (
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/extedge/extedge/runnerd/engine"
	"github.com/extedge/extedge/runnerd/hostapi"
)

// metrics are the runner's Prometheus metrics. No label carries a tenant,
// install or request id: outcome codes, guest metric names and labels, and
// on guest metrics the extension name, bounded per process.
type metrics struct {
	invocations *prometheus.CounterVec
	duration    prometheus.Histogram
	instantiate prometheus.Histogram
	guest       prometheus.Histogram
	memory      prometheus.Histogram
	fuel        prometheus.Counter
	egress      prometheus.Counter
	rejected    prometheus.Counter
	queueWait   prometheus.Histogram
	cpu         prometheus.Counter
	demoted     prometheus.Counter

	reg          prometheus.Registerer
	guestMu      sync.Mutex
	guestVecs    map[string]*guestVec
	guestDropped prometheus.Counter
	// extensions are the values the extension label has taken; once
	// there are maxExtensions, other extensions share otherExtension.
	extensions    map[string]bool
	maxExtensions int
}

type guestVec struct {
	kind   string
	labels []string
	c      *prometheus.CounterVec
	g      *prometheus.GaugeVec
	h      *prometheus.HistogramVec
	series map[string]bool
}

// Bounds on what guests can create through metrics.emit.
const (
	maxGuestMetricNames  = 200
	maxGuestSeriesPerVec = 100
	maxGuestLabels       = 8
	guestMetricPrefix    = "extedge_guest_"
	// otherExtension is the extension label of extensions beyond
	// Config.MaxMetricExtensions. It is no valid extension name (§4).
	otherExtension = "_other"
)

func newMetrics(reg prometheus.Registerer, lim *limiter, maxExtensions int, reuse func() engine.ReuseStats) (*metrics, error) {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "extedge_runner_invocations_total", Help: "Execute calls by outcome (ok or a §6.2 error code)."}, []string{"outcome"}),
		duration:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "extedge_runner_duration_seconds", Help: "Execute call duration, queueing and compilation included.", Buckets: buckets}),
		instantiate: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "extedge_runner_instantiate_seconds", Help: "Time to instantiate and initialize a guest (calls served by a kept instance are not observed).", Buckets: buckets}),
		guest:       prometheus.NewHistogram(prometheus.HistogramOpts{Name: "extedge_runner_guest_seconds", Help: "Time spent in the handler export.", Buckets: buckets}),
		memory:      prometheus.NewHistogram(prometheus.HistogramOpts{Name: "extedge_runner_peak_memory_bytes", Help: "Peak linear memory per call.", Buckets: prometheus.ExponentialBuckets(64<<10, 2, 14)}),
		fuel:        prometheus.NewCounter(prometheus.CounterOpts{Name: "extedge_runner_fuel_consumed_total", Help: "Fuel consumed by metered calls."}),
		egress:      prometheus.NewCounter(prometheus.CounterOpts{Name: "extedge_runner_egress_bytes_total", Help: "Bytes sent and received by http.fetch."}),
		rejected:    prometheus.NewCounter(prometheus.CounterOpts{Name: "extedge_runner_concurrency_rejections_total", Help: "Calls refused with concurrency_limited."}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "extedge_runner_queue_wait_seconds",
			Help: "Time calls waited for a concurrency slot (only calls that had to wait).", Buckets: buckets}),
		cpu: prometheus.NewCounter(prometheus.CounterOpts{Name: "extedge_runner_guest_cpu_seconds_total",
			Help: "CPU time of the threads that ran guests."}),
		demoted: prometheus.NewCounter(prometheus.CounterOpts{Name: "extedge_runner_demoted_calls_total",
			Help: "Calls whose thread ran at low priority after using more CPU than the demotion threshold."}),
		guestVecs:     map[string]*guestVec{},
		extensions:    map[string]bool{},
		maxExtensions: maxExtensions,
		guestDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "extedge_runner_guest_metrics_dropped_total",
			Help: "metrics.emit samples dropped by the name and label-cardinality caps."}),
	}
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "extedge_runner_in_flight", Help: "Calls holding a concurrency slot."},
		func() float64 { return float64(lim.inFlight()) })
	queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "extedge_runner_queued", Help: "Calls waiting for a concurrency slot."},
		func() float64 { return float64(lim.waiting()) })
	collectors := []prometheus.Collector{m.invocations, m.duration, m.instantiate, m.guest, m.memory, m.fuel, m.egress, m.rejected,
		m.queueWait, m.cpu, m.demoted, m.guestDropped, inFlight, queued}
	if reuse != nil {
		collectors = append(collectors, reuseCollectors(reuse)...)
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.reg = reg
	return m, nil
}

// reuseCollectors export the instance reuse counters (SPEC §6.5), read
// from the engine when scraped; like every runner metric they carry no
// tenant or install.
func reuseCollectors(stats func() engine.ReuseStats) []prometheus.Collector {
	counter := func(name, help string, v func(engine.ReuseStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v(stats())) })
	}
	return []prometheus.Collector{
		counter("extedge_runner_reuse_hits_total", "Calls of reuse installs served by a kept instance.", func(s engine.ReuseStats) uint64 { return s.Hits }),
		counter("extedge_runner_reuse_misses_total", "Calls of reuse installs that found no idle instance and made one.", func(s engine.ReuseStats) uint64 { return s.Misses }),
		counter("extedge_runner_reuse_discards_total", "Kept instances dropped after a failed call (trap, timeout, limit, error).", func(s engine.ReuseStats) uint64 { return s.Discards }),
		counter("extedge_runner_reuse_recycled_total", "Kept instances dropped after their max_calls or max_age.", func(s engine.ReuseStats) uint64 { return s.Recycled }),
		counter("extedge_runner_reuse_evicted_total", "Idle instances dropped to stay within the pool bounds (LRU).", func(s engine.ReuseStats) uint64 { return s.Evicted }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "extedge_runner_reuse_idle_instances", Help: "Instances kept idle for reuse."},
			func() float64 { return float64(stats().Idle) }),
	}
}

func (m *metrics) observe(outcome string, d time.Duration, st *callStats) {
	m.invocations.WithLabelValues(outcome).Inc()
	m.duration.Observe(d.Seconds())
	if st == nil || !st.ran {
		return
	}
	if !st.Reused {
		// A kept instance was not instantiated for the call.
		m.instantiate.Observe(st.Instantiate.Seconds())
	}
	m.guest.Observe(st.Guest.Seconds())
	if st.PeakMemoryBytes > 0 {
		m.memory.Observe(float64(st.PeakMemoryBytes))
	}
	if st.FuelUsed > 0 {
		m.fuel.Add(float64(st.FuelUsed))
	}
	if st.egress > 0 {
		m.egress.Add(float64(st.egress))
	}
}

var metricNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,99}$`)

// observeGuestMetrics exports the metrics.emit samples of one call of
// extension under the extedge_guest_ prefix, with an extension label. The
// first emission fixes a name's kind and label names; later samples that
// disagree, new names beyond the cap and series beyond the per-name cap
// are dropped and counted.
func (m *metrics) observeGuestMetrics(extension string, samples []hostapi.Metric) {
	if len(samples) == 0 {
		return
	}
	m.guestMu.Lock()
	defer m.guestMu.Unlock()
	ext := m.extensionValue(extension)
	for _, s := range samples {
		if !m.observeGuest(ext, s) {
			m.guestDropped.Inc()
		}
	}
}

// extensionValue is extension's value of the extension label: its name
// for the first maxExtensions extensions that emit metrics in this
// process, otherExtension for the rest, so the label's cardinality stays
// bounded however many extensions a runner serves.
func (m *metrics) extensionValue(extension string) string {
	if m.extensions[extension] {
		return extension
	}
	if len(m.extensions) < m.maxExtensions {
		m.extensions[extension] = true
		return extension
	}
	return otherExtension
}

func (m *metrics) observeGuest(extension string, s hostapi.Metric) bool {
	if !metricNameRE.MatchString(s.Name) || len(s.Labels) > maxGuestLabels {
		return false
	}
	labels := make([]string, 0, len(s.Labels)+1)
	for k := range s.Labels {
		if !metricNameRE.MatchString(k) || strings.HasPrefix(k, "__") || k == hostapi.MetricExtensionLabel {
			return false
		}
		labels = append(labels, k)
	}
	sort.Strings(labels)
	labels = append(labels, hostapi.MetricExtensionLabel)
	name := guestMetricPrefix + s.Name
	v := m.guestVecs[name]
	if v == nil {
		if len(m.guestVecs) >= maxGuestMetricNames {
			return false
		}
		v = &guestVec{kind: s.Kind, labels: labels, series: map[string]bool{}}
		var c prometheus.Collector
		switch s.Kind {
		case "counter":
			v.c = prometheus.NewCounterVec(prometheus.CounterOpts{Name: name + "_total", Help: "Guest counter " + s.Name + "."}, labels)
			c = v.c
		case "gauge":
			v.g = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: "Guest gauge " + s.Name + "."}, labels)
			c = v.g
		case "histogram":
			v.h = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: "Guest histogram " + s.Name + "."}, labels)
			c = v.h
		default:
			return false
		}
		if err := m.reg.Register(c); err != nil {
			return false
		}
		m.guestVecs[name] = v
	}
	if v.kind != s.Kind || strings.Join(v.labels, ",") != strings.Join(labels, ",") {
		return false
	}
	values := make([]string, len(labels))
	for i, k := range labels[:len(labels)-1] {
		values[i] = s.Labels[k]
	}
	values[len(values)-1] = extension
	key := strings.Join(values, "\xff")
	if !v.series[key] {
		if len(v.series) >= maxGuestSeriesPerVec {
			return false
		}
		v.series[key] = true
	}
	switch {
	case v.c != nil:
		if s.Value < 0 {
			return false
		}
		v.c.WithLabelValues(values...).Add(s.Value)
	case v.g != nil:
		v.g.WithLabelValues(values...).Set(s.Value)
	case v.h != nil:
		v.h.WithLabelValues(values...).Observe(s.Value)
	}
	return true
}
