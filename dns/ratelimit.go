package dns

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// rateLimiter is a token bucket per query source: an IPv4 address, or
// the /64 of an IPv6 one (a single host usually owns a whole /64). It is
// sharded so concurrent queries rarely contend; idle buckets are dropped
// by sweep. A nil *rateLimiter allows everything.
type rateLimiter struct {
	rate   float64 // tokens per second
	burst  float64
	shards [64]rlShard
}

type rlShard struct {
	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(perSecond, burst int) *rateLimiter {
	if perSecond <= 0 {
		return nil
	}
	if burst < perSecond {
		burst = perSecond
	}
	l := &rateLimiter{rate: float64(perSecond), burst: float64(burst)}
	for i := range l.shards {
		l.shards[i].buckets = make(map[netip.Addr]*bucket)
	}
	return l
}

// sourceKey maps a client address onto its bucket.
func sourceKey(a net.Addr) (netip.Addr, bool) {
	var ip netip.Addr
	switch v := a.(type) {
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(v.IP)
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(v.IP)
	default:
		return netip.Addr{}, false
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip, ip.IsValid()
}

// allow takes one token from the source's bucket and reports whether one
// was left.
func (l *rateLimiter) allow(a net.Addr, now time.Time) bool {
	if l == nil {
		return true
	}
	key, ok := sourceKey(a)
	if !ok {
		return true
	}
	b16 := key.As16()
	sh := &l.shards[(b16[15]^b16[7]^b16[11])%byte(len(l.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		sh.buckets[key] = b
	}
	b.tokens += now.Sub(b.last).Seconds() * l.rate
	if b.tokens > l.burst {
		b.tokens = l.burst
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep drops buckets that have been full (idle) for a while, bounding
// memory under floods from many sources.
func (l *rateLimiter) sweep(now time.Time) {
	if l == nil {
		return
	}
	idle := time.Duration(l.burst/l.rate*float64(time.Second)) + time.Second
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for k, b := range sh.buckets {
			if now.Sub(b.last) > idle {
				delete(sh.buckets, k)
			}
		}
		sh.mu.Unlock()
	}
}
