package httpapi

import "github.com/prometheus/client_golang/prometheus"

// metrics are the API's Prometheus metrics.
type metrics struct {
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
}

// newMetrics registers the API's metrics with reg; parked reports how many
// blocking queries wait.
func newMetrics(reg prometheus.Registerer, parked func() float64) *metrics {
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
	}
	reg.MustRegister(m.httpRequests, m.httpDuration, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chorus_http_blocking_queries",
		Help: "Blocking HTTP queries waiting for their answer to change.",
	}, parked))
	return m
}
