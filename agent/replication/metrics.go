package replication

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the replication's Prometheus metrics.
type Metrics struct {
	events   *prometheus.CounterVec
	rejected *prometheus.CounterVec
}

// NewMetrics registers the replication's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_sync_events_total",
			Help: "Replication events: announce, notice_sent, notice_received, applied_notice, applied_pull, apply_dropped, pull_served, pull_failed, ae_exchange, ae_repair, member_repair, member_join, rejected.",
		}, []string{"event"}),
	}
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chorus_sync_rejected_total",
		Help: "Messages and records refused on the gossip port, by reason: undecryptable, malformed, not_member, wrong_node, future_version, bad_signature, key_changed, held_full, stream_limit. Each also counts in chorus_sync_events_total{event=\"rejected\"}.",
	}, []string{"reason"})
	reg.MustRegister(m.events, m.rejected)
	return m
}
