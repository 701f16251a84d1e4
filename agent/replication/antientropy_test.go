package replication

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chorusdns/chorus/catalog"
	tu "github.com/chorusdns/chorus/test/testutil"
)

// bulkRecords makes n signed records of nodes bulk0000… that are no
// members of the network, all signed with key.
func bulkRecords(n int, key ed25519.PrivateKey) []*catalog.NodeRecord {
	out := make([]*catalog.NodeRecord, n)
	for i := range out {
		rec := &catalog.NodeRecord{Node: catalog.Node{Name: fmt.Sprintf("bulk%05d", i), Address: "10.0.0.1"}, Version: uint64(1000 + i),
			Services: catalog.ListOf([]catalog.Service{{ID: "web", Name: "web", Port: 80, Weights: catalog.DefaultWeights}})}
		if err := rec.Sign(key); err != nil {
			panic(err)
		}
		out[i] = rec
	}
	return out
}

// holdAll applies recs to store as records of alive members (the
// version vector holds members' records only).
func holdAll(store interface{ Update(func(*catalog.Tx)) }, recs []*catalog.NodeRecord) {
	store.Update(func(tx *catalog.Tx) {
		for _, r := range recs {
			tx.SetMember(r.Node.Name, r.Node.Address, catalog.MemberAlive)
			tx.ApplyRecord(r)
		}
	})
}

// memberAll makes recs' nodes alive members in store, holding no record.
func memberAll(store interface{ Update(func(*catalog.Tx)) }, recs []*catalog.NodeRecord) {
	store.Update(func(tx *catalog.Tx) {
		for _, r := range recs {
			tx.SetMember(r.Node.Name, r.Node.Address, catalog.MemberAlive)
		}
	})
}

func (m *memNode) traffic(kind string) (msgs, bytes float64) {
	for _, d := range []string{dirSent, dirReceived} {
		msgs += testutil.ToFloat64(m.sync.metrics.messages.WithLabelValues(kind, d))
		bytes += testutil.ToFloat64(m.sync.metrics.bytes.WithLabelValues(kind, d))
	}
	return msgs, bytes
}

func TestTreeRootsFollowVectors(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	a, b := catalog.NewStore(), catalog.NewStore()
	recs := bulkRecords(500, key)
	holdAll(a, recs)
	holdAll(b, recs)
	ta, tb := buildTree(a.Snapshot()), buildTree(b.Snapshot())
	if ta.root() != tb.root() || len(ta.entries) != 500 {
		t.Fatalf("equal vectors: roots %x %x, %d entries", ta.root(), tb.root(), len(ta.entries))
	}
	newer := *b.Record("bulk00042")
	newer.Version++
	holdAll(b, []*catalog.NodeRecord{&newer})
	tb = buildTree(b.Snapshot())
	if ta.root() == tb.root() {
		t.Fatal("one newer version left the roots equal")
	}
	// Exactly one node differs on every level: the path to bulk00042's leaf.
	leaf := leafOf("bulk00042")
	for l := 1; l <= treeDepth; l++ {
		var differ []int
		for i := range ta.sums[l] {
			if ta.sums[l][i] != tb.sums[l][i] {
				differ = append(differ, i)
			}
		}
		if want := leaf >> (4 * (treeDepth - l)); len(differ) != 1 || differ[0] != want {
			t.Fatalf("level %d: nodes %v differ, want [%d]", l, differ, want)
		}
	}
	if got := tb.leafEntries([]uint16{uint16(leaf)}); !containsEntry(got, vecEntry{"bulk00042", newer.Version}) {
		t.Fatalf("leaf %d holds %v", leaf, got)
	}
}

func containsEntry(es []vecEntry, e vecEntry) bool {
	for _, x := range es {
		if x == e {
			return true
		}
	}
	return false
}

// TestOneDifferenceCostsHundredsOfBytes: two agents hold the same 3,000
// records but one; notices are lost and tags hidden, so anti-entropy
// carries the change, and its tree exchange costs a few hundred bytes,
// not the vector (≈ 60 KB here).
func TestOneDifferenceCostsHundredsOfBytes(t *testing.T) {
	net := newMemNet(t)
	lose := func(from, to string, typ byte) bool { return typ == pktNotice }
	net.lose.Store(&lose)
	net.noTags.Store(true)
	nodes := net.add(2)
	_, key, _ := ed25519.GenerateKey(nil)
	recs := bulkRecords(3000, key)
	for _, n := range nodes {
		holdAll(n.store, recs)
	}
	rec := nodes[0].change("web")
	converged(t, nodes, "node0", rec.Version, 15*time.Second)
	var exchanges, bytes float64
	for _, n := range nodes {
		exchanges += n.counter("ae_exchange")
		_, b := n.traffic(kindTree)
		bytes += b
	}
	if exchanges == 0 {
		t.Fatal("no tree exchange counted")
	}
	// Each exchange is counted by its client; its bytes by both ends.
	per := bytes / 2 / exchanges
	t.Logf("%g exchanges, %.0f bytes each (both directions)", exchanges, per)
	if per > 1000 {
		t.Fatalf("a tree exchange for one difference cost %.0f bytes, want < 1000", per)
	}
	if vec := len(encodeVector(vectorMsg{Name: "node0", Vector: nodes[1].sync.tree().vector()})); per*10 > float64(vec) {
		t.Fatalf("a tree exchange cost %.0f bytes, the compressed vector %d", per, vec)
	}
}

