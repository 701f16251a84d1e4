package replication

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
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

// Socket sizes of the gossip port, as memberlist's NetTransport has them.
const (
	// maxDatagram is the largest UDP payload; the read loop reads into
	// one buffer of this size and copies each packet out, sized to it.
	maxDatagram = 65536
	// udpRecvBuf is the kernel receive buffer asked for, halved until
	// the system accepts it, so bursts are not dropped.
	udpRecvBuf = 2 << 20
	// classifyTimeout bounds the wait for a new stream's first byte.
	classifyTimeout = 10 * time.Second
	// maxOpenStreams bounds the streams accepted and not yet handed to
	// memberlist (being classified, or served by Chorus); a connection
	// beyond it is closed at once.
	maxOpenStreams = 512
)

// Transport is memberlist's transport on the gossip port: UDP for
// packets, TCP for streams, the same port for both. Chorus's record
// notices (UDP) and record pulls (TCP) share the port: packets and
// streams starting with chorusMagic go to Chorus's handlers, everything
// else to memberlist.
//
// It replaces memberlist's NetTransport, which allocates a 64 KB buffer
// for every datagram it receives; this one reads into a single buffer and
// allocates only the packet's own bytes.
//
// NewTransport binds the sockets; Start launches the read and accept
// loops; Shutdown closes the sockets and the connections not yet handed
// to memberlist, and waits for every goroutine the transport started.
type Transport struct {
	udp      *net.UDPConn
	tcp      *net.TCPListener
	logger   *slog.Logger
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	onPacket func(p *memberlist.Packet)
	onStream func(c net.Conn)
	// drop, when set, reports that traffic to or from addr must be
	// dropped (SetDrop).
	drop     atomic.Pointer[func(addr string) bool]
	shutdown chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
	// Datagram bytes sent and received on the gossip port (memberlist's
	// and Chorus's); TCP streams are not counted.
	bytesOut, bytesIn atomic.Uint64

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // accepted, not handed to memberlist
	closed bool                  // Shutdown has begun
	// warnings rate-limits the lines of refused connections.
	warnings *limitedLog
	// budget bounds the streams handed to memberlist (streambudget.go).
	budget *streamBudget
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// NewTransport binds TCP and then UDP on bind:port (port 0: a free
// port, the same for both). onPacket and onStream receive Chorus's
// packets and streams; onPacket runs on the read loop and must not block,
// onStream owns its connection. It starts no goroutine: call Start.
func NewTransport(bind string, port int, logger *slog.Logger, onPacket func(*memberlist.Packet), onStream func(net.Conn)) (*Transport, error) {
	ip := net.ParseIP(bind)
	tcp, udp, err := listenGossip(ip, port)
	// With a port picked by the kernel for TCP, the same UDP port may be
	// taken: try other ports, as memberlist does.
	for try := 0; err != nil && port == 0 && try < 10; try++ {
		tcp, udp, err = listenGossip(ip, port)
	}
	if err != nil {
		return nil, err
	}
	if err := setUDPRecvBuf(udp); err != nil {
		tcp.Close()
		udp.Close()
		return nil, fmt.Errorf("resize UDP receive buffer: %w", err)
	}
	t := &Transport{
		udp:      udp,
		tcp:      tcp,
		logger:   logger,
		packetCh: make(chan *memberlist.Packet, 256),
		streamCh: make(chan net.Conn, 64),
		onPacket: onPacket,
		onStream: onStream,
		shutdown: make(chan struct{}),
		conns:    make(map[net.Conn]struct{}),
		warnings: newLimitedLog(logger),
		budget:   newStreamBudget(),
	}
	t.budget.onExhausted = func(ip string, open, bytes int) {
		t.warnings.warn(rejStreamLimit, "closing a memberlist stream: the streams open have read more than they may hold", "from", ip,
			"open", open, "bytes", bytes, "max_bytes", maxMemberlistBytes, "max_bytes_per_ip", maxMemberlistBytesPerIP)
	}
	return t, nil
}

// listenGossip binds the TCP listener, then UDP on the same port.
func listenGossip(ip net.IP, port int) (*net.TCPListener, *net.UDPConn, error) {
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, nil, err
	}
	port = tcp.Addr().(*net.TCPAddr).Port
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
	if err != nil {
		tcp.Close()
		return nil, nil, err
	}
	return tcp, udp, nil
}

// setUDPRecvBuf asks for udpRecvBuf, halving until the system accepts.
func setUDPRecvBuf(c *net.UDPConn) error {
	var err error
	for size := udpRecvBuf; size > 0; size /= 2 {
		if err = c.SetReadBuffer(size); err == nil {
			return nil
		}
	}
	return err
}

// Bytes returns the datagram payload bytes sent and received so far.
func (t *Transport) Bytes() (sent, received uint64) { return t.bytesOut.Load(), t.bytesIn.Load() }

// Start launches the UDP read loop and the TCP accept loop.
func (t *Transport) Start() {
	t.wg.Add(2)
	go t.readPackets()
	go t.acceptStreams()
}

// Port returns the bound gossip port.
func (t *Transport) Port() int { return t.tcp.Addr().(*net.TCPAddr).Port }

// SetDrop installs a fault: traffic to or from every address for which
// drop reports true is dropped, as a network partition would (nil heals
// it). It lets in-process clusters be partitioned.
func (t *Transport) SetDrop(drop func(addr string) bool) {
	if drop == nil {
		t.drop.Store(nil)
		return
	}
	t.drop.Store(&drop)
}

func (t *Transport) dropped(addr string) bool {
	if f := t.drop.Load(); f != nil {
		return (*f)(addr)
	}
	return false
}

