package replication

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chorusdns/chorus/catalog"
	tu "github.com/chorusdns/chorus/test/testutil"
)

// memNet is an in-memory network of Syncers, in the spirit of memberlist's
// MockNetwork: datagrams are delivered on goroutines of their own (so they
// may arrive out of order), streams are net.Pipe pairs, and faults are
// functions the test sets.
type memNet struct {
	t     *testing.T
	ctx   context.Context
	wg    sync.WaitGroup
	mu    sync.Mutex
	nodes map[string]*memNode // by gossip address
	// lose reports whether a datagram of type typ from → to is lost.
	lose atomic.Pointer[func(from, to string, typ byte) bool]
	// dup sends every datagram twice.
	dup atomic.Bool
	// noTags hides the version tags from every member list.
	noTags atomic.Bool
	// noKeys hides the record keys from every member list.
	noKeys atomic.Bool
	// beforeRun, when set, is called with each node add starts, between
	// creating its Syncer and running it.
	beforeRun func(*memNode)
}

// memNode is one agent of the network: its store, its syncer, and the
// version tag it has set.
type memNode struct {
	name, addr string
	net        *memNet
	store      *countingStore
	sync       *Syncer
	reg        *prometheus.Registry
	tag        atomic.Uint64
	pub        ed25519.PublicKey
	key        ed25519.PrivateKey
	// hung nodes accept streams and never answer them.
	hung atomic.Bool
	// dials counts the streams this node opened, served those opened
	// to it.
	dials, served atomic.Int64
	// alone nodes list no member but themselves (not joined yet);
	// hidden nodes are listed by no one else (their join has not
	// reached the others yet).
	alone, hidden atomic.Bool
}

// countingStore counts the catalog changes the syncer makes.
type countingStore struct {
	*catalog.Store
	updates atomic.Int64
}

func (s *countingStore) Update(fn func(tx *catalog.Tx)) {
	s.updates.Add(1)
	s.Store.Update(fn)
}

func newMemNet(t *testing.T) *memNet {
	ctx, cancel := context.WithCancel(context.Background())
	n := &memNet{t: t, ctx: ctx, nodes: map[string]*memNode{}}
	t.Cleanup(func() {
		cancel()
		n.wg.Wait()
	})
	return n
}

