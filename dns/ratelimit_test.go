package dns

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestRateLimiterBuckets(t *testing.T) {
	l := newRateLimiter(10, 20)
	now := time.Now()
	a := &net.UDPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1000}
	b := &net.UDPAddr{IP: net.ParseIP("192.0.2.2"), Port: 1000}
	n := 0
	for i := 0; i < 100; i++ {
		if l.allow(a, now) {
			n++
		}
	}
	if n != 20 {
		t.Fatalf("burst allowed %d, want 20", n)
	}
	if !l.allow(b, now) {
		t.Fatal("another source was limited")
	}
	if !l.allow(a, now.Add(150*time.Millisecond)) {
		t.Fatal("tokens did not refill")
	}
	// Two addresses of one IPv6 /64 share a bucket.
	v6a := &net.UDPAddr{IP: net.ParseIP("2001:db8::1")}
	v6b := &net.UDPAddr{IP: net.ParseIP("2001:db8::2")}
	for i := 0; i < 20; i++ {
		l.allow(v6a, now)
	}
	if l.allow(v6b, now) {
		t.Fatal("the /64 neighbour was not limited")
	}
	l.sweep(now.Add(time.Hour))
	for i := range l.shards {
		if len(l.shards[i].buckets) != 0 {
			t.Fatal("sweep kept idle buckets")
		}
	}
	var none *rateLimiter
	if !none.allow(a, now) {
		t.Fatal("nil limiter refused")
	}
}

func TestRateLimitOverUDP(t *testing.T) {
	cfg := baseConfig()
	cfg.RateLimit, cfg.RateLimitBurst = 5, 5
	ts := startServer(t, cfg, fixture(t))
	refused := 0
	for i := 0; i < 30; i++ {
		r := exchange(t, "udp", ts.addr, query("web.service.chorus.", dns.TypeA))
		if r.Rcode == dns.RcodeRefused {
			refused++
		}
	}
	if refused < 20 {
		t.Fatalf("only %d of 30 queries refused over a 5/s limit", refused)
	}
}
