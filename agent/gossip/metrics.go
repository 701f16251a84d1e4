package gossip

import "github.com/prometheus/client_golang/prometheus"

// metrics are the gossip layer's own Prometheus metrics.
type metrics struct {
	memberEvents *prometheus.CounterVec
	// gossipRemoteErrors counts serf and memberlist warnings about what a
	// remote address sent, by pool (serfLogger).
	gossipRemoteErrors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		memberEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_member_events_total",
			Help: "Serf membership events seen, by type.",
		}, []string{"type"}),
		gossipRemoteErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_gossip_remote_errors_total",
			Help: "Serf and memberlist warnings and errors about what a remote address sent (undecryptable, malformed or unexpected messages), by pool; each kind is logged at most once every 10 s.",
		}, []string{"pool"}),
	}
	reg.MustRegister(m.memberEvents, m.gossipRemoteErrors)
	return m
}
