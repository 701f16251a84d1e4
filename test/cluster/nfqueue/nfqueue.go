// Package nfqueue holds packets that iptables hands to an NFQUEUE for a
// fixed delay (and drops a share of them), speaking the nfnetlink_queue
// protocol over a raw netlink socket with the standard library only.
//
// The cluster harness uses it as a stand-in for `tc qdisc … netem delay`
// on kernels built without the netem qdisc: an iptables rule such as
//
//	iptables -A OUTPUT -o eth0 -j NFQUEUE --queue-num 0 --queue-bypass
//
// sends each outgoing packet to the queue, and Run accepts it once Delay
// has passed. The kernel keeps the packet meanwhile; only its ID crosses
// into user space (copy mode "meta"). Packets leave in arrival order.
//
// The package imports nothing from Chorus.
package nfqueue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Protocol constants from linux/netfilter/nfnetlink_queue.h,
// linux/netfilter/nfnetlink.h and linux/netlink.h.
const (
	netlinkNetfilter = 12 // NETLINK_NETFILTER

	subsysQueue = 3 // NFNL_SUBSYS_QUEUE

	msgPacket  = 0 // NFQNL_MSG_PACKET
	msgVerdict = 1 // NFQNL_MSG_VERDICT
	msgConfig  = 2 // NFQNL_MSG_CONFIG

	attrCfgCmd      = 1 // NFQA_CFG_CMD
	attrCfgParams   = 2 // NFQA_CFG_PARAMS
	attrCfgMaxLen   = 3 // NFQA_CFG_QUEUE_MAXLEN
	attrPacketHdr   = 1 // NFQA_PACKET_HDR
	attrVerdictHdr  = 2 // NFQA_VERDICT_HDR
	cmdBind         = 1 // NFQNL_CFG_CMD_BIND
	cmdUnbind       = 2 // NFQNL_CFG_CMD_UNBIND
	copyMeta        = 1 // NFQNL_COPY_META
	verdictDrop     = 0 // NF_DROP
	verdictAccept   = 1 // NF_ACCEPT
	nlmsgError      = 2 // NLMSG_ERROR
	flagRequest     = 1 // NLM_F_REQUEST
	flagAck         = 4 // NLM_F_ACK
	nlmsgHdrLen     = 16
	nfgenHdrLen     = 4
	attrTypeMask    = 0x3fff // ^(NLA_F_NESTED | NLA_F_NET_BYTEORDER)
	defaultMaxLen   = 8192
	recvBufferBytes = 4 << 20
)

// Config says which queue to serve and what to do with its packets.
type Config struct {
	// Queue is the iptables --queue-num.
	Queue uint16
	// Delay is how long each packet is held before it is accepted.
	Delay time.Duration
	// Loss is the share of packets dropped instead (0 to 1).
	Loss float64
	// MaxLen bounds the kernel's queue; 0 means 8192 packets.
	MaxLen uint32
}

// Stats counts what Run did.
type Stats struct {
	Accepted, Dropped uint64
}

// Run binds cfg.Queue in the calling process's network namespace and
// serves it until ctx is cancelled, then unbinds. It returns what it did.
// Only one process may bind a queue at a time.
func Run(ctx context.Context, cfg Config) (Stats, error) {
	if cfg.Loss < 0 || cfg.Loss > 1 {
		return Stats{}, fmt.Errorf("loss %v: must be between 0 and 1", cfg.Loss)
	}
	if cfg.MaxLen == 0 {
		cfg.MaxLen = defaultMaxLen
	}
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, netlinkNetfilter)
	if err != nil {
		return Stats{}, fmt.Errorf("netlink socket: %w", err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return Stats{}, fmt.Errorf("netlink bind: %w", err)
	}
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, recvBufferBytes)
	// A receive timeout lets the reader notice ctx without closing the
	// socket under it.
	tv := syscall.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return Stats{}, fmt.Errorf("netlink timeout: %w", err)
	}
	s := &server{fd: fd, cfg: cfg, wake: make(chan struct{}, 1)}
	if err := s.request(configCmd(1, cfg.Queue, cmdBind)); err != nil {
		return Stats{}, fmt.Errorf("bind queue %d: %w", cfg.Queue, err)
	}
	defer s.send(configCmd(0, cfg.Queue, cmdUnbind))
	if err := s.request(configParams(2, cfg.Queue, cfg.MaxLen)); err != nil {
		return Stats{}, fmt.Errorf("configure queue %d: %w", cfg.Queue, err)
	}

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.release(done)
	}()
	err = s.read(ctx)
	close(done)
	wg.Wait()
	return Stats{Accepted: s.accepted.Load(), Dropped: s.dropped.Load()}, err
}

