package agent

import (
	"bufio"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// chorusMagic is the first byte of Chorus's own packets and streams on the
// gossip port. Memberlist's message types, its encryption version bytes
// and its label byte (244) never take this value, so one port carries
// both: memberlist's traffic is passed through untouched.
const chorusMagic byte = 0xC5

// muxTransport wraps memberlist's network transport so that Chorus's
// record notices (UDP) and record pulls (TCP) share the gossip port.
// Packets and streams starting with chorusMagic go to Chorus's handlers;
// everything else goes to memberlist.
type muxTransport struct {
	inner    *memberlist.NetTransport
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	onPacket func(p *memberlist.Packet)
	onStream func(c net.Conn)
	// drop, when set, reports that traffic to addr must be dropped (tests
	// use it to cut the network between agents in one process).
	drop     atomic.Pointer[func(addr string) bool]
	shutdown chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
	// Datagram bytes sent and received on the gossip port (memberlist's
	// and Chorus's); TCP streams are not counted.
	bytesOut, bytesIn atomic.Uint64
}

func newMuxTransport(inner *memberlist.NetTransport, onPacket func(*memberlist.Packet), onStream func(net.Conn)) *muxTransport {
	t := &muxTransport{
		inner:    inner,
		packetCh: make(chan *memberlist.Packet, 256),
		streamCh: make(chan net.Conn, 64),
		onPacket: onPacket,
		onStream: onStream,
		shutdown: make(chan struct{}),
	}
	t.wg.Add(2)
	go t.pumpPackets()
	go t.pumpStreams()
	return t
}

func (t *muxTransport) dropped(addr string) bool {
	if f := t.drop.Load(); f != nil {
		return (*f)(addr)
	}
	return false
}

func (t *muxTransport) pumpPackets() {
	defer t.wg.Done()
	for {
		select {
		case p := <-t.inner.PacketCh():
			if t.dropped(p.From.String()) {
				continue
			}
			t.bytesIn.Add(uint64(len(p.Buf)))
			if len(p.Buf) > 0 && p.Buf[0] == chorusMagic {
				t.onPacket(p)
				continue
			}
			select {
			case t.packetCh <- p:
			case <-t.shutdown:
				return
			}
		case <-t.shutdown:
			return
		}
	}
}

func (t *muxTransport) pumpStreams() {
	defer t.wg.Done()
	for {
		select {
		case c := <-t.inner.StreamCh():
			t.wg.Add(1)
			go t.classify(c)
		case <-t.shutdown:
			return
		}
	}
}

// classify peeks at a new stream's first byte and routes it.
func (t *muxTransport) classify(c net.Conn) {
	defer t.wg.Done()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	b, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}
	if b[0] == chorusMagic {
		t.onStream(pc)
		return
	}
	select {
	case t.streamCh <- pc:
	case <-t.shutdown:
		c.Close()
	}
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *muxTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

// WriteTo implements memberlist.Transport.
func (t *muxTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.dropped(addr) {
		return time.Now(), nil
	}
	t.bytesOut.Add(uint64(len(b)))
	return t.inner.WriteTo(b, addr)
}

// PacketCh implements memberlist.Transport.
func (t *muxTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout implements memberlist.Transport.
func (t *muxTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.dropped(addr) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errDropped}
	}
	return t.inner.DialTimeout(addr, timeout)
}

// StreamCh implements memberlist.Transport.
func (t *muxTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown implements memberlist.Transport. It is safe to call more than
// once.
func (t *muxTransport) Shutdown() error {
	var err error
	t.once.Do(func() {
		err = t.inner.Shutdown()
		close(t.shutdown)
		t.wg.Wait()
	})
	return err
}

type dropError struct{}

func (dropError) Error() string   { return "dropped by test partition" }
func (dropError) Timeout() bool   { return true }
func (dropError) Temporary() bool { return true }

var errDropped = dropError{}
