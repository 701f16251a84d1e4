package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/chorusdns/chorus/catalog"
)

// DNS start-up gate. An agent that starts (or restarts) knows only its own
// node until it has pulled its peers' records: answering then would give
// NXDOMAIN, which resolvers cache, or a partial answer, for names that the
// cluster serves. So the DNS sockets bind at start (a taken port still
// fails fast) but no query is read until the catalog holds every alive
// member's current record, or warmupMax has passed, as CoreDNS's
// kubernetes plugin waits up to 5 s for its first sync. Queries that
// arrive meanwhile wait in the socket buffers and are answered then. An
// agent that expects no peer (no join addresses, no members in its Serf
// snapshot) serves at once. A restarted agent joins the members its Serf
// snapshot lists itself (as Serf also does), so that the gate knows when
// its member list is the cluster's.
const (
	warmupMax  = 2 * time.Second
	warmupPoll = 10 * time.Millisecond
)

// waitCatalog returns when the catalog has caught up with the cluster (or
// no peer is expected), after warmupMax, or when ctx is done. It reports
// how long it waited and, when it did not catch up, what it lacked last.
func (a *Agent) waitCatalog(ctx context.Context, expectPeers bool) (time.Duration, string) {
	start := time.Now()
	if !expectPeers {
		return 0, ""
	}
	deadline := time.NewTimer(warmupMax)
	defer deadline.Stop()
	tick := time.NewTicker(warmupPoll)
	defer tick.Stop()
	for {
		lack := a.catalogLacks()
		if lack == "" {
			return time.Since(start), ""
		}
		select {
		case <-ctx.Done():
			return time.Since(start), lack
		case <-deadline.C:
			return time.Since(start), lack
		case <-tick.C:
		}
	}
}

// catalogLacks returns "" when a join has completed, its catch-up
// exchange has brought every record it found newer at a peer, Serf knows
// at least one alive peer and the catalog holds, for every alive peer, the
// member as alive with a record at least as new as its version tag (the
// version that peer started with); otherwise what is missing. A join must have completed because until then Serf's member list
// is only what its snapshot remembered, which may lack members (and their
// services) that a push-pull with a live peer brings.
func (a *Agent) catalogLacks() string {
	if !a.gossip.Joined() {
		return "no join has completed yet"
	}
	if lack := a.sync.CatchUp(); lack != "" {
		return lack
	}
	self := a.NodeName()
	snap := a.store.Snapshot()
	peers := 0
	for _, m := range a.gossip.Members() {
		if m.Name == self || m.Status != catalog.MemberAlive {
			continue
		}
		peers++
		v := m.Version
		if v == 0 {
			return m.Name + ": no version tag yet"
		}
		n, ok := snap.Node(m.Name)
		switch {
		case !ok:
			return fmt.Sprintf("%s: no record (tag %d)", m.Name, v)
		case n.Status != catalog.MemberAlive:
			return fmt.Sprintf("%s: %v in the catalog", m.Name, n.Status)
		case n.Version < v:
			return fmt.Sprintf("%s: record %d behind tag %d", m.Name, n.Version, v)
		}
	}
	if peers == 0 {
		return "no alive peer yet"
	}
	return ""
}
