package dns

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus collectors.
type metrics struct {
	queries          *prometheus.CounterVec
	duration         prometheus.Histogram
	panics           prometheus.Counter
	rateLimited      prometheus.Counter
	forwards         prometheus.Counter
	recursorFailures *prometheus.CounterVec
	// failovers counts answers served from another datacenter because
	// this one had no healthy instance, by datacenter.
	failovers *prometheus.CounterVec

	// counters caches queries' children by (qtype label, rcode) so the
	// query path does not hash label values.
	counters [len(qtypeLabels) + 1][maxRcodeLabel + 2]atomic.Pointer[counterRef]
}

type counterRef struct{ c prometheus.Counter }

// qtypeLabels are the query types counted by name; others count as "other"
// so that a client cannot create unbounded series.
var qtypeLabels = [...]uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypePTR, dns.TypeNS,
	dns.TypeSOA, dns.TypeANY, dns.TypeCNAME, dns.TypeMX, dns.TypeHTTPS,
	dns.TypeSVCB, dns.TypeCAA, dns.TypeDS, dns.TypeDNSKEY, dns.TypeAXFR, dns.TypeIXFR,
}

const maxRcodeLabel = dns.RcodeBadCookie

// durationBuckets resolve the sub-millisecond range where cached answers
// live.
var durationBuckets = []float64{
	5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5,
}

// newMetrics creates the collectors and registers them on reg (nil: not
// registered).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_dns_queries_total",
			Help: "DNS queries answered, by query type and response code.",
		}, []string{"qtype", "rcode"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chorus_dns_request_duration_seconds",
			Help:    "Time to answer a DNS query, forwarding included.",
			Buckets: durationBuckets,
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_dns_rate_limited_total",
			Help: "DNS queries refused because their source exceeded dns.rate_limit.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_dns_panics_total",
			Help: "Panics recovered while answering DNS queries (answered SERVFAIL).",
		}),
		forwards: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_dns_recursor_forwards_total",
			Help: "Queries outside the domains forwarded to recursors.",
		}),
		recursorFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_dns_recursor_failures_total",
			Help: "Forwarding attempts that failed (error, timeout, SERVFAIL or REFUSED), by recursor.",
		}, []string{"recursor"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_dns_failover_answers_total",
			Help: "Service answers served from another datacenter because this one had no healthy instance (chorus-failover or the failover key), by datacenter.",
		}, []string{"datacenter"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.queries, m.duration, m.panics, m.rateLimited, m.forwards, m.recursorFailures, m.failovers} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("dns: metrics already registered on this registry")
			}
			return nil, err
		}
	}
	return m, nil
}

// observe counts one answered query.
func (m *metrics) observe(qtype uint16, rcode int, d time.Duration) {
	qi := len(qtypeLabels)
	for i, t := range qtypeLabels {
		if t == qtype {
			qi = i
			break
		}
	}
	ri := rcode
	if ri < 0 || ri > maxRcodeLabel {
		ri = maxRcodeLabel + 1
	}
	slot := &m.counters[qi][ri]
	ref := slot.Load()
	if ref == nil {
		ql := "other"
		if qi < len(qtypeLabels) {
			ql = dns.TypeToString[qtypeLabels[qi]]
		}
		rl := "other"
		if ri <= maxRcodeLabel {
			if s, ok := dns.RcodeToString[ri]; ok {
				rl = s
			}
		}
		ref = &counterRef{c: m.queries.WithLabelValues(ql, rl)}
		slot.Store(ref)
	}
	ref.c.Inc()
	m.duration.Observe(d.Seconds())
}