// add starts n agents named node0…; every agent knows every other.
func (n *memNet) add(count int) []*memNode {
	var out []*memNode
	for range count {
		n.mu.Lock()
		i := len(n.nodes)
		node := &memNode{name: fmt.Sprintf("node%d", i), addr: fmt.Sprintf("127.0.0.%d:7946", i+1), net: n,
			store: &countingStore{Store: catalog.NewStore()}, reg: prometheus.NewPedanticRegistry()}
		node.pub, node.key, _ = ed25519.GenerateKey(nil)
		n.nodes[node.addr] = node
		n.mu.Unlock()
		logger := slog.New(slog.NewTextHandler(tWriter{n.t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
		node.sync = New(node.name, node.store, nil, logger, NewMetrics(node.reg))
		node.sync.Attach(memMembers{node}, memEndpoint{node})
		if n.beforeRun != nil {
			n.beforeRun(node)
		}
		n.wg.Go(func() { node.sync.Run(n.ctx) })
		out = append(out, node)
	}
	for _, node := range n.all() {
		node.store.Update(func(tx *catalog.Tx) {
			for _, m := range n.all() {
				tx.SetMember(m.name, "127.0.0.1", catalog.MemberAlive)
			}
		})
	}
	return out
}

func (n *memNet) all() []*memNode {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*memNode, 0, len(n.nodes))
	for _, m := range n.nodes {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (n *memNet) node(addr string) *memNode {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[addr]
}

// change makes a new version of node's record with services named svcs and
// publishes it as the agent would: applied locally, then announced. The
// first sets the node's version tag, as an agent's start version is.
func (m *memNode) change(svcs ...string) *catalog.NodeRecord {
	rec := &catalog.NodeRecord{Node: catalog.Node{Name: m.name, Address: "127.0.0.1"}, Version: m.store.Version(m.name) + 1}
	for i, s := range svcs {
		rec.Services = rec.Services.Append(catalog.Service{ID: s, Name: s, Port: 1000 + i, Weights: catalog.DefaultWeights})
	}
	if err := rec.Sign(m.key); err != nil {
		panic(err)
	}
	if !m.store.ApplyRecord(rec) {
		panic("own record not applied")
	}
	m.tag.CompareAndSwap(0, rec.Version)
	m.sync.Announce(rec)
	return rec
}

func (m *memNode) counter(event string) float64 {
	return testutil.ToFloat64(m.sync.metrics.events.WithLabelValues(event))
}

func (m *memNode) rejected(reason string) float64 {
	return testutil.ToFloat64(m.sync.metrics.rejected.WithLabelValues(reason))
}

// memEndpoint is one node's Network.
type memEndpoint struct{ node *memNode }

func (e memEndpoint) WriteTo(b []byte, addr string) (time.Time, error) {
	n := e.node.net
	to := n.node(addr)
	if to == nil {
		return time.Now(), nil // nobody there: lost, as UDP would
	}
	typ := byte(0)
	if len(b) > 1 {
		typ = b[1]
	}
	if f := n.lose.Load(); f != nil && (*f)(e.node.addr, addr, typ) {
		return time.Now(), nil
	}
	copies := 1
	if n.dup.Load() {
		copies = 2
	}
	from, _ := net.ResolveUDPAddr("udp", e.node.addr)
	for range copies {
		buf := append([]byte(nil), b...)
		n.wg.Go(func() {
			// A little random delay reorders datagrams.
			time.Sleep(rand.N(2 * time.Millisecond))
			to.sync.HandlePacket(&memberlist.Packet{Buf: buf, From: from, Timestamp: time.Now()})
		})
	}
	return time.Now(), nil
}

func (e memEndpoint) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	n := e.node.net
	e.node.dials.Add(1)
	to := n.node(addr)
	if to == nil {
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	}
	to.served.Add(1)
	client, server := net.Pipe()
	if to.hung.Load() {
		n.wg.Go(func() {
			<-n.ctx.Done()
			server.Close()
		})
		return client, nil
	}
	n.wg.Go(func() { to.sync.HandleStream(server) })
	return client, nil
}

// memMembers is one node's view of the members: every node of the
// network, alive, with the version tag it set.
type memMembers struct{ node *memNode }

func (m memMembers) Members() []Member {
	var out []Member
	for _, o := range m.node.net.all() {
		if (m.node.alone.Load() || o.hidden.Load()) && o != m.node {
			continue
		}
		v := o.tag.Load()
		if m.node.net.noTags.Load() {
			v = 0
		}
		key := o.pub
		if m.node.net.noKeys.Load() {
			key = nil
		}
		out = append(out, Member{Name: o.name, Addr: o.addr, IP: "127.0.0.1", Status: catalog.MemberAlive, Version: v, Key: key})
	}
	return out
}

func (m memMembers) NumMembers() int   { return len(m.node.net.all()) }
func (m memMembers) LocalAddr() string { return m.node.addr }
func (m memMembers) Join(string) error { return nil }

// tWriter sends log lines to the test log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// converged waits until every node holds version v of owner's record.
func converged(t *testing.T, nodes []*memNode, owner string, v uint64, within time.Duration) {
	t.Helper()
	tu.Eventually(t, within, func() error {
		for _, n := range nodes {
			if got := n.store.Version(owner); got < v {
				return fmt.Errorf("%s holds version %d of %s, want %d", n.name, got, owner, v)
			}
		}
		return nil
	})
}

func TestNoticesReachEveryPeer(t *testing.T) {
	nodes := newMemNet(t).add(5)
	rec := nodes[0].change("web")
	converged(t, nodes, "node0", rec.Version, 2*time.Second)
	for _, n := range nodes[1:] {
		if n.counter("applied_notice") != 1 {
			t.Errorf("%s applied %g notices, want 1", n.name, n.counter("applied_notice"))
		}
	}
}

// TestAntiEntropyRepairsLostNotices loses every notice and hides the
// version tags: only anti-entropy (digest → vector exchange → pull) can
// carry the change.
func TestAntiEntropyRepairsLostNotices(t *testing.T) {
	net := newMemNet(t)
	lose := func(from, to string, typ byte) bool { return typ == pktNotice }
	net.lose.Store(&lose)
	net.noTags.Store(true)
	nodes := net.add(4)
	rec := nodes[0].change("quiet")
	converged(t, nodes, "node0", rec.Version, 10*time.Second)
	var repaired float64
	for _, n := range nodes {
		repaired += n.counter("ae_repair")
	}
	if repaired == 0 {
		t.Fatal("no anti-entropy repair counted")
	}
}

// TestConvergesUnderLossReorderingAndDuplicates: 30% of every kind of
// datagram lost, the rest duplicated and reordered, records changing on
// every node at once.
func TestConvergesUnderLossReorderingAndDuplicates(t *testing.T) {
	net := newMemNet(t)
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	lose := func(from, to string, typ byte) bool {
		mu.Lock()
		defer mu.Unlock()
		return rng.Float64() < 0.3
	}
	net.lose.Store(&lose)
	net.dup.Store(true)
	nodes := net.add(6)
	want := map[string]uint64{}
	for round := range 5 {
		for _, n := range nodes {
			want[n.name] = n.change("svc-" + strconv.Itoa(round)).Version
		}
	}
	for owner, v := range want {
		converged(t, nodes, owner, v, 15*time.Second)
	}
	// Duplicates and reordering never apply an older version over a newer.
	for _, n := range nodes {
		for owner, v := range want {
			if r := n.store.Record(owner); r.Version != v || r.Services.At(0).Name != "svc-4" {
				t.Fatalf("%s holds %s version %d (%s), want %d", n.name, owner, r.Version, r.Services.At(0).Name, v)
			}
		}
	}
}

// TestHungPeerDoesNotStallOthers: a peer that accepts streams and never
// answers them holds up no one else's replication.
func TestHungPeerDoesNotStallOthers(t *testing.T) {
	net := newMemNet(t)
	lose := func(from, to string, typ byte) bool { return typ == pktNotice } // every change must be pulled
	net.lose.Store(&lose)
	nodes := net.add(4)
	nodes[3].hung.Store(true)
	rec := nodes[0].change("web")
	converged(t, nodes[:3], "node0", rec.Version, 15*time.Second)
}

// TestNoticeFromAnotherAddressRejected: a notice for node1 must come from
// node1's gossip address; one from elsewhere is counted and dropped.
func TestNoticeFromAnotherAddressRejected(t *testing.T) {
	nodes := newMemNet(t).add(3)
	victim, forger := nodes[0], nodes[2]
	forged := &catalog.NodeRecord{Node: catalog.Node{Name: "node1", Address: "203.0.113.66"}, Version: 1 << 40,
		Services: catalog.ListOf([]catalog.Service{{ID: "evil", Name: "evil", Port: 6666, Weights: catalog.DefaultWeights}})}
	enc, err := catalog.EncodeRecord(forged)
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := forger.sync.packet(pktNotice, noticeBody("node1", forged.Version, enc))
	if err != nil {
		t.Fatal(err)
	}
	memEndpoint{forger}.WriteTo(pkt, victim.addr)
	// A corrupt notice is rejected too.
	memEndpoint{forger}.WriteTo(append([]byte{chorusMagic, pktNotice}, "\x05node1garbage"...), victim.addr)
	tu.Eventually(t, 2*time.Second, func() error {
		if victim.counter("rejected") == 0 {
			return fmt.Errorf("forged notice not counted as rejected")
		}
		return nil
	})
	if v := victim.store.Version("node1"); v != 0 {
		t.Fatalf("forged record applied: version %d", v)
	}
}

// TestBurstAppliedAsOneChange: records that arrive together are applied
// in one catalog change, not one each.
func TestBurstAppliedAsOneChange(t *testing.T) {
	store := &countingStore{Store: catalog.NewStore()}
	s := New("self", store, nil, slog.New(slog.DiscardHandler), NewMetrics(prometheus.NewPedanticRegistry()))
	const burst = 200
	pub, key, _ := ed25519.GenerateKey(nil)
	for i := range burst {
		rec := &catalog.NodeRecord{Node: catalog.Node{Name: fmt.Sprintf("n%03d", i), Address: "127.0.0.1"}, Version: 1}
		rec.Sign(key)
		s.keys.pin(Member{Name: rec.Node.Name, Status: catalog.MemberAlive, Key: pub})
		s.queueApply(rec, "applied_pull")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.applyLoop(ctx) })
	defer func() { cancel(); wg.Wait() }()
	tu.Eventually(t, 2*time.Second, func() error {
		if n := len(store.Unmembered()); n != burst {
			return fmt.Errorf("%d of %d records applied", n, burst)
		}
		return nil
	})
	if u := store.updates.Load(); u != 1 {
		t.Fatalf("a burst of %d records took %d catalog changes, want 1", burst, u)
	}
}

// TestPullBacklogDrainsWithinOneJitter queues 200 pulls, each spread by
// a jitter of up to 400 ms drawn when queued, as a joining agent queues
// one per member: they must drain in about one jitter, not one jitter per
// job per worker (10 s here).
func TestPullBacklogDrainsWithinOneJitter(t *testing.T) {
	a := newMemNet(t).add(1)[0]
	start := time.Now()
	const jobs = 200
	for i := range jobs {
		// Nobody listens at 127.0.0.99: every pull fails at once.
		a.sync.jobs <- pullJob{addr: "127.0.0.99:7946", nodes: map[string]uint64{fmt.Sprintf("ghost%d", i): 1},
			notBefore: start.Add(rand.N(400 * time.Millisecond))}
	}
	tu.Eventually(t, 4*time.Second, func() error {
		if n := a.counter("pull_failed"); n < jobs {
			return fmt.Errorf("%g of %d pulls done", n, jobs)
		}
		return nil
	})
	t.Logf("%d jittered pulls done in %v", jobs, time.Since(start))
}
