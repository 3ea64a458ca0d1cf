package deliveries

import "github.com/prometheus/client_golang/prometheus"

// metrics of the delivery worker. No tenant or extension labels: their
// number is unbounded; per-install detail is in the execution log.
type metrics struct {
	handled     *prometheus.CounterVec   // attempts by what the call came to
	reported    *prometheus.CounterVec   // delivery status after complete/fail
	attempts    *prometheus.HistogramVec // attempts of finished deliveries
	lag         prometheus.Histogram     // occurred_at → handler start
	leaseErrors prometheus.Counter
	slotWaits   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "extedge_runner_delivery_attempts_total",
			Help: "Event delivery attempts run by this runner, by outcome (ok, guest_status, a runner error code, resolve_failed, install_replaced)."}, []string{"outcome"}),
		reported: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "extedge_runner_deliveries_total",
			Help: "Event deliveries reported to registryd, by the delivery's status afterwards (succeeded, pending, dead) or why the report was not recorded (lease_lost, not_found, refused, unreported)."}, []string{"outcome"}),
		attempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "extedge_runner_delivery_attempts",
			Help: "Attempts a delivery took, when this runner finished it (succeeded or dead).", Buckets: []float64{1, 2, 3, 4, 5, 6, 8, 12, 20, 50, 100}}, []string{"status"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "extedge_runner_delivery_lag_seconds",
			Help:    "Time from an event's occurred_at to its handler starting on this runner (includes retries' backoff and clock skew with the publisher).",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 14)}),
		leaseErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "extedge_runner_delivery_lease_errors_total",
			Help: "Failed requests for delivery leases (registryd unreachable or refusing)."}),
		slotWaits: prometheus.NewCounter(prometheus.CounterOpts{Name: "extedge_runner_delivery_slot_waits_total",
			Help: "Delivery calls that found the runner at its concurrency cap and waited to try again."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.handled, m.reported, m.attempts, m.lag, m.leaseErrors, m.slotWaits} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
