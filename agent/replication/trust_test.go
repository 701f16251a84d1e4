package replication

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/chorusdns/chorus/agent/sealing"
	"github.com/chorusdns/chorus/catalog"
	tu "github.com/chorusdns/chorus/test/testutil"
)

// signedBy makes a record of node with one service, signed with key.
func signedBy(key ed25519.PrivateKey, node string, version uint64, svc string) *catalog.NodeRecord {
	rec := &catalog.NodeRecord{Node: catalog.Node{Name: node, Address: "127.0.0.1"}, Version: version,
		Services: catalog.ListOf([]catalog.Service{{ID: svc, Name: svc, Port: 1, Weights: catalog.DefaultWeights}})}
	if err := rec.Sign(key); err != nil {
		panic(err)
	}
	return rec
}

// sendNotice delivers a notice for rec to victim as if it came from addr.
func sendNotice(t *testing.T, from *memNode, victim *memNode, addr string, rec *catalog.NodeRecord) {
	t.Helper()
	enc, err := catalog.EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := from.sync.packet(pktNotice, noticeBody(rec.Node.Name, rec.Version, enc))
	if err != nil {
		t.Fatal(err)
	}
	ua, _ := net.ResolveUDPAddr("udp", addr)
	victim.sync.HandlePacket(&memberlist.Packet{Buf: pkt, From: ua, Timestamp: time.Now()})
}

// TestNoticeFromOwnerAddressWithBadSignatureRefused: a notice for node1
// from node1's own address (a forged source address) with a record that
// another key signed is refused; node1's own next change still applies.
func TestNoticeFromOwnerAddressWithBadSignatureRefused(t *testing.T) {
	nodes := newMemNet(t).add(3)
	victim, owner := nodes[0], nodes[1]
	_, forger, _ := ed25519.GenerateKey(nil)
	soon := uint64(time.Now().Add(time.Second).UnixMilli())
	sendNotice(t, nodes[2], victim, owner.addr, signedBy(forger, "node1", soon, "evil"))
	// Unsigned, and signed by node1 but altered afterwards.
	unsigned := signedBy(forger, "node1", soon+1, "evil")
	unsigned.Signature = nil
	sendNotice(t, nodes[2], victim, owner.addr, unsigned)
	altered := signedBy(owner.key, "node1", soon+2, "web")
	altered.Services.At(0).Port = 6666
	sendNotice(t, nodes[2], victim, owner.addr, altered)
	tu.Eventually(t, 2*time.Second, func() error {
		if n := victim.rejected(rejSignature); n != 3 {
			return fmt.Errorf("%g bad signatures counted, want 3", n)
		}
		return nil
	})
	if v := victim.store.Version("node1"); v != 0 {
		t.Fatalf("forged record applied: version %d", v)
	}
	rec := owner.change("web")
	converged(t, nodes, "node1", rec.Version, 2*time.Second)
}

// TestFutureVersionRefused: even its owner's signature does not carry a
// version beyond MaxFutureSkew; later versions are not blocked.
func TestFutureVersionRefused(t *testing.T) {
	nodes := newMemNet(t).add(2)
	victim, owner := nodes[0], nodes[1]
	far := uint64(time.Now().Add(MaxFutureSkew + time.Minute).UnixMilli())
	sendNotice(t, owner, victim, owner.addr, signedBy(owner.key, "node1", far, "web"))
	victim.sync.queueApply(signedBy(owner.key, "node1", ^uint64(0), "web"), "applied_pull")
	tu.Eventually(t, 2*time.Second, func() error {
		if n := victim.rejected(rejFuture); n != 2 {
			return fmt.Errorf("%g future versions counted, want 2", n)
		}
		return nil
	})
	rec := owner.change("web")
	converged(t, nodes, "node1", rec.Version, 2*time.Second)
	if v := victim.store.Version("node1"); v != rec.Version {
		t.Fatalf("victim holds version %d, want %d", v, rec.Version)
	}
}

// TestRecordHeldUntilKeyKnown: a record that arrives before its node's
// key is held back, not applied, and applied as soon as the key is
// pinned (as the member event brings it), without waiting for a pull.
func TestRecordHeldUntilKeyKnown(t *testing.T) {
	net := newMemNet(t)
	net.noKeys.Store(true)
	nodes := net.add(2)
	victim, owner := nodes[0], nodes[1]
	rec := signedBy(owner.key, "node1", 7, "web")
	victim.sync.queueApply(rec, "applied_pull")
	tu.Eventually(t, 2*time.Second, func() error {
		if v := victim.sync.keys.heldVersion("node1"); v != 7 {
			return fmt.Errorf("held version %d, want 7", v)
		}
		return nil
	})
	if v := victim.store.Version("node1"); v != 0 {
		t.Fatalf("record applied before its key was known: version %d", v)
	}
	// The member event with the key.
	start := time.Now()
	victim.sync.Observe(Member{Name: "node1", Addr: owner.addr, Status: catalog.MemberAlive, Key: owner.pub})
	tu.Eventually(t, time.Second, func() error {
		if v := victim.store.Version("node1"); v != 7 {
			return fmt.Errorf("version %d applied, want 7", v)
		}
		return nil
	})
	t.Logf("held record applied %v after its key arrived", time.Since(start))
}

