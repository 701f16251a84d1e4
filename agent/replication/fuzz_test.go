package replication

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/agent/sealing"
	"github.com/chorusdns/chorus/catalog"
)

func FuzzDecodeNotice(f *testing.F) {
	f.Add(noticeBody("node1", 7, nil))
	f.Add(noticeBody("node1", 7, []byte{2, 3, 4}))
	f.Add([]byte{0xff, 'a'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, version, inline, err := decodeNotice(b)
		if err != nil {
			return
		}
		if catalog.ValidateNodeName(name) != nil {
			t.Fatalf("invalid name %q accepted", name)
		}
		if again := noticeBody(name, version, inline); !bytes.Equal(again, b) {
			t.Fatalf("notice does not round-trip: %x != %x", again, b)
		}
	})
}

func FuzzDecodeVector(f *testing.F) {
	f.Add(encodeVector(vectorMsg{Name: "node1", Vector: map[string]uint64{"node0": 1, "node1": 1 << 62}}))
	f.Add(encodeVector(vectorMsg{}))
	f.Add([]byte("not deflate"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeVector(b)
		if err != nil {
			return
		}
		if len(m.Vector) > maxVectorEntries {
			t.Fatalf("vector of %d entries accepted", len(m.Vector))
		}
		again, err := decodeVector(encodeVector(*m))
		if err != nil || again.Name != m.Name || len(again.Vector) != len(m.Vector) {
			t.Fatalf("vector does not round-trip: %v", err)
		}
	})
}

// FuzzDecodeVectorJSON feeds the JSON parser directly (the deflate layer
// keeps most mutations from reaching it).
func FuzzDecodeVectorJSON(f *testing.F) {
	f.Add([]byte(`{"Name":"node1","Vector":{"a":1,"b":2}}`))
	f.Add([]byte(`{"Other":[1,{"x":2}],"Vector":{}}`))
	f.Add([]byte(`{"Vector":{"a":-1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var buf bytes.Buffer
		buf.Write(encodeDeflate(b))
		m, err := decodeVector(buf.Bytes())
		if err == nil && len(m.Vector) > maxVectorEntries {
			t.Fatalf("vector of %d entries accepted", len(m.Vector))
		}
	})
}

func FuzzDecodePullRequest(f *testing.F) {
	f.Add(pullRequest([]string{"node0", "node1"}))
	f.Add([]byte(`[]`))
	f.Add([]byte(`["a",1]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		names, err := decodePullRequest(b)
		if err == nil && len(names) > maxPullNames {
			t.Fatalf("%d names accepted", len(names))
		}
	})
}

// FuzzReadFrame reads arbitrary bytes as a stream of frames, plain and
// sealed: it never returns a body over the limit, and (sealed) never one
// that a gossip key did not seal.
func FuzzReadFrame(f *testing.F) {
	kr, _ := memberlist.NewKeyring(nil, bytes.Repeat([]byte{7}, 32))
	plain := &Syncer{}
	sealed := &Syncer{seal: sealing.Sealer{Keyring: kr}}
	var good bytesBuffer
	sealed.writeFrame(&good, strPull, []byte(`["node1"]`))
	f.Add(good.b)
	var p bytesBuffer
	plain.writeFrame(&p, strPull, []byte(`["node1"]`))
	f.Add(p.b)
	f.Add(binary.BigEndian.AppendUint32(nil, 64<<20))
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 64
		for _, s := range []*Syncer{plain, sealed} {
			r := newBytesReader(b)
			for range 4 {
				body, err := s.readFrame(r, strPull, max)
				if err != nil {
					break
				}
				if len(body) > max {
					t.Fatalf("body of %d bytes over the limit of %d", len(body), max)
				}
			}
		}
	})
}

