package replication

import (
	"encoding/binary"
	"net"
	"sync"
)

// Bounds on the streams handed to memberlist (push/pull, TCP pings, user
// messages). Memberlist reads an encrypted stream's whole message (up to
// its own limit of 20 MiB) before it can authenticate it, and serves
// every stream in a goroutine of its own, so without these a few
// outsiders that claim large messages and send garbage make it buffer
// gigabytes. A legitimate push/pull of a 10,000-member pool is a few
// megabytes.
//
// An encrypted memberlist message starts with its length (encryptMsg,
// then 4 bytes): a stream that claims one counts the whole claim against
// the budget as soon as its header arrives, so a claim larger than what
// is left is refused before memberlist buffers any of it.
const (
	// maxMemberlistStreams and maxMemberlistStreamsPerIP bound the
	// streams memberlist serves at once; one beyond them is closed.
	maxMemberlistStreams      = 128
	maxMemberlistStreamsPerIP = 32
	// maxMemberlistBytes and maxMemberlistBytesPerIP bound what the open
	// streams have read, in total and from one IP: a read past them
	// fails, which ends the stream.
	maxMemberlistBytes      = 32 << 20
	maxMemberlistBytesPerIP = 8 << 20
)

// streamBudget counts the memberlist streams open and the bytes they have
// read, in total and per IP. It is safe for concurrent use.
type streamBudget struct {
	mu          sync.Mutex
	open        int
	bytes       int
	perIP       map[string]ipShare
	maxOpen     int
	maxOpenIP   int
	maxBytes    int
	maxBytesIP  int
	onExhausted func(ip string, open, bytes int) // called, unlocked, when a read is refused
}

type ipShare struct{ open, bytes int }

func newStreamBudget() *streamBudget {
	return &streamBudget{perIP: map[string]ipShare{}, maxOpen: maxMemberlistStreams, maxOpenIP: maxMemberlistStreamsPerIP,
		maxBytes: maxMemberlistBytes, maxBytesIP: maxMemberlistBytesPerIP}
}

// wrap returns c counted against the budget, or nil (c untouched) when
// the streams open in total or from ip are at their limit. The returned
// connection gives its share back when closed.
func (b *streamBudget) wrap(c net.Conn, ip string) net.Conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.perIP[ip]
	if b.open >= b.maxOpen || s.open >= b.maxOpenIP {
		return nil
	}
	b.open++
	s.open++
	b.perIP[ip] = s
	return &budgetConn{Conn: c, b: b, ip: ip}
}

// take counts n bytes read from ip; it reports false when they take the
// total or ip's share past its bound (they are counted either way, and
// given back when the stream closes).
func (b *streamBudget) take(ip string, n int) bool {
	b.mu.Lock()
	s := b.perIP[ip]
	b.bytes += n
	s.bytes += n
	b.perIP[ip] = s
	ok := b.bytes <= b.maxBytes && s.bytes <= b.maxBytesIP
	open, bytes := b.open, b.bytes
	b.mu.Unlock()
	if !ok && b.onExhausted != nil {
		b.onExhausted(ip, open, bytes)
	}
	return ok
}

// release gives back one stream from ip and the n bytes it read.
func (b *streamBudget) release(ip string, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open--
	b.bytes -= n
	s := b.perIP[ip]
	s.open--
	s.bytes -= n
	if s.open <= 0 {
		delete(b.perIP, ip)
	} else {
		b.perIP[ip] = s
	}
}

// budgetConn is a stream counted against a streamBudget.
type budgetConn struct {
	net.Conn
	b    *streamBudget
	ip   string
	once sync.Once

	mu   sync.Mutex
	read int  // bytes counted (a claim counts whole, when its header arrives)
	over bool // a read went past the budget: every later one fails
	// hdr holds the stream's first memberlistHeader bytes; body counts
	// the bytes read after them, claim the length an encrypted header
	// claimed (their first claim bytes are counted already).
	hdr   []byte
	body  int
	claim int
}

// memberlistEncrypt is memberlist's encryptMsg type, and memberlistHeader
// the length of an encrypted message's header (type and length).
const (
	memberlistEncrypt = 10
	memberlistHeader  = 5
)

// count returns how many of the n bytes just read in p count against
// the budget now (see the claims above).
func (c *budgetConn) count(p []byte) int {
	n, counted := len(p), 0
	if len(c.hdr) < memberlistHeader {
		k := min(memberlistHeader-len(c.hdr), n)
		c.hdr = append(c.hdr, p[:k]...)
		counted, p = k, p[k:]
		if len(c.hdr) == memberlistHeader && c.hdr[0] == memberlistEncrypt {
			c.claim = int(binary.BigEndian.Uint32(c.hdr[1:]))
			counted += c.claim
		}
	}
	if len(c.hdr) < memberlistHeader {
		return counted
	}
	before := c.body
	c.body += len(p)
	return counted + max(0, c.body-max(before, c.claim))
}

func (c *budgetConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	over := c.over
	c.mu.Unlock()
	if over {
		return 0, errStreamBudget
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		k := c.count(p[:n])
		c.read += k
		c.mu.Unlock()
		if k > 0 && !c.b.take(c.ip, k) {
			c.mu.Lock()
			c.over = true
			c.mu.Unlock()
			return 0, errStreamBudget
		}
	}
	return n, err
}

// Close closes the stream and gives its share back (once).
func (c *budgetConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.mu.Lock()
		n := c.read
		c.mu.Unlock()
		c.b.release(c.ip, n)
	})
	return err
}