// TestKeyPinnedUntilForgotten: a member that presents another key under a
// pinned name is refused until the node is forgotten (or leaves).
func TestKeyPinnedUntilForgotten(t *testing.T) {
	nodes := newMemNet(t).add(2)
	victim, owner := nodes[0], nodes[1]
	rec := owner.change("web")
	converged(t, nodes, "node1", rec.Version, 2*time.Second)

	newPub, newKey, _ := ed25519.GenerateKey(nil)
	impostor := Member{Name: "node1", Addr: owner.addr, Status: catalog.MemberAlive, Key: newPub}
	victim.sync.Observe(impostor)
	if n := victim.rejected(rejKeyChanged); n != 1 {
		t.Fatalf("%g key changes counted, want 1", n)
	}
	victim.sync.queueApply(signedBy(newKey, "node1", rec.Version+1, "evil"), "applied_pull")
	tu.Eventually(t, 2*time.Second, func() error {
		if n := victim.rejected(rejSignature); n != 1 {
			return fmt.Errorf("%g bad signatures counted, want 1", n)
		}
		return nil
	})

	// Once the node has left, or has been forgotten, a new key is taken.
	// The member list stops showing keys, so that only the events below
	// pin them.
	victim.net.noKeys.Store(true)
	for _, forget := range []func(){
		func() { victim.sync.Observe(Member{Name: "node1", Addr: owner.addr, Status: catalog.MemberLeft}) },
		func() { victim.sync.Forget("node1") },
	} {
		forget()
		newPub, newKey, _ = ed25519.GenerateKey(nil)
		victim.sync.Observe(Member{Name: "node1", Addr: owner.addr, Status: catalog.MemberAlive, Key: newPub})
		next := signedBy(newKey, "node1", victim.store.Version("node1")+1, "reinstalled")
		victim.sync.queueApply(next, "applied_pull")
		tu.Eventually(t, 2*time.Second, func() error {
			if v := victim.store.Version("node1"); v != next.Version {
				return fmt.Errorf("version %d, want %d", v, next.Version)
			}
			return nil
		})
	}
}

// TestVectorFromNonMemberPullsNothing: a vector exchange that names no
// member (or claims a node it is not) makes no pull from the stream's
// peer; a digest from an address that is no member's starts no exchange.
func TestVectorFromNonMemberPullsNothing(t *testing.T) {
	nodes := newMemNet(t).add(2)
	victim := nodes[0]
	for _, name := range []string{"", "outsider"} {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			victim.sync.HandleStream(server)
		}()
		client.Write([]byte{chorusMagic, strVector})
		victim.sync.writeFrame(client, strVector, encodeVector(vectorMsg{Name: name, Vector: map[string]uint64{"node1": 99}}))
		if _, err := victim.sync.readFrame(client, strVector, maxVectorBytes); err != nil {
			t.Fatal(err)
		}
		client.Close()
		<-done
	}
	if v := victim.counter("ae_repair"); v != 0 {
		t.Fatalf("%g pulls scheduled from vectors of non-members", v)
	}
	ua, _ := net.ResolveUDPAddr("udp", "127.0.0.200:7946")
	pkt, _ := victim.sync.packet(pktDigest, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	victim.sync.HandlePacket(&memberlist.Packet{Buf: pkt, From: ua, Timestamp: time.Now()})
	if n := victim.rejected(rejNotMember); n != 1 {
		t.Fatalf("digest from a non-member: %g rejections counted, want 1", n)
	}
}

// TestStreamLimit: streams beyond the limit from one address are closed at
// once and counted; the ones within it are served.
func TestStreamLimit(t *testing.T) {
	victim := newMemNet(t).add(1)[0]
	var clients []net.Conn
	var wg sync.WaitGroup
	for range maxStreamsPerIP {
		client, server := net.Pipe()
		clients = append(clients, client)
		wg.Go(func() { victim.sync.HandleStream(server) })
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
		wg.Wait()
	}()
	tu.Eventually(t, 2*time.Second, func() error {
		victim.sync.streams.mu.Lock()
		defer victim.sync.streams.mu.Unlock()
		if victim.sync.streams.total != maxStreamsPerIP {
			return fmt.Errorf("%d streams served", victim.sync.streams.total)
		}
		return nil
	})
	client, server := net.Pipe()
	defer client.Close()
	returned := make(chan struct{})
	go func() {
		victim.sync.HandleStream(server)
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(time.Second):
		t.Fatal("a stream over the limit was not closed at once")
	}
	if n := victim.rejected(rejStreamLimit); n != 1 {
		t.Fatalf("%g streams over the limit counted, want 1", n)
	}
}