// TestStaleAgentCatchesUpInOneExchange: an agent that holds none of
// 1,000 records learns of every one in a single tree exchange.
func TestStaleAgentCatchesUpInOneExchange(t *testing.T) {
	net := newMemNet(t)
	// No notices, no digests, no tags: only the exchange below.
	lose := func(from, to string, typ byte) bool { return true }
	net.lose.Store(&lose)
	net.noTags.Store(true)
	nodes := net.add(2)
	full, stale := nodes[0], nodes[1]
	pub, key, _ := ed25519.GenerateKey(nil)
	recs := bulkRecords(1000, key)
	holdAll(full.store, recs)
	memberAll(stale.store, recs)
	for _, r := range recs {
		stale.sync.keys.pin(Member{Name: r.Node.Name, Status: catalog.MemberAlive, Key: pub})
	}
	if _, err := stale.sync.exchangeTree(context.Background(), full.addr); err != nil {
		t.Fatal(err)
	}
	if got := stale.counter("ae_repair"); got != float64(len(recs)) {
		t.Fatalf("one exchange found %g of %d missing records", got, len(recs))
	}
	_, bytes := stale.traffic(kindTree)
	t.Logf("catch-up of %d records: %.0f tree bytes", len(recs), bytes)
	// The pulls it queued bring them (a pull cut short by its deadline,
	// as under the race detector, is asked again by the next rounds).
	net.lose.Store(nil)
	tu.Eventually(t, 60*time.Second, func() error {
		for _, r := range recs {
			if stale.store.Version(r.Node.Name) != r.Version {
				return fmt.Errorf("%s not caught up (exchanges %g, repairs %g, pulls failed %g, rejected %g)", r.Node.Name,
					stale.counter("ae_exchange"), stale.counter("ae_repair"), stale.counter("pull_failed"), stale.counter("rejected"))
			}
		}
		return nil
	})
}

// TestInFlightDifferenceCostsNoExchange: a digest that differs is
// answered a recheck later with the root of then; the two agents agree
// by then, so no exchange follows.
func TestInFlightDifferenceCostsNoExchange(t *testing.T) {
	nodes := newMemNet(t).add(2)
	a, b := nodes[0], nodes[1]
	// A digest from a with a root that differs from b's (a change in flight).
	pkt, err := a.sync.packet(pktDigest, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	if err != nil {
		t.Fatal(err)
	}
	digestsBefore := testutil.ToFloat64(a.sync.metrics.messages.WithLabelValues(kindDigest, dirReceived))
	memEndpoint{a}.WriteTo(pkt, b.addr)
	tu.Eventually(t, 5*time.Second, func() error {
		if b.counter("ae_recheck") == 0 {
			return fmt.Errorf("b sent no final digest")
		}
		if testutil.ToFloat64(a.sync.metrics.messages.WithLabelValues(kindDigest, dirReceived)) == digestsBefore {
			return fmt.Errorf("a received no digest")
		}
		return nil
	})
	if n := a.counter("ae_exchange") + b.counter("ae_exchange"); n != 0 {
		t.Fatalf("%g exchanges between agents that agree", n)
	}
}

// TestTreeExchangeServesBothWays: each side of an exchange pulls what
// the other holds newer.
func TestTreeExchangeServesBothWays(t *testing.T) {
	net := newMemNet(t)
	lose := func(from, to string, typ byte) bool { return true }
	net.lose.Store(&lose)
	net.noTags.Store(true)
	nodes := net.add(2)
	a, b := nodes[0], nodes[1]
	ra, rb := a.change("a"), b.change("b")
	if _, err := a.sync.exchangeTree(context.Background(), b.addr); err != nil {
		t.Fatal(err)
	}
	converged(t, nodes, "node0", ra.Version, 10*time.Second)
	converged(t, nodes, "node1", rb.Version, 10*time.Second)
}

// TestPullNewerSplitsJobs: more differences than one pull may name are
// queued as several pulls at once, not left to later rounds.
func TestPullNewerSplitsJobs(t *testing.T) {
	s := New("self", catalog.NewStore(), nil, slog.New(slog.DiscardHandler), NewMetrics(prometheus.NewPedanticRegistry()))
	s.Attach(fixedMembers{{Name: "self", Addr: "127.0.0.1:1", Status: catalog.MemberAlive}}, nowhere{})
	var es []vecEntry
	for i := range maxPullNames + 100 {
		es = append(es, vecEntry{fmt.Sprintf("n%05d", i), 1})
	}
	s.pullNewer("127.0.0.2:1", es)
	if len(s.jobs) != 2 {
		t.Fatalf("%d pull jobs queued, want 2", len(s.jobs))
	}
	total := 0
	for range 2 {
		j := <-s.jobs
		if len(j.nodes) > maxPullNames {
			t.Fatalf("a job of %d nodes", len(j.nodes))
		}
		total += len(j.nodes)
	}
	if total != len(es) {
		t.Fatalf("%d of %d nodes queued", total, len(es))
	}
}

// recordingNet records the addresses datagrams are sent to.
type recordingNet struct {
	nowhere
	mu   sync.Mutex
	sent []string
}

func (r *recordingNet) WriteTo(b []byte, addr string) (time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, addr)
	return time.Now(), nil
}

