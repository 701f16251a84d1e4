package replication

import (
	"fmt"
	"testing"
	"time"

	tu "github.com/chorusdns/chorus/test/testutil"
)

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

// TestJoinerNoticesPreemptTagPulls: an agent that announced its record
// before it joined (so to no one) sends its notices again after the join
// (Kick), and the members that learn of it through its version tag get
// the record from the notice instead of each dialling the joiner.
func TestJoinerNoticesPreemptTagPulls(t *testing.T) {
	const members = 30
	net, nodes := formedNet(t, members)
	net.beforeRun = func(n *memNode) { n.alone.Store(true) }
	joiner := net.add(1)[0]
	rec := joiner.change("web")
	tu.Eventually(t, 5*time.Second, func() error {
		if s := joiner.counter("notice_sent"); s != 1 {
			return fmt.Errorf("notice_sent %v before the join, want 1 (to no one)", s)
		}
		return nil
	})
	joiner.alone.Store(false)
	joiner.sync.Kick()
	converged(t, nodes, joiner.name, rec.Version, 10*time.Second)
	if s := joiner.counter("notice_sent"); s != 2 {
		t.Fatalf("notice_sent %v after the join, want 2 (sent again once)", s)
	}
	// Over the time every member's tag pull comes due (fanoutSpread +
	// jitter), anti-entropy exchanges may open a few streams to the
	// joiner; one pull per member would be 30.
	tu.Consistently(t, fanoutSpread+2*maxPullJitter, func() error {
		if got := joiner.served.Load(); got > 6 {
			return fmt.Errorf("members opened %d streams to the joiner, want a few (its notices carry the record)", got)
		}
		return nil
	})
}

// TestNoticeBeforeMembershipIsParked: a joiner's notices that reach
// members before its join does are parked and applied when the member
// appears, instead of being dropped and replaced by N−1 pulls; a parked
// notice never applies while its sender is no member.
func TestNoticeBeforeMembershipIsParked(t *testing.T) {
	const members = 20
	net, nodes := formedNet(t, members)
	net.beforeRun = func(n *memNode) { n.hidden.Store(true) }
	joiner := net.add(1)[0]
	rec := joiner.change("web")
	tu.Eventually(t, 5*time.Second, func() error {
		parked := 0.0
		for _, n := range nodes {
			parked += n.counter("notice_parked")
		}
		if parked != members {
			return fmt.Errorf("%v of %d members parked the joiner's notice", parked, members)
		}
		return nil
	})
	for _, n := range nodes {
		if v := n.store.Version(joiner.name); v != 0 {
			t.Fatalf("%s applied a notice of a node that is no member (version %d)", n.name, v)
		}
	}
	joiner.hidden.Store(false) // the join reaches everyone: aeLoop observes it
	converged(t, nodes, joiner.name, rec.Version, 10*time.Second)
	for _, n := range nodes {
		if r := n.rejected(rejNotMember); r != 0 {
			t.Fatalf("%s rejected %v notices as from no member", n.name, r)
		}
	}
	if got := joiner.served.Load(); got > 4 {
		t.Fatalf("members opened %d streams to the joiner, want a few (its parked notices carry the record)", got)
	}
}

// TestEarlyNoticesBounded: the parking table keeps the latest notice per
// sender, at most maxEarly senders, and forgets them after earlyTTL.
func TestEarlyNoticesBounded(t *testing.T) {
	var e earlyNotices
	now := time.Now()
	for i := range maxEarly {
		if !e.park(fmt.Sprintf("10.0.%d.%d:7946", i/256, i%256), []byte{1}, now) {
			t.Fatalf("notice %d not parked below the limit", i)
		}
	}
	if e.park("10.9.9.9:7946", []byte{1}, now) {
		t.Fatal("a notice parked past maxEarly")
	}
	if !e.park("10.0.0.1:7946", []byte{2}, now) {
		t.Fatal("a newer notice from a parked sender refused")
	}
	if b := e.take("10.0.0.1:7946", now); len(b) != 1 || b[0] != 2 {
		t.Fatalf("take: %v, want the latest notice", b)
	}
	if b := e.take("10.0.0.1:7946", now); b != nil {
		t.Fatalf("a notice taken twice: %v", b)
	}
	later := now.Add(earlyTTL + time.Second)
	if b := e.take("10.0.0.2:7946", later); b != nil {
		t.Fatal("a notice older than earlyTTL handed out")
	}
	if !e.park("10.9.9.9:7946", []byte{1}, later) {
		t.Fatal("expired notices not evicted for a new sender")
	}
}

// formedNet starts n agents, each with a record every other one holds.
func formedNet(t *testing.T, n int) (*memNet, []*memNode) {
	net := newMemNet(t)
	nodes := net.add(n)
	for _, m := range nodes {
		converged(t, nodes, m.name, m.change("svc").Version, 10*time.Second)
	}
	return net, nodes
}