type held struct {
	id  uint32
	due time.Time
}

type server struct {
	fd  int
	cfg Config

	mu      sync.Mutex
	queue   []held // FIFO: every packet waits the same Delay
	wake    chan struct{}
	sendMu  sync.Mutex
	readBuf [1 << 16]byte

	accepted, dropped atomic.Uint64
}

// request sends msg with NLM_F_ACK and waits for the kernel's answer.
func (s *server) request(msg []byte) error {
	if err := s.send(msg); err != nil {
		return err
	}
	seq := binary.NativeEndian.Uint32(msg[8:12])
	for range 50 {
		n, _, err := syscall.Recvfrom(s.fd, s.readBuf[:], 0)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			return err
		}
		for _, m := range splitMessages(s.readBuf[:n]) {
			if m.typ == nlmsgError && m.seq == seq {
				return m.err
			}
		}
	}
	return errors.New("no acknowledgement from the kernel")
}

func (s *server) send(msg []byte) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return syscall.Sendto(s.fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK})
}

// read receives packet notices until ctx ends and queues their IDs.
func (s *server) read(ctx context.Context) error {
	for ctx.Err() == nil {
		n, _, err := syscall.Recvfrom(s.fd, s.readBuf[:], 0)
		if err != nil {
			switch {
			case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
				continue
			case errors.Is(err, syscall.ENOBUFS):
				// The kernel dropped notices we were too slow for; those
				// packets are lost, as on a full netem queue.
				continue
			}
			return fmt.Errorf("netlink receive: %w", err)
		}
		now := time.Now()
		for _, m := range splitMessages(s.readBuf[:n]) {
			if m.typ != subsysQueue<<8|msgPacket || !m.hasID {
				continue
			}
			if s.cfg.Loss > 0 && rand.Float64() < s.cfg.Loss {
				if err := s.send(verdict(0, s.cfg.Queue, m.id, verdictDrop)); err != nil {
					return fmt.Errorf("verdict: %w", err)
				}
				s.dropped.Add(1)
				continue
			}
			s.mu.Lock()
			s.queue = append(s.queue, held{id: m.id, due: now.Add(s.cfg.Delay)})
			s.mu.Unlock()
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
	return nil
}

// release accepts held packets as they fall due; on done it accepts the
// rest at once so nothing stays stuck in the kernel.
func (s *server) release(done <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		var next held
		ok := len(s.queue) > 0
		if ok {
			next = s.queue[0]
		}
		s.mu.Unlock()
		if ok {
			if wait := time.Until(next.due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-done:
					s.flush()
					return
				}
			}
			s.mu.Lock()
			s.queue = s.queue[1:]
			s.mu.Unlock()
			if s.send(verdict(0, s.cfg.Queue, next.id, verdictAccept)) == nil {
				s.accepted.Add(1)
			}
			continue
		}
		select {
		case <-s.wake:
		case <-done:
			s.flush()
			return
		}
	}
}

func (s *server) flush() {
	s.mu.Lock()
	q := s.queue
	s.queue = nil
	s.mu.Unlock()
	for _, h := range q {
		_ = s.send(verdict(0, s.cfg.Queue, h.id, verdictAccept))
	}
}

// message is one parsed netlink message.
type message struct {
	typ   uint16
	seq   uint32
	err   error  // NLMSG_ERROR: nil for an acknowledgement
	id    uint32 // NFQNL_MSG_PACKET: the packet ID
	hasID bool
}

