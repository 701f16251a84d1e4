package dns

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/test/testutil"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// upstream is a real miekg/dns recursor for the forwarding tests.
type upstream struct {
	addr string
	mu   sync.Mutex
	nets []string // transport of each query received
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.mu.Lock()
		u.nets = append(u.nets, w.RemoteAddr().Network())
		u.mu.Unlock()
		m := new(dns.Msg)
		m.SetReply(r)
		switch r.Question[0].Name {
		case "fail.example.":
			m.Rcode = dns.RcodeServerFailure
		case "missing.example.":
			m.Rcode = dns.RcodeNameError
		default:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)})
		}
		_ = w.WriteMsg(m)
	})
	// The UDP port picked by the kernel may be taken for TCP: retry.
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if attempt == 20 {
			t.Fatal(err)
		}
	}
	u.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	}
	return u
}

// deadAddr is a UDP address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// blackhole is a UDP socket that reads queries and never answers.
func blackhole(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().String()
}

func TestRecursors(t *testing.T) {
	up := startUpstream(t)
	dead, hole := deadAddr(t), blackhole(t)
	cfg := baseConfig()
	cfg.Recursors = []string{dead, hole, up.addr}
	cfg.RecursorTimeout = 300 * time.Millisecond
	ts := startServer(t, cfg, fixture(t))

	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, network, ts.addr, query("www.example.", dns.TypeA))
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
			t.Fatalf("%s forwarded answer: %v", network, r)
		}
		if !r.RecursionAvailable || r.Authoritative {
			t.Errorf("%s flags: RA=%v AA=%v", network, r.RecursionAvailable, r.Authoritative)
		}
	}
	up.mu.Lock()
	nets := strings.Join(up.nets, ",")
	up.mu.Unlock()
	if nets != "udp,tcp" {
		t.Errorf("upstream saw %q, want the client's transport each time", nets)
	}
	// Upstream answers are passed through, NXDOMAIN included.
	if r := exchange(t, "udp", ts.addr, query("missing.example.", dns.TypeA)); r.Rcode != dns.RcodeNameError {
		t.Errorf("upstream NXDOMAIN became %s", dns.RcodeToString[r.Rcode])
	}
	// An upstream SERVFAIL makes the server try the next; here there is none.
	if r := exchange(t, "udp", ts.addr, query("fail.example.", dns.TypeA)); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("upstream SERVFAIL: %s", dns.RcodeToString[r.Rcode])
	}
	// Our own names still answer with RA set and are not forwarded.
	if r := exchange(t, "udp", ts.addr, query("web.service.chorus.", dns.TypeA)); !r.RecursionAvailable || !r.Authoritative || len(r.Answer) != 2 {
		t.Errorf("own name with recursors: %v", r)
	}
	// Reverse names we do not know are forwarded.
	if r := exchange(t, "udp", ts.addr, query("9.9.9.9.in-addr.arpa.", dns.TypePTR)); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("unknown PTR not forwarded: %v", r)
	}
	for _, rec := range []string{dead, hole} {
		if v := metricValue(t, ts.reg, "chorus_dns_recursor_failures_total", map[string]string{"recursor": rec}); v < 1 {
			t.Errorf("failures of %s: %v", rec, v)
		}
	}
	if v := metricValue(t, ts.reg, "chorus_dns_recursor_forwards_total", nil); v < 4 {
		t.Errorf("forwards: %v", v)
	}
}

func TestRecursorsAllDead(t *testing.T) {
	cfg := baseConfig()
	cfg.Recursors = []string{deadAddr(t), blackhole(t)}
	cfg.RecursorTimeout = 200 * time.Millisecond
	ts := startServer(t, cfg, fixture(t))
	start := time.Now()
	r := exchange(t, "udp", ts.addr, query("www.example.", dns.TypeA))
	if r.Rcode != dns.RcodeServerFailure || !r.RecursionAvailable {
		t.Errorf("all dead: %s RA=%v", dns.RcodeToString[r.Rcode], r.RecursionAvailable)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %s; the per-attempt timeout is 200ms", el)
	}
}

// rawQuery packs a query header and question by hand.
func rawQuery(id uint16, flags uint16, qd, an, ns, ar int, body ...[]byte) []byte {
	b := make([]byte, 12)
	writeHeader(b, id, flags, qd, an, ns, ar)
	for _, p := range body {
		b = append(b, p...)
	}
	return b
}

func rawQuestion(name string, qtype, qclass uint16) []byte {
	b, _ := appendQuestionName(nil, name)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, qclass)
}

