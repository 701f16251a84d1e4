package httpapi

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// metricsInfo is Consul's MetricsInfo JSON shape (/v1/agent/metrics).
type metricsInfo struct {
	Timestamp string
	Gauges    []gaugeValue
	Points    []pointValue
	Counters  []sampledValue
	Samples   []sampledValue
}

type gaugeValue struct {
	Name   string
	Value  float64
	Labels map[string]string
}

type pointValue struct {
	Name   string
	Points []float64
}

// sampledValue is Consul's SampledValue. Chorus's figures come from the
// Prometheus registry, which keeps totals, not per-interval samples: a
// counter is one sample (Count 1) whose Sum, Min, Max and Mean are its
// total since the agent started; a histogram or summary gives its
// observation count, sum and mean, and Min, Max and Stddev 0 (Prometheus
// does not keep them).
type sampledValue struct {
	Name   string
	Count  uint64
	Sum    float64
	Min    float64
	Max    float64
	Mean   float64
	Stddev float64
	Labels map[string]string
}

// apiAgentMetrics is GET /v1/agent/metrics: every metric of the agent's
// Prometheus registry (the one /metrics serves) in Consul's JSON shape,
// or with ?format=prometheus in Prometheus's text format, as Consul.
func (a *Server) apiAgentMetrics(w http.ResponseWriter, r *http.Request) (any, error) {
	if params(r).Get("format") == "prometheus" {
		promhttp.HandlerFor(a.gather, promhttp.HandlerOpts{}).ServeHTTP(w, r)
		return streamed{}, nil
	}
	families, err := a.gather.Gather()
	if err != nil && len(families) == 0 {
		return nil, errorf(http.StatusInternalServerError, "gather metrics: %v", err)
	}
	out := metricsInfo{
		Timestamp: time.Now().UTC().Truncate(10 * time.Second).Format("2006-01-02 15:04:05 -0700 MST"),
		Gauges:    []gaugeValue{}, Points: []pointValue{}, Counters: []sampledValue{}, Samples: []sampledValue{},
	}
	for _, mf := range families {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				v := m.GetCounter().GetValue()
				out.Counters = append(out.Counters, sampledValue{Name: name, Count: 1, Sum: v, Min: v, Max: v, Mean: v, Labels: labels})
			case dto.MetricType_GAUGE:
				out.Gauges = append(out.Gauges, gaugeValue{Name: name, Value: m.GetGauge().GetValue(), Labels: labels})
			case dto.MetricType_UNTYPED:
				out.Gauges = append(out.Gauges, gaugeValue{Name: name, Value: m.GetUntyped().GetValue(), Labels: labels})
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				out.Samples = append(out.Samples, sample(name, h.GetSampleCount(), h.GetSampleSum(), labels))
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				out.Samples = append(out.Samples, sample(name, s.GetSampleCount(), s.GetSampleSum(), labels))
			}
		}
	}
	return out, nil
}

func sample(name string, count uint64, sum float64, labels map[string]string) sampledValue {
	v := sampledValue{Name: name, Count: count, Sum: sum, Labels: labels}
	if count > 0 {
		v.Mean = sum / float64(count)
	}
	return v
}
