package replication

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the replication's Prometheus metrics.
type Metrics struct {
	events *prometheus.CounterVec
}

// NewMetrics registers the replication's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_sync_events_total",
			Help: "Replication events: announce, notice_sent, notice_received, applied_notice, applied_pull, apply_dropped, pull_served, pull_failed, ae_exchange, ae_repair, member_repair, member_join, rejected.",
		}, []string{"event"}),
	}
	reg.MustRegister(m.events)
	return m
}