// splitMessages parses the netlink messages in b, skipping malformed ones.
func splitMessages(b []byte) []message {
	var out []message
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < nlmsgHdrLen || l > len(b) {
			break
		}
		m := message{typ: binary.NativeEndian.Uint16(b[4:6]), seq: binary.NativeEndian.Uint32(b[8:12])}
		body := b[nlmsgHdrLen:l]
		switch {
		case m.typ == nlmsgError && len(body) >= 4:
			if code := int32(binary.NativeEndian.Uint32(body[0:4])); code != 0 {
				m.err = syscall.Errno(-code)
			}
		case m.typ == subsysQueue<<8|msgPacket && len(body) >= nfgenHdrLen:
			m.id, m.hasID = packetID(body[nfgenHdrLen:])
		}
		out = append(out, m)
		if align(l) >= len(b) {
			break
		}
		b = b[align(l):]
	}
	return out
}

// packetID finds NFQA_PACKET_HDR in attrs and returns its packet ID.
func packetID(attrs []byte) (uint32, bool) {
	for len(attrs) >= 4 {
		l := int(binary.NativeEndian.Uint16(attrs[0:2]))
		typ := binary.NativeEndian.Uint16(attrs[2:4]) & attrTypeMask
		if l < 4 || l > len(attrs) {
			return 0, false
		}
		if typ == attrPacketHdr && l >= 8 {
			return binary.BigEndian.Uint32(attrs[4:8]), true
		}
		if align(l) >= len(attrs) {
			break
		}
		attrs = attrs[align(l):]
	}
	return 0, false
}

func align(n int) int { return (n + 3) &^ 3 }

// build assembles one nfnetlink queue message: netlink header, nfgenmsg
// (family AF_UNSPEC, version 0, the queue number big-endian) and attrs.
func build(seq uint32, msgType uint16, flags uint16, queue uint16, attrs ...[]byte) []byte {
	size := nlmsgHdrLen + nfgenHdrLen
	for _, a := range attrs {
		size += align(len(a))
	}
	b := make([]byte, size)
	binary.NativeEndian.PutUint32(b[0:4], uint32(size))
	binary.NativeEndian.PutUint16(b[4:6], subsysQueue<<8|msgType)
	binary.NativeEndian.PutUint16(b[6:8], flags)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	binary.BigEndian.PutUint16(b[18:20], queue)
	off := nlmsgHdrLen + nfgenHdrLen
	for _, a := range attrs {
		copy(b[off:], a)
		off += align(len(a))
	}
	return b
}

func attr(typ uint16, payload []byte) []byte {
	a := make([]byte, 4+len(payload))
	binary.NativeEndian.PutUint16(a[0:2], uint16(len(a)))
	binary.NativeEndian.PutUint16(a[2:4], typ)
	copy(a[4:], payload)
	return a
}

// configCmd builds an NFQNL_MSG_CONFIG message carrying command cmd
// (bind or unbind) for queue, asking for an acknowledgement.
func configCmd(seq uint32, queue uint16, cmd uint8) []byte {
	// struct nfqnl_msg_config_cmd { u8 command; u8 pad; __be16 pf; }
	p := []byte{cmd, 0, 0, syscall.AF_INET}
	return build(seq, msgConfig, flagRequest|flagAck, queue, attr(attrCfgCmd, p))
}

// configParams builds an NFQNL_MSG_CONFIG message that sets copy mode
// "meta" (no payload to user space) and the queue's maximum length.
func configParams(seq uint32, queue uint16, maxLen uint32) []byte {
	// struct nfqnl_msg_config_params { __be32 copy_range; u8 copy_mode; } packed
	p := []byte{0, 0, 0, 0, copyMeta}
	l := make([]byte, 4)
	binary.BigEndian.PutUint32(l, maxLen)
	return build(seq, msgConfig, flagRequest|flagAck, queue, attr(attrCfgParams, p), attr(attrCfgMaxLen, l))
}

// verdict builds an NFQNL_MSG_VERDICT message for packet id.
func verdict(seq uint32, queue uint16, id uint32, v uint32) []byte {
	// struct nfqnl_msg_verdict_hdr { __be32 verdict; __be32 id; }
	p := make([]byte, 8)
	binary.BigEndian.PutUint32(p[0:4], v)
	binary.BigEndian.PutUint32(p[4:8], id)
	return build(seq, msgVerdict, flagRequest, queue, attr(attrVerdictHdr, p))
}
