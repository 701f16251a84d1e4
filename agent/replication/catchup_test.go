package replication

import (
	"fmt"
	"testing"
	"time"

	tu "github.com/chorusdns/chorus/test/testutil"
)

// TestVersionTagSetOnce: the version tag carries the first version an
// agent announced; later changes travel by notices alone.
func TestVersionTagSetOnce(t *testing.T) {
	nodes := newMemNet(t).add(3)
	first := nodes[0].change("a")
	tu.Eventually(t, 5*time.Second, func() error {
		if got := nodes[0].tag.Load(); got != first.Version {
			return fmt.Errorf("tag %d, want %d", got, first.Version)
		}
		return nil
	})
	var last uint64
	for i := range 5 {
		last = nodes[0].change(fmt.Sprintf("svc-%d", i)).Version
		converged(t, nodes, "node0", last, 5*time.Second)
	}
	if got := nodes[0].tag.Load(); got != first.Version {
		t.Fatalf("after 5 more changes the tag is %d, want the first version %d", got, first.Version)
	}
}

// TestJoinerCatchesUpInOneExchange: an agent that joins a cluster of 40
// learns every record through its catch-up exchange and the pulls it
// finds due (jobs of maxPullNames), not through one pull per member,
// and CatchUp reports done only once every such record is held.
func TestJoinerCatchesUpInOneExchange(t *testing.T) {
	const members = 40
	net := newMemNet(t)
	nodes := net.add(members)
	want := map[string]uint64{}
	for _, n := range nodes {
		want[n.name] = n.change("svc").Version
	}
	for _, n := range nodes {
		converged(t, nodes, n.name, want[n.name], 10*time.Second)
	}
	net.beforeRun = func(n *memNode) { n.sync.BeginCatchUp() }
	joiner := net.add(1)[0]
	if lack := joiner.sync.CatchUp(); lack == "" {
		t.Fatal("CatchUp reports done before any exchange")
	}
	joiner.sync.Kick()
	tu.Eventually(t, 10*time.Second, func() error {
		if lack := joiner.sync.CatchUp(); lack != "" {
			return fmt.Errorf("catch-up: %s", lack)
		}
		return nil
	})
	for name, v := range want {
		if got := joiner.store.Version(name); got < v {
			t.Fatalf("CatchUp done but the joiner holds %s at %d, want %d", name, got, v)
		}
	}
	// One tree exchange and one pull job (40 < maxPullNames), give or
	// take an anti-entropy exchange a peer's digest started meanwhile.
	if d := joiner.dials.Load(); d > 4 {
		t.Fatalf("the joiner opened %d streams to catch up with %d members, want a handful", d, members)
	}
}

// TestCatchUpEndsWithoutPeers: a join that reached no one cancels the
// catch-up, and a catch-up whose exchange never completes stops holding
// back member pulls after catchUpMax.
func TestCatchUpEndsWithoutPeers(t *testing.T) {
	net := newMemNet(t)
	n := net.add(1)[0]
	n.sync.BeginCatchUp()
	if !n.sync.catchingUp() {
		t.Fatal("not catching up after BeginCatchUp")
	}
	n.sync.EndCatchUp()
	if n.sync.catchingUp() || n.sync.CatchUp() != "" {
		t.Fatalf("catch-up still on after EndCatchUp: %q", n.sync.CatchUp())
	}
	n.sync.BeginCatchUp()
	n.sync.mu.Lock()
	n.sync.catch.since = time.Now().Add(-catchUpMax)
	n.sync.mu.Unlock()
	if n.sync.catchingUp() {
		t.Fatal("still holding member pulls back after catchUpMax")
	}
	n.sync.queueCatchUp()
	if lack := n.sync.CatchUp(); lack != "" {
		t.Fatalf("CatchUp after giving up: %q", lack)
	}
}