func TestMalformed(t *testing.T) {
	ts := startServer(t, baseConfig(), fixture(t))
	q := rawQuestion("web.service.chorus.", dns.TypeA, dns.ClassINET)
	opt := func(version byte) []byte {
		return []byte{0, 0, 41, 0x04, 0xd0, 0, version, 0, 0, 0, 0}
	}
	cases := []struct {
		name  string
		wire  []byte
		rcode int
	}{
		{"no question", rawQuery(1, flagRD, 0, 0, 0, 0), dns.RcodeFormatError},
		{"two questions", rawQuery(2, flagRD, 2, 0, 0, 0, q, q), dns.RcodeFormatError},
		{"opcode NOTIFY", rawQuery(3, 4<<11, 1, 0, 0, 0, q), dns.RcodeNotImplemented},
		{"opcode STATUS", rawQuery(4, 2<<11, 1, 0, 0, 0, q), dns.RcodeNotImplemented},
		{"opcode UPDATE", rawQuery(5, 5<<11, 1, 0, 0, 0, q), dns.RcodeNotImplemented},
		{"EDNS version 1", rawQuery(6, 0, 1, 0, 0, 1, q, opt(1)), dns.RcodeBadVers},
		{"two OPT records", rawQuery(7, 0, 1, 0, 0, 2, q, opt(0), opt(0)), dns.RcodeFormatError},
		{"qtype OPT", rawQuery(8, 0, 1, 0, 0, 0, rawQuestion("web.service.chorus.", dns.TypeOPT, dns.ClassINET)), dns.RcodeFormatError},
		{"AXFR", rawQuery(9, 0, 1, 0, 0, 0, rawQuestion("chorus.", dns.TypeAXFR, dns.ClassINET)), dns.RcodeNotImplemented},
		{"class CHAOS", rawQuery(10, 0, 1, 0, 0, 0, rawQuestion("version.bind.", dns.TypeTXT, dns.ClassCHAOS)), dns.RcodeRefused},
		{"class ANY", rawQuery(11, 0, 1, 0, 0, 0, rawQuestion("web.service.chorus.", dns.TypeA, dns.ClassANY)), dns.RcodeSuccess},
		{"bad ECS family", rawQuery(12, 0, 1, 0, 0, 1, q, []byte{0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 8, 0, 8, 0, 4, 0, 9, 24, 0}), dns.RcodeFormatError},
		{"ECS bits beyond prefix", rawQuery(13, 0, 1, 0, 0, 1, q, []byte{0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 11, 0, 8, 0, 7, 0, 1, 8, 0, 10, 1, 0}), dns.RcodeFormatError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, r := rawExchangeBytes(t, ts.addr, tc.wire)
			if r.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			if r.Id != binary.BigEndian.Uint16(tc.wire) {
				t.Errorf("id %d", r.Id)
			}
		})
	}
	t.Run("garbage gets no answer and the server lives on", func(t *testing.T) {
		conn, err := net.Dial("udp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, g := range [][]byte{{1, 2, 3}, rawQuery(14, flagQR, 1, 0, 0, 0, q), append(rawQuery(15, 0, 1, 0, 0, 0), 0xff, 0xff)} {
			if _, err := conn.Write(g); err != nil {
				t.Fatal(err)
			}
		}
		_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		buf := make([]byte, 512)
		if n, err := conn.Read(buf); err == nil {
			var m dns.Msg
			_ = m.Unpack(buf[:n])
			if m.Id == 14 {
				t.Errorf("answered a response")
			}
		}
		if r := exchange(t, "udp", ts.addr, query("web.service.chorus.", dns.TypeA)); len(r.Answer) != 2 {
			t.Errorf("server broken after garbage: %v", r)
		}
	})
	t.Run("handler checks what miekg/dns lets through", func(t *testing.T) {
		s, err := New(baseConfig(), fixture(t), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		w := newRecorder(false)
		m := new(dns.Msg)
		m.Id = 77
		s.ServeDNS(w, m)
		if r := w.reply(t); r.Rcode != dns.RcodeFormatError || r.Id != 77 {
			t.Errorf("no question: %v", r)
		}
		w.reset()
		m = query("web.service.chorus.", dns.TypeA)
		m.Question = append(m.Question, m.Question[0])
		s.ServeDNS(w, m)
		if r := w.reply(t); r.Rcode != dns.RcodeFormatError {
			t.Errorf("two questions: %v", r)
		}
		w.reset()
		m = query("web.service.chorus", dns.TypeA) // not fully qualified
		s.ServeDNS(w, m)
		if r := w.reply(t); r.Rcode != dns.RcodeFormatError {
			t.Errorf("relative name: %v", r)
		}
		w.reset()
		m = query("web.service.chorus.", dns.TypeA)
		m.Response = true
		s.ServeDNS(w, m)
		if w.writes != 0 {
			t.Errorf("answered a response")
		}
	})
}

