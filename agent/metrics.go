package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/chorusdns/chorus/catalog"
)

// metrics are the agent's own Prometheus metrics (DNS registers its own).
type metrics struct {
	syncEvents   *prometheus.CounterVec
	memberEvents *prometheus.CounterVec
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
}

// newMetrics registers the agent's metrics, the catalog collector and the
// Go and process collectors on reg.
func newMetrics(reg prometheus.Registerer, store *catalog.Store) *metrics {
	m := &metrics{
		syncEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_sync_events_total",
			Help: "Replication events: announce, notice_sent, notice_received, applied_notice, applied_pull, pull_served, pull_failed, ae_exchange, ae_repair, member_repair, member_join, rejected.",
		}, []string{"event"}),
		memberEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_member_events_total",
			Help: "Serf membership events seen, by type.",
		}, []string{"type"}),
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
	reg.MustRegister(m.syncEvents, m.memberEvents, m.httpRequests, m.httpDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&catalogCollector{store: store})
	return m
}

// catalogCollector reports catalog sizes and health from the current
// snapshot at scrape time.
type catalogCollector struct{ store *catalog.Store }

var (
	descMembers   = prometheus.NewDesc("chorus_members", "Cluster members known to this agent, by status.", []string{"status"}, nil)
	descServices  = prometheus.NewDesc("chorus_catalog_services", "Distinct service names in the catalog.", nil, nil)
	descInstances = prometheus.NewDesc("chorus_catalog_instances", "Service instances in the catalog, by health.", []string{"health"}, nil)
	descChecks    = prometheus.NewDesc("chorus_catalog_checks", "Checks in the catalog, by status.", []string{"status"}, nil)
	descIndex     = prometheus.NewDesc("chorus_catalog_index", "The catalog's current index.", nil, nil)
)

func (c *catalogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descMembers
	ch <- descServices
	ch <- descInstances
	ch <- descChecks
	ch <- descIndex
}

func (c *catalogCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.store.Snapshot()
	members := map[string]int{"alive": 0, "leaving": 0, "failed": 0}
	checks := map[string]int{catalog.HealthPassing: 0, catalog.HealthWarning: 0, catalog.HealthCritical: 0}
	health := map[string]int{catalog.HealthPassing: 0, catalog.HealthWarning: 0, catalog.HealthCritical: 0, catalog.HealthMaintenance: 0}
	for _, n := range snap.Nodes() {
		members[n.Status.String()]++
		for _, ch := range n.AllChecks {
			checks[ch.Status]++
		}
		for _, i := range n.Instances {
			health[i.Health]++
		}
	}
	for s, v := range members {
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(v), s)
	}
	for s, v := range checks {
		ch <- prometheus.MustNewConstMetric(descChecks, prometheus.GaugeValue, float64(v), s)
	}
	for s, v := range health {
		ch <- prometheus.MustNewConstMetric(descInstances, prometheus.GaugeValue, float64(v), s)
	}
	ch <- prometheus.MustNewConstMetric(descServices, prometheus.GaugeValue, float64(len(snap.Services())))
	ch <- prometheus.MustNewConstMetric(descIndex, prometheus.GaugeValue, float64(snap.Index))
}
