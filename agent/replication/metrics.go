package replication

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the replication's Prometheus metrics. A nil *Metrics
// counts nothing.
type Metrics struct {
	events   *prometheus.CounterVec
	rejected *prometheus.CounterVec
	// messages and bytes count Chorus's own traffic on the gossip port by
	// kind and direction (see count).
	messages *prometheus.CounterVec
	bytes    *prometheus.CounterVec
}

// Kinds of traffic counted in chorus_sync_messages_total and
// chorus_sync_bytes_total.
const (
	kindNotice  = "notice"  // UDP notices
	kindDigest  = "digest"  // UDP digests, first and final
	kindPull    = "pull"    // pull streams: requests and records
	kindTree    = "tree"    // tree exchange streams
	kindVector  = "vector"  // vector exchange streams (previous release)
	kindUnknown = "unknown" // packets and frames of no known type
	dirSent     = "sent"
	dirReceived = "received"
)

// packetKind names the kind of a packet or stream type.
func packetKind(typ byte) string {
	switch typ {
	case pktNotice:
		return kindNotice
	case pktDigest, pktDigestFinal:
		return kindDigest
	case strPull:
		return kindPull
	case strTree:
		return kindTree
	case strVector:
		return kindVector
	}
	return kindUnknown
}

// NewMetrics registers the replication's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_sync_events_total",
			Help: "Replication events: announce, notice_sent, notice_received, applied_notice, applied_pull, apply_dropped, pull_served, pull_failed, ae_recheck, ae_exchange, ae_repair, member_repair, member_join, rejected.",
		}, []string{"event"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_sync_messages_total",
			Help: "Chorus's own messages on the gossip port (not Serf's), by kind (notice, digest, pull, tree, vector, unknown) and direction (sent, received): one per datagram and one per stream frame.",
		}, []string{"kind", "direction"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_sync_bytes_total",
			Help: "Bytes of chorus_sync_messages_total: datagram payloads and stream frames with their headers, sealed when encryption is on; IP, UDP and TCP headers not included.",
		}, []string{"kind", "direction"}),
	}
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chorus_sync_rejected_total",
		Help: "Messages and records refused on the gossip port, by reason: undecryptable, malformed, not_member, wrong_node, future_version, bad_signature, key_changed, held_full, stream_limit. Each also counts in chorus_sync_events_total{event=\"rejected\"}.",
	}, []string{"reason"})
	for _, k := range []string{kindNotice, kindDigest, kindPull, kindTree} {
		for _, d := range []string{dirSent, dirReceived} {
			m.messages.WithLabelValues(k, d)
			m.bytes.WithLabelValues(k, d)
		}
	}
	reg.MustRegister(m.events, m.rejected, m.messages, m.bytes)
	return m
}

// count counts one message of n bytes.
func (m *Metrics) count(kind, dir string, n int) {
	if m == nil {
		return
	}
	m.messages.WithLabelValues(kind, dir).Inc()
	m.bytes.WithLabelValues(kind, dir).Add(float64(n))
}
