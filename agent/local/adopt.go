package local

import (
	"context"
	"sync"
	"time"

	"github.com/chorusdns/chorus/catalog"
)

// External nodes outlive their owner. The owner of an external node is
// the agent that wrote its newest version. When the owner fails or
// leaves, every surviving agent computes the same adopter for each node
// it owned: the alive agent with the highest rendezvous score
// hash(node, agent). The adopter alone writes a new version, owned by
// itself, of the record it holds; the node never leaves the catalog
// meanwhile (an external node's record is served whatever its owner's
// state). The rules that keep this stable:
//
//   - Ownership moves only when the owner is gone (failed or left, as the
//     catalog's member status has it from Serf; or unknown to it, i.e.
//     reaped or never listed, once AdoptGrace has passed since this agent
//     started), never because a new agent would score higher: a
//     returning or new agent does not take nodes back.
//   - The newest version wins everywhere, and an owner that sees a newer
//     version of one of its nodes written by another agent yields it
//     (Reconcile). A returning owner republishes its journal's versions
//     unchanged (no new version at start), so the adopter's newer version
//     wins and the returning owner yields.
//   - Two agents that both adopt (their member lists disagreed for a
//     moment) write two versions; the newer wins and the other adopter
//     yields, so there is again one owner.

// AdoptGrace is how long after start an agent waits before it counts an
// owner that its member list does not name as gone: a starting agent's
// list fills during its first joins and push-pulls.
const AdoptGrace = 30 * time.Second

// adoptMinInterval is the least time between two reconciliation rounds;
// adoptInterval the most.
const (
	adoptMinInterval = 100 * time.Millisecond
	adoptInterval    = time.Second
)

// Run compacts the journal in the background and, on every catalog
// change (at most every adoptMinInterval) and every adoptInterval, runs a
// reconciliation round (yield, forget expired tombstones, adopt), until
// ctx is done. leaving reports whether this agent is leaving the
// cluster: a leaving agent adopts nothing. It returns after its
// goroutines have exited.
func (x *Externals) Run(ctx context.Context, leaving func() bool) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { x.compact(ctx) })
	started := time.Now()
	tick := time.NewTicker(adoptInterval)
	defer tick.Stop()
	for {
		snap := x.cfg.Store.Snapshot()
		x.round(snap, leaving(), time.Since(started) >= AdoptGrace)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-snap.Changed():
			t := time.NewTimer(adoptMinInterval)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// compact runs the journal's compaction until ctx is done.
func (x *Externals) compact(ctx context.Context) {
	x.mu.Lock()
	j := x.jnl
	x.mu.Unlock()
	if j == nil {
		<-ctx.Done()
		return
	}
	if err := j.Run(ctx); err != nil && ctx.Err() == nil {
		x.logger.Error("external nodes journal compaction stopped", "err", err)
	}
}

// round runs one reconciliation round over snap: yield nodes others now
// own, forget expired tombstones, and (unless leaving) adopt the nodes of
// gone owners that this agent scores highest for.
func (x *Externals) round(snap *catalog.Snapshot, leaving, graceOver bool) {
	x.Reconcile()
	store := x.cfg.Store
	now := uint64(time.Now().UnixMilli())
	for _, tb := range snap.Tombstones() {
		if tb.Version+uint64(TombstoneTTL.Milliseconds()) < now {
			store.ForgetTombstone(tb.Node, tb.Version)
		}
	}
	if leaving {
		return
	}
	// One pass over the snapshot: the alive agents, and the external
	// nodes other agents own. Member statuses are the catalog's (Serf's,
	// as the membership code applies them), so every agent decides on
	// the same facts.
	self := x.cfg.Self
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
		switch store.MemberStatus(owner) {
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
			x.logger.Warn("adopt external node", "node", n.Node.Name, "owner", owner, "err", err)
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
