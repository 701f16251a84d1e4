package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/catalog"
)

// startExternals sets up the external nodes this agent owns: it restores
// its journal, publishes what it holds, registers its metrics and moves
// legacy external services (kept by older agents in their own record) to
// external nodes.
func (a *Agent) startExternals(cfg *Config) error {
	x := local.NewExternals(local.ExternalsConfig{
		Self: cfg.NodeName, Datacenter: cfg.Datacenter, DataDir: cfg.DataDir,
		Store: a.store, Publish: a.publishExternal,
	}, a.root)
	if err := x.Restore(); err != nil {
		return err
	}
	a.local.SetExternals(x)
	a.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "chorus_external_adoptions_total",
			Help: "External nodes this agent adopted because their owner failed or left.",
		}, func() float64 { return float64(x.Stats().Adoptions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "chorus_external_yields_total",
			Help: "External nodes this agent gave up: another agent wrote a newer version, or the node's tombstone expired.",
		}, func() float64 { return float64(x.Stats().Yields) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chorus_external_nodes_owned",
			Help: "External nodes (tombstones included) whose record this agent owns.",
		}, func() float64 { return float64(len(x.Owned())) }))
	for journal, dropped := range map[string]func() int64{"local": a.local.DroppedAtStart, "external": x.DroppedAtStart} {
		a.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "chorus_state_dropped_bytes",
			Help:        "Bytes of a torn end cut off a state journal at start: a write cut short by a crash (never acknowledged), or damage to the last acknowledged write (then lost; logged at ERROR naming the file).",
			ConstLabels: prometheus.Labels{"journal": journal},
		}, func() float64 { return float64(dropped()) }))
	}
	for _, le := range a.local.LegacyExternals() {
		if err := x.Register(le.Registration); err != nil {
			a.logger.Error("move a legacy external service to its external node", "service", le.ServiceID, "node", le.Registration.Node, "err", err)
			continue
		}
		if err := a.local.DeregisterService(le.ServiceID); err != nil {
			a.logger.Error("remove a moved legacy external service", "service", le.ServiceID, "err", err)
			continue
		}
		a.logger.Info("moved a legacy external service to its external node", "service", le.ServiceID, "node", le.Registration.Node)
	}
	return nil
}

// publishExternal signs an external node's record with this agent's key,
// applies it to the catalog and sends peers its notice. It reports
// whether the catalog took it.
func (a *Agent) publishExternal(rec *catalog.NodeRecord) bool {
	if err := rec.Sign(a.key); err != nil {
		a.logger.Error("sign external node record", "node", rec.Node.Name, "err", err)
		return false
	}
	if !a.store.ApplyRecord(rec) {
		return false
	}
	if a.sync != nil {
		a.sync.NotifyRecord(rec)
	}
	return true
}