// FuzzHandlePacket hands arbitrary datagrams to a Syncer whose peers are
// in an in-memory network: nothing panics, and nothing unsigned is
// applied.
func FuzzHandlePacket(f *testing.F) {
	rec := &catalog.NodeRecord{Node: catalog.Node{Name: "node1", Address: "127.0.0.1"}, Version: 5}
	enc, _ := catalog.EncodeRecord(rec)
	f.Add(append([]byte{chorusMagic, pktNotice}, noticeBody("node1", 5, enc)...))
	f.Add([]byte{chorusMagic, pktDigest, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{pktDigestFinal, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{chorusMagic, 9})
	store := catalog.NewStore()
	s := New("node0", store, nil, slog.New(slog.DiscardHandler), NewMetrics(prometheus.NewPedanticRegistry()))
	s.Attach(fixedMembers{{Name: "node0", Addr: "127.0.0.1:7946", Status: catalog.MemberAlive},
		{Name: "node1", Addr: "127.0.0.2:7946", Status: catalog.MemberAlive}}, nowhere{})
	from, _ := net.ResolveUDPAddr("udp", "127.0.0.2:7946")
	f.Fuzz(func(t *testing.T, b []byte) {
		s.HandlePacket(&memberlist.Packet{Buf: append([]byte{chorusMagic}, b...), From: from, Timestamp: time.Now()})
		if store.Version("node1") != 0 {
			t.Fatal("a record was applied")
		}
	})
}

// FuzzHandleStream hands arbitrary stream bytes to a Syncer.
func FuzzHandleStream(f *testing.F) {
	var pull bytesBuffer
	(&Syncer{}).writeFrame(&pull, strPull, pullRequest([]string{"node0"}))
	f.Add(append([]byte{chorusMagic, strPull}, pull.b...))
	var vec bytesBuffer
	(&Syncer{}).writeFrame(&vec, strVector, encodeVector(vectorMsg{Name: "node1", Vector: map[string]uint64{"node1": 3}}))
	f.Add(append([]byte{chorusMagic, strVector}, vec.b...))
	var tree bytesBuffer
	(&Syncer{}).writeFrame(&tree, strTree, encodeHello("node1"))
	(&Syncer{}).writeFrame(&tree, strTree, encodeTreeRequest(treeRequest{op: opHashes, level: 0, indexes: []uint16{0}}))
	leaf := uint16(leafOf("node1"))
	(&Syncer{}).writeFrame(&tree, strTree, encodeTreeRequest(treeRequest{op: opEntries, indexes: []uint16{leaf}, entries: []vecEntry{{"node1", 3}}}))
	f.Add(append([]byte{chorusMagic, strTree}, tree.b...))
	store := catalog.NewStore()
	s := New("node0", store, nil, slog.New(slog.DiscardHandler), NewMetrics(prometheus.NewPedanticRegistry()))
	s.Attach(fixedMembers{{Name: "node0", Addr: "127.0.0.1:7946", Status: catalog.MemberAlive},
		{Name: "node1", Addr: "127.0.0.2:7946", Status: catalog.MemberAlive}}, nowhere{})
	f.Fuzz(func(t *testing.T, b []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.HandleStream(server)
		}()
		go func() {
			client.Write(b)
			client.Close()
		}()
		<-done
	})
}

func encodeDeflate(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// fixedMembers is a member list that does not change.
type fixedMembers []Member

func (m fixedMembers) Members() []Member { return m }
func (m fixedMembers) NumMembers() int   { return len(m) }
func (m fixedMembers) LocalAddr() string { return m[0].Addr }
func (m fixedMembers) Join(string) error { return nil }

// nowhere is a network where every datagram is lost and no one answers.
type nowhere struct{}

func (nowhere) WriteTo(b []byte, addr string) (time.Time, error) { return time.Now(), nil }
func (nowhere) DialTimeout(addr string, _ time.Duration) (net.Conn, error) {
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errDropped}
}

func FuzzDecodeTreeRequest(f *testing.F) {
	f.Add(encodeTreeRequest(treeRequest{op: opHashes, level: 0, indexes: []uint16{0}}))
	f.Add(encodeTreeRequest(treeRequest{op: opHashes, level: 2, indexes: []uint16{3, 200}}))
	leaf := uint16(leafOf("node1"))
	f.Add(encodeTreeRequest(treeRequest{op: opEntries, indexes: []uint16{leaf}, entries: []vecEntry{{"node1", 9}}}))
	f.Add(encodeTreeRequest(treeRequest{op: opEntries, indexes: []uint16{leaf}}))
	f.Add([]byte{opHashes, 3, 0, 1, 0, 0})
	f.Add([]byte{opEntries, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeTreeRequest(b)
		if err != nil {
			return
		}
		size := treeLeaves
		if r.op == opHashes {
			size = levelSize(r.level)
		}
		for i, x := range r.indexes {
			if int(x) >= size || i > 0 && x <= r.indexes[i-1] {
				t.Fatalf("index %d accepted (level of %d, previous in order?)", x, size)
			}
		}
		if len(r.entries) > maxVectorEntries {
			t.Fatalf("%d entries accepted", len(r.entries))
		}
		if err := entriesWithin(r.entries, r.indexes); err != nil {
			t.Fatal(err)
		}
		if again := encodeTreeRequest(r); !bytes.Equal(again, b) {
			t.Fatalf("request does not round-trip: %x != %x", again, b)
		}
	})
}

func FuzzDecodeEntries(f *testing.F) {
	f.Add(appendEntries(nil, []vecEntry{{"node0", 1}, {"node1", 1 << 62}}))
	f.Add(appendEntries(nil, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := decodeEntries(b)
		if err != nil {
			return
		}
		for _, e := range es {
			if catalog.ValidateNodeName(e.Name) != nil || e.Version == 0 {
				t.Fatalf("entry %+v accepted", e)
			}
		}
		if again := appendEntries(nil, es); !bytes.Equal(again, b) {
			t.Fatalf("entries do not round-trip: %x != %x", again, b)
		}
	})
}

func FuzzDecodeHello(f *testing.F) {
	f.Add(encodeHello("node1"))
	f.Add([]byte{3, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := decodeHello(b)
		if err == nil && !bytes.Equal(encodeHello(name), b) {
			t.Fatalf("hello %q does not round-trip", name)
		}
	})
}

// FuzzDecodeHashes: a tree answer's hashes parse only at exactly the
// size asked for, and round-trip.
func FuzzDecodeHashes(f *testing.F) {
	f.Add(encodeHashes([]uint64{1, 2, 3}), 3)
	f.Add([]byte{1, 2, 3}, 1)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, b []byte, want int) {
		if want < 0 || want > 1<<16 {
			return
		}
		h, err := decodeHashes(b, want)
		if err != nil {
			return
		}
		if len(h) != want || !bytes.Equal(encodeHashes(h), b) {
			t.Fatalf("%d hashes from %d bytes, want %d round-tripping", len(h), len(b), want)
		}
	})
}