func TestFanoutBatch(t *testing.T) {
	for _, tc := range []struct{ peers, want int }{{1, 64}, {299, 64}, {3200, 64}, {10000, 200}, {60000, 1200}} {
		if got := fanoutBatch(tc.peers); got != tc.want {
			t.Errorf("fanoutBatch(%d) = %d, want %d", tc.peers, got, tc.want)
		}
	}
}

// TestFanoutPaced: the first fanoutBurst notices leave at once, the rest
// only on later ticks; a newer version ends the round.
func TestFanoutPaced(t *testing.T) {
	members := fixedMembers{{Name: "self", Addr: "127.0.0.1:1", Status: catalog.MemberAlive}}
	for i := range 200 {
		members = append(members, Member{Name: fmt.Sprintf("p%d", i), Addr: fmt.Sprintf("127.0.1.%d:1", i), Status: catalog.MemberAlive})
	}
	rec := &catalog.NodeRecord{Node: catalog.Node{Name: "self", Address: "127.0.0.1"}, Version: 5}
	enc, _ := catalog.EncodeRecord(rec)
	newSyncer := func() (*Syncer, *recordingNet) {
		s := New("self", catalog.NewStore(), nil, slog.New(slog.DiscardHandler), NewMetrics(prometheus.NewPedanticRegistry()))
		n := &recordingNet{}
		s.Attach(members, n)
		return s, n
	}

	t.Run("all", func(t *testing.T) {
		s, n := newSyncer()
		s.latest.Store(rec)
		s.sendNotices(context.Background(), rec, enc)
		seen := map[string]bool{}
		for _, a := range n.sent {
			seen[a] = true
		}
		if len(n.sent) != 200 || len(seen) != 200 {
			t.Fatalf("%d notices to %d peers, want 200", len(n.sent), len(seen))
		}
		if got := testutil.ToFloat64(s.metrics.messages.WithLabelValues(kindNotice, dirSent)); got != 200 {
			t.Fatalf("%g notices counted", got)
		}
	})
	t.Run("first burst at once", func(t *testing.T) {
		s, n := newSyncer()
		s.latest.Store(rec)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // no tick is waited for
		s.sendNotices(ctx, rec, enc)
		if len(n.sent) != fanoutBurst {
			t.Fatalf("%d notices before the first tick, want %d", len(n.sent), fanoutBurst)
		}
	})
	t.Run("newer version ends the round", func(t *testing.T) {
		s, n := newSyncer()
		newer := *rec
		newer.Version++
		s.latest.Store(&newer)
		s.sendNotices(context.Background(), rec, enc)
		if len(n.sent) != fanoutBurst {
			t.Fatalf("%d notices of a superseded version, want %d", len(n.sent), fanoutBurst)
		}
	})
}

// TestTrafficCounted: a change's notices and the digests count in
// chorus_sync_messages_total and chorus_sync_bytes_total.
func TestTrafficCounted(t *testing.T) {
	nodes := newMemNet(t).add(3)
	rec := nodes[0].change("web")
	converged(t, nodes, "node0", rec.Version, 5*time.Second)
	if got := testutil.ToFloat64(nodes[0].sync.metrics.messages.WithLabelValues(kindNotice, dirSent)); got != 2 {
		t.Fatalf("owner counted %g notices sent, want 2", got)
	}
	tu.Eventually(t, 5*time.Second, func() error {
		for _, n := range nodes[1:] {
			if m, b := n.traffic(kindNotice); m != 1 || b < 50 {
				return fmt.Errorf("%s counted %g notices, %g bytes", n.name, m, b)
			}
		}
		if m, _ := nodes[0].traffic(kindDigest); m == 0 {
			return fmt.Errorf("no digest counted")
		}
		return nil
	})
}
