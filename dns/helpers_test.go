package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/test/testutil"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// node describes a test node and its services.
type node struct {
	name, addr, zone, dc string
	meta                 map[string]string
	status               catalog.MemberStatus // default alive
	services             []svc
	nodeCheck            string // status of a node-level check, "" for none
}

// svc describes a test service instance.
type svc struct {
	id, name string
	addr     string
	port     int
	tags     []string
	meta     map[string]string
	weights  catalog.Weights
	load     float64
	check    string // status of its service check, "" for none
	maint    bool
}

var versions sync.Map // node name → last version, so re-applying supersedes

func nextVersion(name string) uint64 {
	for {
		v, _ := versions.LoadOrStore(name, uint64(0))
		if versions.CompareAndSwap(name, v, v.(uint64)+1) {
			return v.(uint64) + 1 + uint64(time.Now().UnixNano())
		}
	}
}

// record builds a valid node record from n.
func record(t testing.TB, n node) *catalog.NodeRecord {
	t.Helper()
	dc := n.dc
	if dc == "" {
		dc = "dc1"
	}
	rec := &catalog.NodeRecord{
		Node:    catalog.Node{Name: n.name, Address: n.addr, Datacenter: dc, Zone: n.zone, Meta: n.meta},
		Version: nextVersion(n.name),
	}
	if n.nodeCheck != "" {
		rec.Checks = rec.Checks.Append(catalog.Check{CheckID: "node-check", Name: "node", Status: n.nodeCheck})
	}
	for _, s := range n.services {
		cs := catalog.Service{ID: s.id, Name: s.name, Address: s.addr, Port: s.port, Tags: s.tags, Meta: s.meta, Weights: s.weights, Load: s.load}
		if err := cs.Validate(); err != nil {
			t.Fatalf("service %+v: %v", s, err)
		}
		rec.Services = rec.Services.Append(cs)
		if s.check != "" {
			rec.Checks = rec.Checks.Append(catalog.Check{CheckID: "check:" + cs.ID, Name: "check", Status: s.check, ServiceID: cs.ID, ServiceName: cs.Name})
		}
		if s.maint {
			rec.Checks = rec.Checks.Append(catalog.Check{CheckID: catalog.ServiceMaintCheckPrefix + cs.ID, Name: "maint", Status: catalog.HealthCritical, ServiceID: cs.ID, ServiceName: cs.Name})
		}
	}
	rec.Sort()
	if err := rec.Validate(); err != nil {
		t.Fatalf("record %s: %v", n.name, err)
	}
	return rec
}

// apply puts nodes into st as alive (or their status) members.
func apply(t testing.TB, st *catalog.Store, nodes ...node) {
	t.Helper()
	for _, n := range nodes {
		st.ApplyRecord(record(t, n))
		status := n.status
		if status == catalog.MemberNone {
			status = catalog.MemberAlive
		}
		st.SetMember(n.name, n.addr, status)
	}
}

// testServer is a server bound on 127.0.0.1:0 and running.
type testServer struct {
	*Server
	addr string
	reg  *prometheus.Registry
}

// startServer starts a server for src with cfg; it is stopped at cleanup.
func startServer(t testing.TB, cfg Config, src Source) *testServer {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	s, err := New(cfg, src, testutil.Logger(t), reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	addr := s.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return")
		}
	})
	return &testServer{Server: s, addr: addr, reg: reg}
}

// baseConfig is the configuration most tests use.
func baseConfig() Config {
	c := DefaultConfig()
	c.Domain = "chorus"
	c.AltDomain = "consul."
	c.NodeName = "n1"
	c.Datacenter = "dc1"
	c.Zone = "a"
	c.NodeAddress = "10.0.0.1"
	return c
}

// exchange sends m over network ("udp" or "tcp") and returns the reply.
func exchange(t testing.TB, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 65535}
	var r *dns.Msg
	var err error
	for i := 0; i < 3; i++ {
		r, _, err = c.Exchange(m, addr)
		if err == nil {
			return r
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			break
		}
	}
	t.Fatalf("exchange %s %s: %v", network, m.Question[0].String(), err)
	return nil
}

// query builds a query for name and type.
func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// rawExchange sends the packed query over UDP and returns the raw reply.
func rawExchange(t testing.TB, addr string, m *dns.Msg) ([]byte, *dns.Msg) {
	t.Helper()
	wire, err := m.Pack()
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	return rawExchangeBytes(t, addr, wire)
}

func rawExchangeBytes(t testing.TB, addr string, wire []byte) ([]byte, *dns.Msg) {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	buf := make([]byte, 65536)
	for i := 0; i < 3; i++ {
		if _, err := conn.Write(wire); err != nil {
			t.Fatalf("write: %v", err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			continue
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:n]); err != nil {
			t.Fatalf("unpack reply: %v (% x)", err, buf[:n])
		}
		return buf[:n], r
	}
	t.Fatalf("no reply from %s", addr)
	return nil, nil
}

// rrStrings renders records as sorted zone-file lines.
func rrStrings(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, rr.String())
	}
	sort.Strings(out)
	return out
}

// mustRRs parses zone-file lines.
func mustRRs(t testing.TB, lines ...string) []string {
	t.Helper()
	var rrs []dns.RR
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("NewRR %q: %v", l, err)
		}
		rrs = append(rrs, rr)
	}
	return rrStrings(rrs)
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// metricValue reads a counter or the sample count of a histogram from reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
		}
	}
	return 0
}

// recorder is a ResponseWriter that keeps what is written, for handler
// tests and fuzzing (coredns dnstest.Recorder style).
type recorder struct {
	remote net.Addr
	wire   []byte
	msg    *dns.Msg
	writes int
}

func newRecorder(tcp bool) *recorder {
	if tcp {
		return &recorder{remote: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5353}}
	}
	return &recorder{remote: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5353}}
}

func (r *recorder) LocalAddr() net.Addr       { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr      { return r.remote }
func (r *recorder) Close() error              { return nil }
func (r *recorder) TsigStatus() error         { return nil }
func (r *recorder) TsigTimersOnly(bool)       {}
func (r *recorder) Hijack()                   {}
func (r *recorder) Network() string           { return r.remote.Network() }
func (r *recorder) String() string            { return fmt.Sprint(r.msg) }
func (r *recorder) reset()                    { r.wire, r.msg, r.writes = r.wire[:0], nil, 0 }
func (r *recorder) WriteMsg(m *dns.Msg) error { r.msg = m; r.writes++; return nil }
func (r *recorder) Write(b []byte) (int, error) {
	r.wire = append(r.wire[:0], b...)
	r.writes++
	return len(b), nil
}

// reply decodes what was written.
func (r *recorder) reply(t testing.TB) *dns.Msg {
	t.Helper()
	if r.msg != nil {
		return r.msg
	}
	if r.wire == nil {
		t.Fatalf("nothing written")
	}
	m := new(dns.Msg)
	if err := m.Unpack(r.wire); err != nil {
		t.Fatalf("unpack: %v", err)
	}
	return m
}

// staticSource serves a fixed snapshot.
type staticSource struct{ snap *catalog.Snapshot }

func (s staticSource) Snapshot() *catalog.Snapshot { return s.snap }

// panicSource panics on every Snapshot call.
type panicSource struct{}

func (panicSource) Snapshot() *catalog.Snapshot { panic("snapshot exploded") }

func lower(s string) string { return strings.ToLower(s) }
