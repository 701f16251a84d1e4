package replication

import (
	"crypto/ed25519"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/chorusdns/chorus/catalog"
	tu "github.com/chorusdns/chorus/test/testutil"
)

// bigChange publishes a version of m's record with n services, the
// service "svc-0000" on port.
func (m *memNode) bigChange(n, port int) *catalog.NodeRecord {
	rec := &catalog.NodeRecord{Node: catalog.Node{Name: m.name, Address: "127.0.0.1"}, Version: m.store.Version(m.name) + 1}
	for i := range n {
		p := 1000 + i
		if i == 0 {
			p = port
		}
		id := fmt.Sprintf("svc-%04d", i)
		rec.Services = rec.Services.Append(catalog.Service{ID: id, Name: "web", Port: p, Weights: catalog.DefaultWeights})
	}
	if err := rec.Sign(m.key); err != nil {
		panic(err)
	}
	if !m.store.ApplyRecord(rec) {
		panic("own record not applied")
	}
	m.sync.Announce(rec)
	return rec
}

// TestDeltaNoticesCarryTheChange: once peers hold a large record, a
// change of one service reaches them as an inline delta, which they
// apply (and whose signature they check) without pulling.
func TestDeltaNoticesCarryTheChange(t *testing.T) {
	nodes := newMemNet(t).add(3)
	owner := nodes[0]
	first := owner.bigChange(500, 1)
	converged(t, nodes, "node0", first.Version, 3*time.Second)
	for i := 2; i <= 4; i++ {
		rec := owner.bigChange(500, i)
		converged(t, nodes, "node0", rec.Version, 3*time.Second)
	}
	for _, n := range nodes[1:] {
		if got := n.counter("applied_delta"); got < 1 {
			t.Errorf("%s applied %g deltas, want at least 1", n.name, got)
		}
		if got := n.rejected(rejSignature); got != 0 {
			t.Errorf("%s refused %g signatures", n.name, got)
		}
		held := n.store.Record("node0")
		if held.Services.At(0).Port != 4 || held.Services.Len() != 500 {
			t.Errorf("%s holds port %d, %d services", n.name, held.Services.At(0).Port, held.Services.Len())
		}
	}
	if owner.counter("delta_sent") < 1 {
		t.Error("the owner sent no delta")
	}
}

// TestDeltaAgainstAnotherVersionPullsTheRecord: a peer that missed a
// version cannot apply the next delta; it pulls the whole record.
func TestDeltaAgainstAnotherVersionPullsTheRecord(t *testing.T) {
	net := newMemNet(t)
	nodes := net.add(2)
	owner, peer := nodes[0], nodes[1]
	first := owner.bigChange(300, 1)
	converged(t, nodes, "node0", first.Version, 3*time.Second)
	lose := func(from, to string, typ byte) bool { return typ == pktNotice }
	net.lose.Store(&lose)
	missed := owner.bigChange(300, 2)
	tu.Eventually(t, 2*time.Second, func() error {
		if owner.counter("announce") < 2 {
			return fmt.Errorf("version %d not announced yet", missed.Version)
		}
		return nil
	})
	net.lose.Store(nil)
	rec := owner.bigChange(300, 3)
	converged(t, nodes, "node0", rec.Version, 5*time.Second)
	if peer.counter("delta_base_missing") < 1 {
		t.Error("the peer never found its version behind the delta's base")
	}
	if got := peer.store.Record("node0").Services.At(0).Port; got != 3 {
		t.Fatalf("peer holds port %d, want 3", got)
	}
}

// TestForgedDeltaRefused: a delta from the owner's address against the
// version the victim holds, but signed by another key or altered after
// signing, is refused; the owner's own next change still applies.
func TestForgedDeltaRefused(t *testing.T) {
	nodes := newMemNet(t).add(3)
	victim, owner := nodes[0], nodes[1]
	base := owner.bigChange(100, 1)
	converged(t, nodes, "node1", base.Version, 3*time.Second)
	_, forger, _ := ed25519.GenerateKey(nil)
	forged := &catalog.NodeRecord{Node: base.Node, Version: base.Version + 1}
	forged.Services = catalog.ListOf(base.Services.Slice())
	forged.Services.At(0).Port = 6666
	if err := forged.Sign(forger); err != nil {
		t.Fatal(err)
	}
	d, err := catalog.EncodeDelta(base, forged)
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := nodes[2].sync.packet(pktNotice, noticeBody("node1", forged.Version, d))
	if err != nil {
		t.Fatal(err)
	}
	ua, _ := net.ResolveUDPAddr("udp", owner.addr)
	victim.sync.HandlePacket(&memberlist.Packet{Buf: pkt, From: ua, Timestamp: time.Now()})
	tu.Eventually(t, 2*time.Second, func() error {
		if n := victim.rejected(rejSignature); n != 1 {
			return fmt.Errorf("%g bad signatures counted, want 1", n)
		}
		return nil
	})
	if got := victim.store.Record("node1").Services.At(0).Port; got != 1 {
		t.Fatalf("forged delta applied: port %d", got)
	}
	rec := owner.bigChange(100, 2)
	converged(t, nodes, "node1", rec.Version, 3*time.Second)
}
