package httpapi

import "github.com/prometheus/client_golang/prometheus"

// metrics are the API's Prometheus metrics.
type metrics struct {
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	failovers    *prometheus.CounterVec
}

// newMetrics registers the API's metrics with reg; parked reports how many
// blocking queries wait, questions the size of the table of questions'
// indexes.
func newMetrics(reg prometheus.Registerer, parked func() float64, questions func() (entries, bytes int)) *metrics {
	m := &metrics{
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_http_requests_total",
			Help: "HTTP API requests by method and status code.",
		}, []string{"method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chorus_http_request_duration_seconds",
			Help:    "HTTP API request latency (blocking queries included).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"method"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_http_failover_answers_total",
			Help: "/v1/health/service/<name>?failover answers served from another datacenter because this one had no healthy instance, by datacenter.",
		}, []string{"datacenter"}),
	}
	reg.MustRegister(m.httpRequests, m.httpDuration, m.failovers, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chorus_http_blocking_queries",
		Help: "Blocking HTTP queries waiting for their answer to change.",
	}, parked), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chorus_http_question_indexes",
		Help: "Distinct read questions (path and answer-shaping parameters) whose X-Consul-Index the agent keeps; bounded.",
	}, func() float64 { n, _ := questions(); return float64(n) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chorus_http_question_index_bytes",
		Help: "Estimated memory of the read questions' indexes, in bytes; bounded.",
	}, func() float64 { _, b := questions(); return float64(b) }))
	return m
}
