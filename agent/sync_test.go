package agent

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/test/testutil"
)

// TestForgedNoticeRejected sends a notice for node1, carrying a forged
// record, from an address that is not node1's: it must be rejected and
// counted, and the catalog must keep node1's real record.
func TestForgedNoticeRejected(t *testing.T) {
	agents := startCluster(t, 2, nil)
	mustDo(t, agents[1], "PUT", "/v1/agent/service/register", `{"Name":"real","Port":1}`)
	waitDNS(t, agents, "real", 1, 5*time.Second)
	before := agents[0].Store().Version("node1")

	forged := &catalog.NodeRecord{Node: catalog.Node{Name: "node1", Address: "203.0.113.66"}, Version: before + 1000,
		Services: []catalog.Service{{ID: "evil", Name: "evil", Port: 6666, Weights: catalog.DefaultWeights}}}
	enc, err := catalog.EncodeRecord(forged)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte{byte(len("node1"))}
	body = append(body, "node1"...)
	body = binary.BigEndian.AppendUint64(body, forged.Version)
	body = append(body, enc...)
	pkt, err := agents[0].sync.packet(pktNotice, body)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", agents[0].SerfAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		c.Write(pkt)
	}
	// A corrupt record through the same path is rejected too.
	c.Write(append([]byte{chorusMagic, pktNotice}, []byte("\x05node1garbage-garbage")...))

	deadline := time.Now().Add(3 * time.Second)
	for counterValue(t, agents[0], "rejected") == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if counterValue(t, agents[0], "rejected") == 0 {
		t.Fatal("forged notice not counted as rejected")
	}
	if v := agents[0].Store().Version("node1"); v != before {
		t.Fatalf("forged record applied: version %d → %d", before, v)
	}
	if dnsCount(t, agents[0], "evil") != 0 {
		t.Fatal("forged service answered")
	}
	for _, rec := range []*catalog.NodeRecord{agents[0].Store().Record("node1")} {
		for _, s := range rec.Services {
			if strings.Contains(s.Name, "evil") {
				t.Fatal("forged service in the catalog")
			}
		}
	}
}

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

// TestPullBacklogDrainsWithinOneJitter queues 200 pulls, each spread by
// a jitter of up to 400 ms drawn when queued, as a joining agent queues
// one per member: they must drain in about one jitter, not one jitter per
// job per worker (10 s here).
func TestPullBacklogDrainsWithinOneJitter(t *testing.T) {
	a := startCluster(t, 1, nil)[0]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // every pull fails at once and is counted
	before := counterValue(t, a, "pull_failed")
	start := time.Now()
	const jobs = 200
	for i := range jobs {
		a.sync.jobs <- pullJob{addr: closed, nodes: map[string]uint64{fmt.Sprintf("ghost%d", i): 1},
			notBefore: start.Add(rand.N(400 * time.Millisecond))}
	}
	testutil.Eventually(t, 4*time.Second, func() error {
		if n := counterValue(t, a, "pull_failed") - before; n < jobs {
			return fmt.Errorf("%g of %d pulls done", n, jobs)
		}
		return nil
	})
	t.Logf("%d jittered pulls done in %v", jobs, time.Since(start))
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
		if r := x.Store().Record("node-x"); r == nil || len(r.Services) == 0 {
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
	if n := len(a.Members()); n != 1 {
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
