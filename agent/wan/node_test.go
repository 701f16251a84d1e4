package wan

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/chorusdns/chorus/catalog"
)

// A summary that is not confirmed is marked stale after StaleAfter and
// still answered from; it is dropped after ReconnectTimeout; a newer
// version replaces it and an older one does not.
func TestReplicaStaleAndExpiry(t *testing.T) {
	st := catalog.NewStore()
	n := New(Config{Datacenter: "dc1", StaleAfter: 30 * time.Second, ReconnectTimeout: 72 * time.Hour}, st, nil, nil)
	now := time.UnixMilli(1_000_000_000)
	n.now = func() time.Time { return now }
	s := sampleSummary()
	enc, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !n.acceptEncoded(entry{DC: "dc2", V: s.Version, C: now.UnixMilli()}, enc, "lan") {
		t.Fatal("a valid summary was refused")
	}
	remote := func() *catalog.RemoteDatacenter {
		r, _ := st.Snapshot().Remote("dc2")
		return r
	}
	if r := remote(); r == nil || r.Stale || r.Version != s.Version {
		t.Fatalf("after accept: %+v", r)
	}
	if _, ok := remote().Snapshot.Service("web"); !ok {
		t.Fatal("the remote catalog has no web")
	}

	// An older version changes nothing.
	old := sampleSummary()
	old.Version = s.Version - 1
	oenc, _ := old.Encode()
	n.acceptEncoded(entry{DC: "dc2", V: old.Version, C: now.UnixMilli()}, oenc, "lan")
	if remote().Version != s.Version {
		t.Fatal("an older summary replaced a newer one")
	}

	now = now.Add(31 * time.Second)
	n.age()
	if r := remote(); r == nil || !r.Stale {
		t.Fatalf("31 s unconfirmed: %+v, want stale", r)
	}
	// A confirmation of the same version makes it fresh again.
	n.confirm(entry{DC: "dc2", V: s.Version, C: now.UnixMilli()})
	if remote().Stale {
		t.Fatal("confirmed, still stale")
	}
	now = now.Add(72*time.Hour + time.Second)
	n.age()
	if r := remote(); r != nil {
		t.Fatalf("after the reconnect timeout: %+v, want dropped", r)
	}
}

// This datacenter's own summary is never taken as a remote one.
func TestOwnDatacenterIgnored(t *testing.T) {
	st := catalog.NewStore()
	n := New(Config{Datacenter: "dc2"}, st, nil, nil)
	s := sampleSummary()
	enc, _ := s.Encode()
	n.acceptEncoded(entry{DC: "dc2", V: s.Version, C: 1}, enc, "lan")
	if len(st.Snapshot().Remotes()) != 0 {
		t.Fatal("own datacenter stored as remote")
	}
}

type fakePlane struct{ peers []Peer }

func (p fakePlane) Peers() []Peer                              { return p.peers }
func (fakePlane) Send(string, []byte) error                    { return nil }
func (fakePlane) Dial(string, time.Duration) (net.Conn, error) { return nil, errors.New("no network") }

// A speaker whose own datacenter's summary is held elsewhere at a higher
// version (a previous speaker's clock ran ahead) numbers its next summary
// above it; a version far beyond its clock is ignored.
func TestSpeakerVersionFloor(t *testing.T) {
	st := catalog.NewStore()
	st.ApplyRecord(&catalog.NodeRecord{Node: catalog.Node{Name: "n1", Address: "10.1.0.1", Datacenter: "dc1"}, Version: 1,
		Services: catalog.ListOf([]catalog.Service{{ID: "web", Name: "web", Weights: catalog.DefaultWeights}})})
	st.SetMember("n1", "10.1.0.1", catalog.MemberAlive)
	n := New(Config{Datacenter: "dc1"}, st, nil, nil)
	now := time.UnixMilli(1_000_000_000)
	n.now = func() time.Time { return now }
	n.SetWAN(fakePlane{peers: []Peer{{Name: "r.dc2", Addr: "10.2.0.1:8302", DC: "dc2"}}})
	n.buildOwn(st.Snapshot())
	first := n.Own().Version
	if first != uint64(now.UnixMilli()) {
		t.Fatalf("first version %d, want the clock %d", first, now.UnixMilli())
	}
	notice := func(held, hash uint64) {
		s := sampleSummary()
		enc, _ := s.Encode()
		m := message{E: []entry{{DC: "dc2", V: s.Version, C: 1}}, S: enc, H: []entry{{DC: "dc1", V: held, X: hash}}}
		pkt, err := n.packet(kindNotice, m)
		if err != nil {
			t.Fatal(err)
		}
		n.HandleWANPacket(&memberlist.Packet{Buf: pkt, From: &net.UDPAddr{IP: net.IPv4(10, 2, 0, 1), Port: 8302}})
	}
	// Another speaker's summary of the same content, numbered higher: no
	// outbidding (two speakers would otherwise take turns for ever).
	n.mu.Lock()
	same := n.ownHash
	n.mu.Unlock()
	notice(first+3000, same)
	n.buildOwn(st.Snapshot())
	if v := n.Own().Version; v != first {
		t.Fatalf("a higher version of the same content made this speaker rebuild: %d", v)
	}
	ahead := first + 5000
	notice(ahead, same^1)
	n.buildOwn(st.Snapshot())
	if v := n.Own().Version; v != ahead+1 {
		t.Fatalf("after dc2 reported holding %d: version %d, want %d", ahead, v, ahead+1)
	}
	notice(uint64(now.Add(time.Hour).UnixMilli()), 0)
	n.buildOwn(st.Snapshot())
	if v := n.Own().Version; v != ahead+1 {
		t.Fatalf("a floor an hour ahead moved the version to %d", v)
	}
	if _, ok := st.Snapshot().Remote("dc2"); !ok {
		t.Fatal("the inline summary of dc2 was not taken")
	}
}
