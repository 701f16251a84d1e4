package agent

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/catalog"
)

// External nodes outlive their owner. The owner of an external node is
// the agent that wrote its newest version (local.Externals). When the
// owner fails or leaves, every surviving agent computes the same adopter
// for each node it owned: the alive agent with the highest rendezvous
// score hash(node, agent). The adopter alone writes a new version, owned
// by itself, of the record it holds; the node never leaves the catalog
// meanwhile (an external node's record is served whatever its owner's
// state). The rules that keep this stable:
//
//   - Ownership moves only when the owner is gone (failed or left, as the
//     catalog's member status has it from Serf; or unknown to it, i.e.
//     reaped or never listed, once adoptGrace has passed since this agent
//     started),
//     never because a new agent would score higher: a returning or new
//     agent does not take nodes back.
//   - The newest version wins everywhere, and an owner that sees a newer
//     version of one of its nodes written by another agent yields it
//     (local.Externals.Reconcile). A returning owner republishes its
//     journal's versions unchanged (no new version at start), so the
//     adopter's newer version wins and the returning owner yields.
//   - Two agents that both adopt (their member lists disagreed for a
//     moment) write two versions; the newer wins and the other adopter
//     yields, so there is again one owner.

// adoptGrace is how long after start an agent waits before it counts an
// owner that its member list does not name as gone: a starting agent's
// list fills during its first joins and push-pulls.
const adoptGrace = 30 * time.Second

// externalsMinInterval is the least time between two reconciliation
// rounds; externalsInterval the most.
const (
	externalsMinInterval = 100 * time.Millisecond
	externalsInterval    = time.Second
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

// runExternals runs the external nodes' journal compaction and, on every
// catalog change (at most every externalsMinInterval) and every
// externalsInterval, a reconciliation round, until ctx is done.
func (a *Agent) runExternals(ctx context.Context) {
	x := a.local.Externals()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { x.Run(ctx) })
	started := time.Now()
	tick := time.NewTicker(externalsInterval)
	defer tick.Stop()
	for {
		snap := a.store.Snapshot()
		a.reconcileExternals(x, snap, time.Since(started) >= adoptGrace)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-snap.Changed():
			t := time.NewTimer(externalsMinInterval)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// reconcileExternals runs one round: yield nodes others now own, adopt
// the nodes of gone owners that this agent scores highest for, and
// forget expired tombstones.
func (a *Agent) reconcileExternals(x *local.Externals, snap *catalog.Snapshot, graceOver bool) {
	x.Reconcile()
	now := uint64(time.Now().UnixMilli())
	for _, tb := range snap.Tombstones() {
		if tb.Version+uint64(local.TombstoneTTL.Milliseconds()) < now {
			a.store.ForgetTombstone(tb.Node, tb.Version)
		}
	}
	if a.leaving.Load() {
		return
	}
	// One pass over the snapshot: the alive agents, and the external
	// nodes other agents own. Member statuses are the catalog's (Serf's,
	// as the membership code applies them), so every agent decides on
	// the same facts.
	self := a.cfg.Load().NodeName
	var alive []string
	var foreign []*catalog.NodeEntry
	for n := range snap.AllNodes() {
		switch owner := n.Owner(); {
		case owner == "" && n.Status == catalog.MemberAlive:
			alive = append(alive, n.Node.Name)
		case owner != "" && owner != self:
			foreign = append(foreign, n)
		}
	}
	for _, n := range foreign {
		owner := n.Owner()
		var gone bool
		switch a.store.MemberStatus(owner) {
		case catalog.MemberAlive, catalog.MemberLeaving:
		case catalog.MemberFailed, catalog.MemberLeft:
			gone = true
		default: // reaped, or never listed here
			gone = graceOver
		}
		if !gone || adopter(n.Node.Name, alive) != self {
			continue
		}
		if _, err := x.Adopt(n.Record()); err != nil {
			a.logger.Warn("adopt external node", "node", n.Node.Name, "owner", owner, "err", err)
		}
	}
}

// adopter returns the agent among alive with the highest rendezvous score
// for node (ties to the lower name), "" if alive is empty. Every agent
// with the same member list computes the same adopter, and a change of
// the list moves only the nodes whose adopter joined or left.
func adopter(node string, alive []string) string {
	best, bestScore := "", uint64(0)
	for _, m := range alive {
		s := catalog.RendezvousScore(node, m)
		if best == "" || s > bestScore || s == bestScore && m < best {
			best, bestScore = m, s
		}
	}
	return best
}