// TestSealedFrameAllocatesNothingBeforeItsHeaderOpens: with encryption on,
// a frame claiming 64 MiB whose header does not open costs no allocation
// of its size.
func TestSealedFrameAllocatesNothingBeforeItsHeaderOpens(t *testing.T) {
	kr, err := memberlist.NewKeyring(nil, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	s := &Syncer{seal: sealing.Sealer{Keyring: kr}}
	claim := make([]byte, sealedHeader+1<<20)
	claim[0], claim[1], claim[2], claim[3] = 0x04, 0, 0, 0 // 64 MiB in a plain header
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 16 {
		if _, err := s.readFrame(newBytesReader(claim), strVector, maxVectorBytes); err == nil {
			t.Fatal("a garbage header opened")
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("16 garbage frames allocated %d bytes", d)
	}
	// A frame that does open round-trips, and one over the limit is
	// refused once its header opens, before its body is read.
	var buf bytesBuffer
	body := []byte("hello")
	if err := s.writeFrame(&buf, strPull, body); err != nil {
		t.Fatal(err)
	}
	got, err := s.readFrame(newBytesReader(buf.b), strPull, 16)
	if err != nil || string(got) != "hello" {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	if _, err := s.readFrame(newBytesReader(buf.b), strPull, 4); err == nil {
		t.Fatal("a frame over the limit was read")
	}
	// A body moved under another frame's header does not open.
	var other bytesBuffer
	s.writeFrame(&other, strPull, []byte("world"))
	spliced := append(append([]byte{}, buf.b[:sealedHeader]...), other.b[sealedHeader:]...)
	if _, err := s.readFrame(newBytesReader(spliced), strPull, 16); err == nil {
		t.Fatal("a spliced frame opened")
	}
}

type bytesBuffer struct{ b []byte }

func (w *bytesBuffer) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

type bytesReader struct{ b []byte }

func newBytesReader(b []byte) *bytesReader { return &bytesReader{b: b} }

func (r *bytesReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// TestHeldRecordsBounded: records of nodes whose key is unknown (a member
// can serve records of nodes no one has, each up to
// catalog.MaxRecordSize) are held back only up to maxHeldBytes of JSON;
// the rest are refused (held_full), and a newer version of a held node
// replaces the older one in the budget. Notices are never held.
func TestHeldRecordsBounded(t *testing.T) {
	net := newMemNet(t)
	net.noKeys.Store(true)
	victim := net.add(1)[0]
	_, key, _ := ed25519.GenerateKey(nil)
	big := strings.Repeat("m", 4<<20)
	record := func(node string, version uint64) *catalog.NodeRecord {
		rec := &catalog.NodeRecord{Node: catalog.Node{Name: node, Address: "127.0.0.1"}, Version: version,
			Services: catalog.ListOf([]catalog.Service{{ID: "s", Name: "s", Port: 1, Weights: catalog.DefaultWeights, Meta: map[string]string{"m": big}}})}
		if err := rec.Sign(key); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	const n = 24 // 96 MiB of JSON
	for i := range n {
		victim.sync.queueApply(record(fmt.Sprintf("ghost%d", i), 5), "applied_pull")
	}
	victim.sync.queueApply(record("ghost0", 6), "applied_pull")
	victim.sync.queueApply(signedBy(key, "noticed", 5, "web"), "applied_notice")
	want := maxHeldBytes/(4<<20) - 1
	tu.Eventually(t, 5*time.Second, func() error {
		if got := victim.rejected(rejHeldFull); got != float64(n-want) {
			return fmt.Errorf("%g refused for want of room, want %d", got, n-want)
		}
		if got := victim.rejected(rejNotMember); got != 1 {
			return fmt.Errorf("%g notices' records refused, want 1", got)
		}
		return nil
	})
	k := victim.sync.keys
	k.mu.Lock()
	held, bytes := len(k.held), k.heldBytes
	k.mu.Unlock()
	if held != want || bytes > maxHeldBytes {
		t.Fatalf("%d records of %d bytes held, want %d within %d", held, bytes, want, maxHeldBytes)
	}
	if v := k.heldVersion("ghost0"); v != 6 {
		t.Fatalf("ghost0 held at version %d, want the newer 6", v)
	}
	if v := k.heldVersion("noticed"); v != 0 {
		t.Fatalf("a notice's record of a node with no key was held (version %d)", v)
	}
	k.forget("ghost0")
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.held) != want-1 || bytes-k.heldBytes < 4<<20 {
		t.Fatalf("after forgetting ghost0: %d records of %d bytes held, was %d", len(k.held), k.heldBytes, bytes)
	}
}
