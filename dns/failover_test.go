package dns

import (
	"fmt"
	"testing"
	"time"

	"github.com/chorusdns/chorus/catalog"
	"github.com/miekg/dns"
)

// remoteDC builds a remote datacenter's catalog from nodes, as the WAN
// exchange does from a summary.
func remoteDC(t *testing.T, name string, rtt time.Duration, nodes ...node) *catalog.RemoteDatacenter {
	t.Helper()
	st := catalog.NewStore()
	for i := range nodes {
		nodes[i].dc = name
	}
	apply(t, st, nodes...)
	return &catalog.RemoteDatacenter{Name: name, Version: uint64(time.Now().UnixNano()), RTT: rtt, Snapshot: st.Snapshot()}
}

func TestDatacenterFailover(t *testing.T) {
	crit := catalog.HealthCritical
	st := catalog.NewStore()
	local := func(webCheck string) node {
		return node{name: "l1", addr: "10.1.0.1", zone: "a", services: []svc{
			{name: "web", port: 80, check: webCheck},
			{name: "api", port: 80, check: crit, meta: map[string]string{catalog.MetaFailover: "dc3,dc2"}},
			{name: "cache", port: 80, check: crit, meta: map[string]string{catalog.MetaFailover: "nearest:2"}},
			{name: "gone", port: 80, check: crit, meta: map[string]string{catalog.MetaFailover: "dc4"}},
			{name: "db", port: 80},
		}}
	}
	apply(t, st, local(crit))
	dc2web := func(check string) *catalog.RemoteDatacenter {
		return remoteDC(t, "dc2", 30*time.Millisecond,
			node{name: "r2", addr: "10.2.0.5", services: []svc{
				{name: "web", port: 80, check: check}, {name: "api", port: 80}, {name: "cache", port: 80}, {name: "nolocal", port: 80},
			}})
	}
	dc3 := remoteDC(t, "dc3", 10*time.Millisecond,
		node{name: "r3", addr: "10.3.0.5", services: []svc{{name: "api", port: 81}, {name: "cache", port: 81}}})
	dc4 := remoteDC(t, "dc4", 5*time.Millisecond,
		node{name: "r4", addr: "10.4.0.5", services: []svc{{name: "gone", port: 80, check: crit}}})
	st.SetRemotes([]*catalog.RemoteDatacenter{dc2web(""), dc3, dc4})

	cfg := baseConfig()
	cfg.Failover = "dc2"
	ts := startServer(t, cfg, st)

	type tc struct {
		name    string
		qname   string
		qtype   uint16
		rcode   int
		answer  []string // sorted A addresses or SRV targets
		maxTTL  uint32   // 0: not checked
		counted string   // datacenter whose failover counter must move
	}
	run := func(t *testing.T, cases []tc) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := 0.0
				if c.counted != "" {
					before = metricValue(t, ts.reg, "chorus_dns_failover_answers_total", map[string]string{"datacenter": c.counted})
				}
				for _, network := range []string{"udp", "tcp"} {
					r := exchange(t, network, ts.addr, query(c.qname, c.qtype))
					if r.Rcode != c.rcode {
						t.Fatalf("%s: rcode %s, want %s", network, dns.RcodeToString[r.Rcode], dns.RcodeToString[c.rcode])
					}
					var got []string
					for _, rr := range r.Answer {
						switch rr := rr.(type) {
						case *dns.A:
							got = append(got, rr.A.String())
						case *dns.SRV:
							got = append(got, fmt.Sprintf("%s:%d", rr.Target, rr.Port))
						}
						if c.maxTTL > 0 && rr.Header().Ttl > c.maxTTL {
							t.Errorf("%s: TTL %d above %d", network, rr.Header().Ttl, c.maxTTL)
						}
					}
					if fmt.Sprint(got) != fmt.Sprint(c.answer) {
						t.Fatalf("%s: answer %v, want %v", network, got, c.answer)
					}
				}
				if c.counted != "" {
					after := metricValue(t, ts.reg, "chorus_dns_failover_answers_total", map[string]string{"datacenter": c.counted})
					if after != before+2 {
						t.Fatalf("failover counter for %s moved by %v, want 2", c.counted, after-before)
					}
				}
			})
		}
	}
	nx := dns.RcodeNameError
	ok := dns.RcodeSuccess
	run(t, []tc{
		{name: "agent default rule", qname: "web.service.chorus.", qtype: dns.TypeA, rcode: ok, answer: []string{"10.2.0.5"}, maxTTL: failoverTTL, counted: "dc2"},
		{name: "meta list order", qname: "api.service.chorus.", qtype: dns.TypeA, rcode: ok, answer: []string{"10.3.0.5"}, counted: "dc3"},
		{name: "meta nearest:2, the nearest lacks it", qname: "cache.service.chorus.", qtype: dns.TypeA, rcode: ok, answer: []string{"10.3.0.5"}, counted: "dc3"},
		{name: "every remote instance critical", qname: "gone.service.chorus.", qtype: dns.TypeA, rcode: nx},
		{name: "healthy locally", qname: "db.service.chorus.", qtype: dns.TypeA, rcode: ok, answer: []string{"10.1.0.1"}},
		{name: "unknown locally", qname: "nolocal.service.chorus.", qtype: dns.TypeA, rcode: ok, answer: []string{"10.2.0.5"}, counted: "dc2"},
		{name: "unknown everywhere", qname: "nothing.service.chorus.", qtype: dns.TypeA, rcode: nx},
		{name: "failover SRV targets the remote node", qname: "api.service.chorus.", qtype: dns.TypeSRV, rcode: ok, answer: []string{"r3.node.dc3.chorus.:81"}, counted: "dc3"},
		{name: "explicit datacenter", qname: "web.service.dc2.chorus.", qtype: dns.TypeA, rcode: ok, answer: []string{"10.2.0.5"}},
		{name: "explicit datacenter, .dc form", qname: "api.service.dc3.dc.chorus.", qtype: dns.TypeA, rcode: ok, answer: []string{"10.3.0.5"}},
		{name: "explicit datacenter without the service", qname: "web.service.dc3.chorus.", qtype: dns.TypeA, rcode: nx},
		{name: "explicit datacenter never fails over", qname: "gone.service.dc4.chorus.", qtype: dns.TypeA, rcode: nx},
		{name: "unknown datacenter", qname: "web.service.dc9.chorus.", qtype: dns.TypeA, rcode: nx},
		{name: "own datacenter named", qname: "db.service.dc1.chorus.", qtype: dns.TypeA, rcode: ok, answer: []string{"10.1.0.1"}},
		// Naming this datacenter asks for its instances: no failover.
		{name: "own datacenter named, none healthy", qname: "web.service.dc1.chorus.", qtype: dns.TypeA, rcode: nx},
		{name: "own datacenter named, .dc form", qname: "api.service.dc1.dc.chorus.", qtype: dns.TypeA, rcode: nx},
		{name: "own datacenter named, RFC 2782", qname: "_web._tcp.service.dc1.chorus.", qtype: dns.TypeSRV, rcode: nx},
		{name: "RFC 2782 fails over", qname: "_web._tcp.service.chorus.", qtype: dns.TypeSRV, rcode: ok, answer: []string{"r2.node.dc2.chorus.:80"}, counted: "dc2"},
		{name: "remote node", qname: "r2.node.dc2.chorus.", qtype: dns.TypeA, rcode: ok, answer: []string{"10.2.0.5"}},
		{name: "remote node in the wrong datacenter", qname: "r2.node.dc3.chorus.", qtype: dns.TypeA, rcode: nx},
		{name: "remote SRV target resolves", qname: "r3.node.dc3.chorus.", qtype: dns.TypeA, rcode: ok, answer: []string{"10.3.0.5"}},
	})

	// dc2's web turns critical: the cached failover answer must not
	// outlive the summary it came from.
	st.SetRemotes([]*catalog.RemoteDatacenter{dc2web(crit), dc3, dc4})
	run(t, []tc{{name: "remote went critical", qname: "web.service.chorus.", qtype: dns.TypeA, rcode: nx}})
	// ... and healthy again: the cached NXDOMAIN must not outlive it.
	st.SetRemotes([]*catalog.RemoteDatacenter{dc2web(""), dc3, dc4})
	run(t, []tc{{name: "remote healthy again", qname: "web.service.chorus.", qtype: dns.TypeA, rcode: ok, answer: []string{"10.2.0.5"}, counted: "dc2"}})
	// A local instance recovers: back to local answers at once.
	apply(t, st, local(""))
	run(t, []tc{{name: "local recovered", qname: "web.service.chorus.", qtype: dns.TypeA, rcode: ok, answer: []string{"10.1.0.1"}}})
}

func TestFailoverConfig(t *testing.T) {
	for _, tc := range []struct {
		spec string
		ok   bool
	}{
		{"", true}, {"dc2", true}, {"dc2, nearest:2", true}, {"nearest:0", false}, {"dc_2", false},
	} {
		cfg := baseConfig()
		cfg.Failover = tc.spec
		if err := cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("failover %q: err %v, want ok=%v", tc.spec, err, tc.ok)
		}
	}
}