func TestEDNSEcho(t *testing.T) {
	ts := startServer(t, baseConfig(), fixture(t))
	m := query("web.service.chorus.", dns.TypeA)
	m.SetEdns0(4096, true)
	m.CheckingDisabled = true
	r := exchange(t, "udp", ts.addr, m)
	opt := r.IsEdns0()
	if opt == nil || !opt.Do() || opt.UDPSize() != DefaultMaxUDPSize || opt.Version() != 0 {
		t.Errorf("OPT %v", opt)
	}
	if !r.CheckingDisabled || !r.RecursionDesired {
		t.Errorf("CD/RD not copied")
	}
	// Non-hash answers echo ECS with scope 0 (not tailored to the client).
	r = exchange(t, "udp", ts.addr, ecsQuery("web.service.chorus.", dns.TypeA, "198.51.100.0/24"))
	e := r.IsEdns0().Option[0].(*dns.EDNS0_SUBNET)
	if e.SourceNetmask != 24 || e.SourceScope != 0 || e.Address.String() != "198.51.100.0" {
		t.Errorf("ECS echo %v", e)
	}
}

func TestPanicBecomesServfail(t *testing.T) {
	ts := startServer(t, baseConfig(), panicSource{})
	for i := 1; i <= 2; i++ {
		for _, network := range []string{"udp", "tcp"} {
			m := query("web.service.chorus.", dns.TypeA)
			m.SetEdns0(1232, false)
			r := exchange(t, network, ts.addr, m)
			if r.Rcode != dns.RcodeServerFailure || r.Id != m.Id || r.IsEdns0() == nil {
				t.Fatalf("%s: %v", network, r)
			}
		}
		waitMetric(t, ts.reg, "chorus_dns_panics_total", nil, float64(2*i))
	}
	waitMetric(t, ts.reg, "chorus_dns_queries_total", map[string]string{"qtype": "A", "rcode": "SERVFAIL"}, 4)
	// Outside the domain no snapshot is read: REFUSED as usual.
	if r := exchange(t, "udp", ts.addr, query("example.com.", dns.TypeA)); r.Rcode != dns.RcodeRefused {
		t.Errorf("outside: %s", dns.RcodeToString[r.Rcode])
	}
}

func TestMetrics(t *testing.T) {
	ts := startServer(t, baseConfig(), fixture(t))
	exchange(t, "udp", ts.addr, query("web.service.chorus.", dns.TypeA))
	exchange(t, "tcp", ts.addr, query("nope.service.chorus.", dns.TypeSRV))
	exchange(t, "udp", ts.addr, query("web.service.chorus.", 65000))
	waitMetric(t, ts.reg, "chorus_dns_queries_total", map[string]string{"qtype": "A", "rcode": "NOERROR"}, 1)
	waitMetric(t, ts.reg, "chorus_dns_queries_total", map[string]string{"qtype": "SRV", "rcode": "NXDOMAIN"}, 1)
	waitMetric(t, ts.reg, "chorus_dns_queries_total", map[string]string{"qtype": "other", "rcode": "NOERROR"}, 1)
	waitMetric(t, ts.reg, "chorus_dns_request_duration_seconds", nil, 3)
	// A second server cannot register on the same registry.
	if _, err := New(baseConfig(), fixture(t), nil, ts.reg); err == nil {
		t.Errorf("double registration accepted")
	}
}

