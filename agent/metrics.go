package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/chorusdns/chorus/catalog"
)

// registerMetrics registers the catalog collector and the Go and process
// collectors on reg (each part of the agent registers its own metrics).
func registerMetrics(reg prometheus.Registerer, store *catalog.Store) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&catalogCollector{store: store})
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
		for ch := range n.AllChecks() {
			checks[ch.Status]++
		}
		for _, i := range n.Instances.Values() {
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