func (t *Transport) closing() bool {
	select {
	case <-t.shutdown:
		return true
	default:
		return false
	}
}

// readPackets reads datagrams into one reusable buffer and hands a copy
// of each, stamped with its time of receipt (memberlist times probes
// with it), to Chorus or memberlist.
func (t *Transport) readPackets() {
	defer t.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := t.udp.ReadFromUDP(buf)
		ts := time.Now()
		if err != nil {
			if t.closing() || errors.Is(err, net.ErrClosed) {
				return
			}
			t.logger.Error("read gossip packet", "err", err)
			continue
		}
		if n == 0 || t.dropped(from.String()) {
			continue
		}
		t.bytesIn.Add(uint64(n))
		p := &memberlist.Packet{Buf: bytes.Clone(buf[:n]), From: from, Timestamp: ts}
		if p.Buf[0] == chorusMagic {
			t.onPacket(p)
			continue
		}
		select {
		case t.packetCh <- p:
		case <-t.shutdown:
			return
		}
	}
}

// acceptStreams accepts TCP connections and classifies each in its own
// goroutine. Accept errors back off from 5 ms up to 1 s, as in
// memberlist's NetTransport.
func (t *Transport) acceptStreams() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		c, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.closing() || errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.logger.Error("accept gossip stream", "err", err, "retry_in_seconds", delay.Seconds())
			select {
			case <-time.After(delay):
			case <-t.shutdown:
				return
			}
			continue
		}
		delay = 0
		ok, full := t.track(c)
		if full {
			c.Close()
			t.warnings.warn(rejStreamLimit, "closing a gossip stream: too many open", "from", c.RemoteAddr().String(), "max", maxOpenStreams)
			continue
		}
		if !ok {
			c.Close()
			return
		}
		t.wg.Add(1)
		go t.classify(c)
	}
}

// track records an accepted connection so that Shutdown closes it; it
// reports false once Shutdown has begun, and full when maxOpenStreams are
// open already (c is not recorded).
func (t *Transport) track(c net.Conn) (ok, full bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false, false
	}
	if len(t.conns) >= maxOpenStreams {
		return false, true
	}
	t.conns[c] = struct{}{}
	return true, false
}

func (t *Transport) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// classify peeks at a new stream's first byte and routes it.
func (t *Transport) classify(c net.Conn) {
	defer t.wg.Done()
	c.SetReadDeadline(time.Now().Add(classifyTimeout))
	br := bufio.NewReader(c)
	b, err := br.Peek(1)
	if err != nil {
		t.untrack(c)
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}
	if b[0] == chorusMagic {
		t.onStream(pc)
		t.untrack(c)
		return
	}
	t.untrack(c) // memberlist owns it from here
	mc := t.budget.wrap(pc, remoteIP(c))
	if mc == nil {
		c.Close()
		t.warnings.warn(rejStreamLimit, "closing a memberlist stream: too many open", "from", c.RemoteAddr().String(),
			"max", maxMemberlistStreams, "max_per_ip", maxMemberlistStreamsPerIP)
		return
	}
	select {
	case t.streamCh <- mc:
	case <-t.shutdown:
		mc.Close()
	}
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// FinalAdvertiseAddr implements memberlist.Transport: the configured
// address, else the bound one.
func (t *Transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		addr := net.ParseIP(ip)
		if addr == nil {
			return nil, 0, fmt.Errorf("advertise address %q is not an IP address", ip)
		}
		if ip4 := addr.To4(); ip4 != nil {
			addr = ip4
		}
		return addr, port, nil
	}
	bound := t.tcp.Addr().(*net.TCPAddr)
	if bound.IP.IsUnspecified() {
		return nil, 0, fmt.Errorf("bound to %s: set an advertise address", bound.IP)
	}
	return bound.IP, bound.Port, nil
}

// WriteTo implements memberlist.Transport.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.dropped(addr) {
		return time.Now(), nil
	}
	t.bytesOut.Add(uint64(len(b)))
	var err error
	if ap, perr := netip.ParseAddrPort(addr); perr == nil {
		_, err = t.udp.WriteToUDPAddrPort(b, ap)
	} else {
		var ua *net.UDPAddr
		if ua, err = net.ResolveUDPAddr("udp", addr); err == nil {
			_, err = t.udp.WriteToUDP(b, ua)
		}
	}
	// Taken after the write returns, as memberlist's NetTransport does.
	return time.Now(), err
}

// PacketCh implements memberlist.Transport.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout implements memberlist.Transport.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.dropped(addr) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errDropped}
	}
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", addr)
}

// WriteToAddress implements memberlist.NodeAwareTransport. Packets are
// addressed by IP and port alone (the keyring authenticates them), so the
// node name memberlist passes along is not needed.
func (t *Transport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, addr.Addr)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport, as
// WriteToAddress does for packets.
func (t *Transport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(addr.Addr, timeout)
}

// StreamCh implements memberlist.Transport.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown implements memberlist.Transport: it closes the sockets and the
// streams still being classified or served by Chorus, then waits for the
// transport's goroutines. It is safe to call more than once.
func (t *Transport) Shutdown() error {
	t.once.Do(func() {
		close(t.shutdown)
		t.tcp.Close()
		t.udp.Close()
		t.mu.Lock()
		t.closed = true
		for c := range t.conns {
			c.Close()
		}
		t.mu.Unlock()
		t.wg.Wait()
	})
	return nil
}

type dropError struct{}

func (dropError) Error() string   { return "dropped by test partition" }
func (dropError) Timeout() bool   { return true }
func (dropError) Temporary() bool { return true }

var errDropped = dropError{}
