package replication

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/chorusdns/chorus/test/testutil"
)

// testTransport binds a Transport on 127.0.0.1; Chorus packets and
// streams go to the returned channels. It is shut down at cleanup.
func testTransport(t *testing.T) (*Transport, chan *memberlist.Packet, chan net.Conn) {
	t.Helper()
	chorusPkts := make(chan *memberlist.Packet, 16)
	chorusStreams := make(chan net.Conn, 16)
	tr, err := NewTransport("127.0.0.1", 0, slog.New(slog.NewTextHandler(io.Discard, nil)),
		func(p *memberlist.Packet) { chorusPkts <- p },
		func(c net.Conn) {
			defer c.Close()
			b, _ := io.ReadAll(c)
			c2 := &bytesConn{b: b}
			chorusStreams <- c2
		})
	if err != nil {
		t.Fatal(err)
	}
	tr.Start()
	t.Cleanup(func() { tr.Shutdown() })
	return tr, chorusPkts, chorusStreams
}

// bytesConn carries what a Chorus stream handler read, for the test.
type bytesConn struct {
	net.Conn
	b []byte
}

func recvPacket(t *testing.T, ch <-chan *memberlist.Packet) *memberlist.Packet {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no packet")
		return nil
	}
}

func TestTransportPackets(t *testing.T) {
	tr, chorusPkts, _ := testTransport(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tr.Port()))
	peer, _, _ := testTransport(t)

	before := time.Now()
	msgs := [][]byte{
		[]byte("\x02memberlist-one"),
		{chorusMagic, pktDigest, 1, 2, 3},
		[]byte("\x03two"), // shorter than the first: must not carry its tail
		bytes.Repeat([]byte{7}, 9000),
	}
	for _, m := range msgs {
		if _, err := peer.WriteTo(m, addr); err != nil {
			t.Fatal(err)
		}
	}
	var got [][]byte
	for _, want := range msgs {
		var p *memberlist.Packet
		if want[0] == chorusMagic {
			p = recvPacket(t, chorusPkts)
		} else {
			p = recvPacket(t, tr.PacketCh())
		}
		if !bytes.Equal(p.Buf, want) {
			t.Fatalf("packet %q, want %q", p.Buf, want)
		}
		if cap(p.Buf) > 2*len(want)+64 {
			t.Errorf("packet of %d bytes holds a %d-byte buffer", len(want), cap(p.Buf))
		}
		if p.Timestamp.Before(before) || p.Timestamp.After(time.Now()) {
			t.Errorf("timestamp %v not at receipt", p.Timestamp)
		}
		if p.From.String() != net.JoinHostPort("127.0.0.1", strconv.Itoa(peer.Port())) {
			t.Errorf("from %v, want the peer's port %d", p.From, peer.Port())
		}
		got = append(got, p.Buf)
	}
	// Buffers stay intact after later reads (the read buffer is reused).
	for i, want := range msgs {
		if !bytes.Equal(got[i], want) {
			t.Fatalf("packet %d changed after later reads: %q", i, got[i])
		}
	}
	var total uint64
	for _, m := range msgs {
		total += uint64(len(m))
	}
	if out, in := peer.bytesOut.Load(), tr.bytesIn.Load(); out != total || in != total {
		t.Fatalf("bytes sent %d, received %d, want %d", out, in, total)
	}

	// The drop hook cuts both directions. A third transport, not cut
	// off, sends a marker after the dropped packet: the socket keeps
	// their order, so the marker arriving first proves the drop.
	peerAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(peer.Port()))
	third, _, _ := testTransport(t)
	f := func(a string) bool { return a == peerAddr }
	tr.drop.Store(&f)
	peer.WriteTo([]byte("\x02dropped"), addr)
	third.WriteTo([]byte("\x02marker"), addr)
	if p := recvPacket(t, tr.PacketCh()); string(p.Buf) != "\x02marker" {
		t.Fatalf("got %q from a cut-off peer", p.Buf)
	}
	tr.WriteTo([]byte("\x02not sent"), peerAddr)
	third.WriteTo([]byte("\x02marker"), peerAddr)
	if p := recvPacket(t, peer.PacketCh()); string(p.Buf) != "\x02marker" {
		t.Fatalf("cut-off peer got %q", p.Buf)
	}
	if _, err := tr.DialTimeout(peerAddr, time.Second); err == nil {
		t.Fatal("dial through a partition succeeded")
	}
	tr.drop.Store(nil)
	peer.WriteTo([]byte("\x02after"), addr)
	if p := recvPacket(t, tr.PacketCh()); string(p.Buf) != "\x02after" {
		t.Fatalf("got %q after the partition healed", p.Buf)
	}
}

func TestTransportStreams(t *testing.T) {
	tr, _, chorusStreams := testTransport(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tr.Port()))

	for _, tc := range []struct {
		name   string
		first  byte
		chorus bool
	}{
		{"memberlist", 1, false},
		{"chorus", chorusMagic, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tr.DialTimeout(addr, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			msg := append([]byte{tc.first}, "payload"...)
			c.Write(msg)
			c.Close()
			var got []byte
			select {
			case s := <-chorusStreams:
				if !tc.chorus {
					t.Fatal("memberlist stream sent to Chorus")
				}
				got = s.(*bytesConn).b
			case s := <-tr.StreamCh():
				if tc.chorus {
					t.Fatal("Chorus stream sent to memberlist")
				}
				got, _ = io.ReadAll(s)
				s.Close()
			case <-time.After(5 * time.Second):
				t.Fatal("stream not delivered")
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("stream read %q, want %q (the peeked byte included)", got, msg)
			}
		})
	}
}

// TestTransportShutdown: a connection that never sends its first byte
// does not hold Shutdown for the classify timeout, and the port is free
// afterwards.
func TestTransportShutdown(t *testing.T) {
	tr, _, _ := testTransport(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tr.Port()))
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	testutil.Eventually(t, 5*time.Second, func() error {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		if len(tr.conns) != 1 {
			return fmt.Errorf("%d connections being classified, want 1", len(tr.conns))
		}
		return nil
	})
	start := time.Now()
	done := make(chan struct{})
	go func() { tr.Shutdown(); tr.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(classifyTimeout / 2):
		t.Fatal("Shutdown waits for an idle connection")
	}
	t.Logf("shutdown in %v", time.Since(start))
	again, err := NewTransport("127.0.0.1", tr.Port(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil)
	if err != nil {
		t.Fatalf("port not released: %v", err)
	}
	again.Shutdown()
}

func TestTransportBindError(t *testing.T) {
	tr, _, _ := testTransport(t)
	_, err := NewTransport("127.0.0.1", tr.Port(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), strconv.Itoa(tr.Port())) {
		t.Fatalf("bind to a taken port: %v", err)
	}
}
