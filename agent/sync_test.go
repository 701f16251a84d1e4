package agent

import (
	"fmt"
	"github.com/chorusdns/chorus/agent/gossip"
	"strconv"
	"testing"
	"time"

	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/test/testutil"
)

// TestChangeRightAfterChangeSendsNotice makes a change while the version
// tag of the previous one is still gossiping: its notice must go out at
// once, not when Serf's SetTags returns. Slow gossip stands for a large
// cluster, where retransmitting a tag update takes seconds: SetTags then
// blocks up to Serf's 5 s BroadcastTimeout. Anti-entropy would repair the
// change within a couple of seconds anyway, so the peer must have applied
// it from its notice.
func TestChangeRightAfterChangeSendsNotice(t *testing.T) {
	agents := startCluster(t, 2, func(i int, c *Config) {
		c.Gossip.GossipInterval = 5 * time.Second
		c.Gossip.ProbeInterval = 5 * time.Second
		c.Gossip.ProbeTimeout = 2 * time.Second
	})
	owner, peer := agents[0], agents[1]
	const within = 2 * time.Second // well under the 5 s broadcast timeout
	for i := range 3 {
		// The first change reaches the peer; its tag update is now in
		// flight for seconds.
		notices := counterValue(t, peer, "applied_notice")
		mustDo(t, owner, "PUT", "/v1/agent/service/register", fmt.Sprintf(`{"Name":"first%d","Port":1}`, i))
		v1 := owner.Store().Version("node0")
		testutil.Eventually(t, 5*time.Second, func() error {
			if v := peer.Store().Version("node0"); v < v1 {
				return fmt.Errorf("peer holds version %d of node0, want %d", v, v1)
			}
			return nil
		})
		notices = counterValue(t, peer, "applied_notice") - notices

		// The second change, right after.
		before := counterValue(t, peer, "applied_notice")
		mustDo(t, owner, "PUT", "/v1/agent/service/register", fmt.Sprintf(`{"Name":"second%d","Port":2}`, i))
		start := time.Now()
		v2 := owner.Store().Version("node0")
		testutil.Eventually(t, within, func() error {
			if v := peer.Store().Version("node0"); v < v2 {
				return fmt.Errorf("peer holds version %d of node0, want %d", v, v2)
			}
			if n := counterValue(t, peer, "applied_notice"); n <= before {
				return fmt.Errorf("version %d not applied from a notice (applied_notice %g)", v2, n)
			}
			return nil
		})
		t.Logf("round %d: second change applied from its notice in %v (first from %g notice)", i, time.Since(start), notices)
	}
}

// TestJoinsNodeThatReplicationKnowsAndGossipDoesNot: an agent whose Serf
// has never heard of a node, though its catalog holds the node's record
// (the gap of bug 3 in BENCHMARKS.md), joins the node at the gossip
// address the record carries, and then answers for it.
func TestJoinsNodeThatReplicationKnowsAndGossipDoesNot(t *testing.T) {
	a := startAgent(t, testConfig(t, "node-a"))
	x := startAgent(t, testConfig(t, "node-x"))
	mustDo(t, x, "PUT", "/v1/agent/service/register", `{"Name":"lonely","Port":1}`)
	testutil.Eventually(t, 5*time.Second, func() error {
		if r := x.Store().Record("node-x"); r == nil || r.Services.Len() == 0 {
			return fmt.Errorf("x has not published its service")
		}
		return nil
	})
	rec := x.Store().Record("node-x")
	if rec.Gossip != x.SerfAddr() {
		t.Fatalf("record carries gossip address %q, want %q", rec.Gossip, x.SerfAddr())
	}
	// What an anti-entropy pull from a third agent would do.
	a.Store().ApplyRecord(rec)
	if n := len(a.gossip.Members()); n != 1 {
		t.Fatalf("a's Serf lists %d members before the repair", n)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := dnsCount(t, a, "lonely"); n != 1 {
			return fmt.Errorf("a answers %d instances of lonely", n)
		}
		return nil
	})
	if counterValue(t, a, "member_join") == 0 {
		t.Fatal("member_join not counted")
	}
}

// TestConfigServiceStartPublishesTaggedRecord: an agent that starts with
// a service from its config publishes, once Serf is up, a record that
// carries its gossip address, sets its version tag to that record's
// version and sends it to a peer, which answers for the service without
// any later change. (Config services are loaded before Serf exists; a
// record built then used to take the version, so the record Start
// published was refused, never announced and never tagged.)
func TestConfigServiceStartPublishesTaggedRecord(t *testing.T) {
	peer := startAgent(t, testConfig(t, "peer"))
	cfg := testConfig(t, "cfgsvc")
	cfg.Services = []local.ServiceDefinition{{Name: "fromconfig", Port: 7000}}
	a := startAgent(t, cfg)
	if _, err := a.Join([]string{peer.SerfAddr()}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		rec := a.Store().Record("cfgsvc")
		if rec == nil {
			return fmt.Errorf("no own record in the catalog")
		}
		if rec.Gossip != a.SerfAddr() {
			return fmt.Errorf("own record carries gossip address %q, want %q", rec.Gossip, a.SerfAddr())
		}
		if tag := a.gossip.LocalMember().Tags[gossip.TagVersion]; tag != strconv.FormatUint(rec.Version, 10) {
			return fmt.Errorf("version tag %q, record version %d", tag, rec.Version)
		}
		return nil
	})
	waitDNS(t, []*Agent{peer}, "fromconfig", 1, 10*time.Second)
	// The tag keeps the start version: later changes travel by notices.
	tag := a.gossip.LocalMember().Tags[gossip.TagVersion]
	mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"later","Port":7001}`)
	waitDNS(t, []*Agent{peer}, "later", 1, 10*time.Second)
	if got := a.gossip.LocalMember().Tags[gossip.TagVersion]; got != tag {
		t.Fatalf("version tag changed from %s to %s on a registration", tag, got)
	}
}
