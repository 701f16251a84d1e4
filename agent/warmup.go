package agent

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/serf/serf"

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
// snapshot) serves at once.
const (
	warmupMax  = 2 * time.Second
	warmupPoll = 10 * time.Millisecond
)

// waitCatalog returns when the catalog has caught up with the cluster (or
// no peer is expected), after warmupMax, or when ctx is done. It reports
// how long it waited and whether it caught up.
func (a *Agent) waitCatalog(ctx context.Context, expectPeers bool) (time.Duration, bool) {
	start := time.Now()
	if !expectPeers {
		return 0, true
	}
	deadline := time.NewTimer(warmupMax)
	defer deadline.Stop()
	tick := time.NewTicker(warmupPoll)
	defer tick.Stop()
	for {
		if a.catalogCurrent() {
			return time.Since(start), true
		}
		select {
		case <-ctx.Done():
			return time.Since(start), false
		case <-deadline.C:
			return time.Since(start), false
		case <-tick.C:
		}
	}
}

// catalogCurrent reports whether Serf knows at least one alive peer and
// the catalog holds, for every alive peer, the member as alive with a
// record at least as new as its version tag.
func (a *Agent) catalogCurrent() bool {
	self := a.NodeName()
	snap := a.store.Snapshot()
	peers := 0
	for _, m := range a.serf.Members() {
		if m.Name == self || m.Status != serf.StatusAlive {
			continue
		}
		peers++
		v, err := strconv.ParseUint(m.Tags[tagVersion], 10, 64)
		if err != nil || v == 0 {
			return false // a peer that has not published yet
		}
		n, ok := snap.Node(m.Name)
		if !ok || n.Status != catalog.MemberAlive || n.Version < v {
			return false
		}
	}
	return peers > 0
}

// serfSnapshotPath is where Serf keeps its snapshot in the data dir.
func serfSnapshotPath(dataDir string) string {
	return filepath.Join(dataDir, "serf", "local.snapshot")
}

// snapshotHasPeers reports whether the Serf snapshot at path lists alive
// members other than self that Serf will try to rejoin: a restarted agent
// expects peers even without join addresses. It reads the snapshot's line
// format (alive:, not-alive:, leave) the way Serf replays it with
// RejoinAfterLeave off; a missing or unreadable file means no peers.
func snapshotHasPeers(path, self string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	alive := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "alive: "):
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "alive: "), " ")
			alive[name] = true
		case strings.HasPrefix(line, "not-alive: "):
			delete(alive, strings.TrimPrefix(line, "not-alive: "))
		case line == "leave":
			clear(alive)
		}
	}
	delete(alive, self)
	return len(alive) > 0
}