func TestListenRun(t *testing.T) {
	s, err := New(baseConfig(), catalog.NewStore(), testutil.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); !errors.Is(err, errNotListening) {
		t.Fatalf("Run before Listen: %v", err)
	}
	if s.Addr() != "" {
		t.Errorf("Addr before Listen: %q", s.Addr())
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0"); err == nil {
		t.Errorf("second Listen accepted")
	}
	addr := s.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for _, network := range []string{"udp", "tcp"} {
		if r := exchange(t, network, addr, query("chorus.", dns.TypeSOA)); len(r.Answer) != 1 {
			t.Errorf("%s on %s: %v", network, addr, r)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	// The port is free again: both sockets were closed.
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("UDP port still bound: %v", err)
	}
	pc.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("TCP port still bound: %v", err)
	}
	ln.Close()
	// A port already taken is an error naming it.
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	s2, _ := New(baseConfig(), catalog.NewStore(), nil, nil)
	if err := s2.Listen(busy.LocalAddr().String()); err == nil || !strings.Contains(err.Error(), busy.LocalAddr().String()) {
		t.Errorf("Listen on a busy port: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	cases := []struct {
		name string
		mod  func(*Config)
		key  string
	}{
		{"policy", func(c *Config) { c.Policy = "x" }, `dns.policy: unknown policy "x"`},
		{"empty domain", func(c *Config) { c.Domain = "" }, "domain"},
		{"bad domain", func(c *Config) { c.Domain = "a b" }, "domain"},
		{"root domain", func(c *Config) { c.Domain = "." }, "domain"},
		{"alt equals domain", func(c *Config) { c.AltDomain = "CHORUS" }, "alt_domain"},
		{"bad recursor", func(c *Config) { c.Recursors = []string{"dns.google"} }, "recursors[0]"},
		{"bad recursor port", func(c *Config) { c.Recursors = []string{"1.1.1.1:0"} }, "recursors[0]"},
		{"negative timeout", func(c *Config) { c.RecursorTimeout = -time.Second }, "dns.recursor_timeout"},
		{"negative node ttl", func(c *Config) { c.NodeTTL = -time.Second }, "dns.node_ttl"},
		{"negative service ttl", func(c *Config) { c.ServiceTTL = -time.Second }, "dns.service_ttl"},
		{"bad ttl key", func(c *Config) { c.ServiceTTLs = map[string]time.Duration{"a*b": time.Second} }, "dns.service_ttls.a*b"},
		{"first of several bad ttl keys", func(c *Config) {
			c.ServiceTTLs = map[string]time.Duration{"z*z": time.Second, "m*m": time.Second, "b*b": time.Second, "web": -time.Second}
		}, "dns.service_ttls.b*b"},
		{"negative a limit", func(c *Config) { c.ARecordLimit = -1 }, "dns.a_record_limit"},
		{"negative udp limit", func(c *Config) { c.UDPAnswerLimit = -1 }, "dns.udp_answer_limit"},
		{"small udp size", func(c *Config) { c.MaxUDPSize = 100 }, "dns.max_udp_size"},
		{"soa", func(c *Config) { c.SOA.MinTTL = 1 << 31 }, "dns.soa.min_ttl"},
		{"node address", func(c *Config) { c.NodeAddress = "host" }, "advertise"},
		{"datacenter", func(c *Config) { c.Datacenter = "dc 1" }, "datacenter"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.key) {
				t.Errorf("error %v, want it to start with %q", err, tc.key)
			}
			if _, err := New(c, catalog.NewStore(), nil, nil); err == nil {
				t.Errorf("New accepted it")
			}
		})
	}
	// Normalisation.
	c := DefaultConfig()
	c.Domain = "Example.COM"
	c.Recursors = []string{"1.1.1.1", "[2606:4700::1111]:5353"}
	rt, err := compile(c)
	if err != nil {
		t.Fatal(err)
	}
	if rt.domains[0] != "example.com." || rt.recursors[0] != "1.1.1.1:53" || rt.recursors[1] != "[2606:4700::1111]:5353" || rt.rtimeout != 2*time.Second {
		t.Errorf("normalised: %v %v %v", rt.domains, rt.recursors, rt.rtimeout)
	}
}

func TestOddNames(t *testing.T) {
	ts := startServer(t, baseConfig(), fixture(t))
	cases := []struct {
		label string
		wire  []byte // the question name in wire form
		rcode int
	}{
		{"high bytes", []byte("\x04\xc8\xff\x80A\x07service\x06chorus\x00"), dns.RcodeNameError},
		{"dot inside a label", []byte("\x05we.b1\x07service\x06chorus\x00"), dns.RcodeNameError},
		{"dot inside the domain label", []byte("\x08a.chorus\x00"), dns.RcodeRefused},
		{"space", []byte("\x04we b\x04node\x06CHORUS\x00"), dns.RcodeNameError},
		{"long name", append(bytes.Repeat([]byte("\x3faaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 3), []byte("\x35aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x06chorus\x00")...), dns.RcodeNameError},
	}
	for _, tc := range cases {
		t.Run(tc.label, func(t *testing.T) {
			q := append(append([]byte(nil), tc.wire...), 0, 1, 0, 1)
			wire, r := rawExchangeBytes(t, ts.addr, rawQuery(42, flagRD, 1, 0, 0, 0, q))
			if r.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			if !bytes.Equal(wire[12:12+len(q)], q) {
				t.Errorf("question not echoed byte for byte:\n% x\n% x", wire[12:12+len(q)], q)
			}
			if tc.rcode == dns.RcodeNameError && (len(r.Ns) != 1 || !strings.EqualFold(r.Ns[0].Header().Name, "chorus.")) {
				t.Errorf("authority %v", r.Ns)
			}
		})
	}
}

// waitMetric waits until a metric equals want: the server counts a
// query after its reply is on the wire, so a client can read the counter
// before it moves.
func waitMetric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string, want float64) {
	t.Helper()
	testutil.Eventually(t, 2*time.Second, func() error {
		if v := metricValue(t, reg, name, labels); v != want {
			return fmt.Errorf("%s%v = %v, want %v", name, labels, v, want)
		}
		return nil
	})
}
