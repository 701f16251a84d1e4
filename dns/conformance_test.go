package dns

import (
	"strconv"
	"testing"

	"github.com/chorusdns/chorus/catalog"
	"github.com/miekg/dns"
)

// fixture is the catalog of the conformance tests. The answering agent is
// n1 in zone a of dc1.
func fixture(t testing.TB) *catalog.Store {
	t.Helper()
	st := catalog.NewStore()
	apply(t, st,
		node{name: "n1", addr: "10.0.0.1", zone: "a", meta: map[string]string{"rack": "r1", "rfc1035-raw": "plain"}, services: []svc{
			{name: "web", port: 80, tags: []string{"v1", "prod"}, meta: map[string]string{"version": "1"}},
			{name: "api", addr: "192.168.1.10", port: 8080},
			{name: "db", port: 5432},
			{name: "crit", port: 1, check: catalog.HealthCritical},
			{name: "warn", port: 2, check: catalog.HealthWarning},
			{name: "maint", port: 3, maint: true},
			{name: "ext", addr: "db.example.com", port: 3306, meta: map[string]string{"k": "v"}},
			{name: "txtless", port: 4},
		}},
		node{name: "n2", addr: "10.0.0.2", zone: "a", services: []svc{
			{name: "web", port: 80, tags: []string{"v2"}},
			{name: "db", port: 5432, meta: map[string]string{MetaPriority: "2"}},
		}},
		node{name: "n3", addr: "10.0.0.3", zone: "b", services: []svc{
			{name: "web", port: 81},
			{name: "zonal", port: 9000},
		}},
		node{name: "n4", addr: "fd00::4", zone: "a", services: []svc{
			{name: "v6", port: 443},
		}},
		node{name: "n5", addr: "10.0.0.5", zone: "a", status: catalog.MemberFailed, services: []svc{
			{name: "onfailed", port: 1},
		}},
		node{name: "other", addr: "10.9.0.1", zone: "a", dc: "dc2", services: []svc{
			{name: "remote", port: 1},
		}},
	)
	return st
}

// dnsCase is one conformance case, run over UDP and TCP.
type dnsCase struct {
	name   string
	qname  string
	qtype  uint16
	rcode  int
	answer []string // zone-file lines; nil means empty
	ns     []string
	extra  []string
	noAA   bool
	edns   bool
}

func TestConformance(t *testing.T) {
	st := fixture(t)
	ts := startServer(t, baseConfig(), st)
	serial := soaSerial(st.Snapshot())
	soa := func(domain string) string {
		return dns.Fqdn(domain) + " 5 IN SOA n1.node." + dns.Fqdn(domain) + " hostmaster." + dns.Fqdn(domain) + " " +
			itoa(serial) + " 3600 600 86400 5"
	}
	cases := []dnsCase{
		{name: "service A prefers own zone", qname: "web.service.chorus.", qtype: dns.TypeA,
			answer: []string{"web.service.chorus. 0 IN A 10.0.0.1", "web.service.chorus. 0 IN A 10.0.0.2"}},
		{name: "case echoed", qname: "WeB.SeRvIcE.ChOrUs.", qtype: dns.TypeA,
			answer: []string{"WeB.SeRvIcE.ChOrUs. 0 IN A 10.0.0.1", "WeB.SeRvIcE.ChOrUs. 0 IN A 10.0.0.2"}},
		{name: "service AAAA NODATA", qname: "web.service.chorus.", qtype: dns.TypeAAAA,
			ns: []string{soa("chorus")}},
		{name: "service MX NODATA", qname: "web.service.chorus.", qtype: dns.TypeMX,
			ns: []string{soa("chorus")}},
		{name: "service SRV", qname: "web.service.chorus.", qtype: dns.TypeSRV,
			answer: []string{"web.service.chorus. 0 IN SRV 1 1 80 n1.node.chorus.", "web.service.chorus. 0 IN SRV 1 1 80 n2.node.chorus."},
			extra:  []string{"n1.node.chorus. 0 IN A 10.0.0.1", "n2.node.chorus. 0 IN A 10.0.0.2", `n1.node.chorus. 0 IN TXT "version=1"`}},
		{name: "service TXT", qname: "web.service.chorus.", qtype: dns.TypeTXT,
			answer: []string{`web.service.chorus. 0 IN TXT "version=1"`}},
		{name: "service TXT without meta", qname: "txtless.service.chorus.", qtype: dns.TypeTXT,
			ns: []string{soa("chorus")}},
		{name: "service ANY minimal", qname: "web.service.chorus.", qtype: dns.TypeANY,
			answer: []string{"web.service.chorus. 0 IN A 10.0.0.1", "web.service.chorus. 0 IN A 10.0.0.2"}},
		{name: "tag", qname: "v1.web.service.chorus.", qtype: dns.TypeA,
			answer: []string{"v1.web.service.chorus. 0 IN A 10.0.0.1"}},
		{name: "tag case-insensitive", qname: "PROD.web.service.chorus.", qtype: dns.TypeA,
			answer: []string{"PROD.web.service.chorus. 0 IN A 10.0.0.1"}},
		{name: "unknown tag", qname: "v9.web.service.chorus.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{soa("chorus")}},
		{name: "rfc2782 tag", qname: "_web._v2.service.chorus.", qtype: dns.TypeSRV,
			answer: []string{"_web._v2.service.chorus. 0 IN SRV 1 1 80 n2.node.chorus."},
			extra:  []string{"n2.node.chorus. 0 IN A 10.0.0.2"}},
		{name: "rfc2782 tcp", qname: "_web._tcp.service.chorus.", qtype: dns.TypeSRV,
			answer: []string{"_web._tcp.service.chorus. 0 IN SRV 1 1 80 n1.node.chorus.", "_web._tcp.service.chorus. 0 IN SRV 1 1 80 n2.node.chorus."},
			extra:  []string{"n1.node.chorus. 0 IN A 10.0.0.1", "n2.node.chorus. 0 IN A 10.0.0.2", `n1.node.chorus. 0 IN TXT "version=1"`}},
		{name: "rfc2782 A with service label", qname: "_web._tcp.service.chorus.", qtype: dns.TypeA,
			answer: []string{"_web._tcp.service.chorus. 0 IN A 10.0.0.1", "_web._tcp.service.chorus. 0 IN A 10.0.0.2"}},
		{name: "rfc2782 without service label", qname: "_web._udp.chorus.", qtype: dns.TypeSRV,
			answer: []string{"_web._udp.chorus. 0 IN SRV 1 1 80 n1.node.chorus.", "_web._udp.chorus. 0 IN SRV 1 1 80 n2.node.chorus."},
			extra:  []string{"n1.node.chorus. 0 IN A 10.0.0.1", "n2.node.chorus. 0 IN A 10.0.0.2", `n1.node.chorus. 0 IN TXT "version=1"`}},
		{name: "rfc2782 without service label, A is NODATA", qname: "_web._tcp.chorus.", qtype: dns.TypeA,
			ns: []string{soa("chorus")}},
		{name: "own datacenter", qname: "web.service.dc1.chorus.", qtype: dns.TypeA,
			answer: []string{"web.service.dc1.chorus. 0 IN A 10.0.0.1", "web.service.dc1.chorus. 0 IN A 10.0.0.2"}},
		{name: "own datacenter .dc form", qname: "web.service.dc1.dc.chorus.", qtype: dns.TypeA,
			answer: []string{"web.service.dc1.dc.chorus. 0 IN A 10.0.0.1", "web.service.dc1.dc.chorus. 0 IN A 10.0.0.2"}},
		{name: "other datacenter", qname: "web.service.dc2.chorus.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{soa("chorus")}},
		{name: "instances of another datacenter are not served", qname: "remote.service.chorus.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{soa("chorus")}},
		{name: "alt domain", qname: "web.service.consul.", qtype: dns.TypeSRV,
			answer: []string{"web.service.consul. 0 IN SRV 1 1 80 n1.node.consul.", "web.service.consul. 0 IN SRV 1 1 80 n2.node.consul."},
			extra:  []string{"n1.node.consul. 0 IN A 10.0.0.1", "n2.node.consul. 0 IN A 10.0.0.2", `n1.node.consul. 0 IN TXT "version=1"`}},
		{name: "alt domain negative", qname: "nope.service.consul.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{soa("consul")}},
		{name: "own address: addr target", qname: "api.service.chorus.", qtype: dns.TypeSRV,
			answer: []string{"api.service.chorus. 0 IN SRV 1 1 8080 c0a8010a.addr.chorus."},
			extra:  []string{"c0a8010a.addr.chorus. 0 IN A 192.168.1.10"}},
		{name: "own address: A", qname: "api.service.chorus.", qtype: dns.TypeA,
			answer: []string{"api.service.chorus. 0 IN A 192.168.1.10"}},
		{name: "addr v4", qname: "c0a8010a.addr.chorus.", qtype: dns.TypeA,
			answer: []string{"c0a8010a.addr.chorus. 0 IN A 192.168.1.10"}},
		{name: "addr v4 AAAA", qname: "c0a8010a.addr.chorus.", qtype: dns.TypeAAAA,
			ns: []string{soa("chorus")}},
		{name: "addr v6", qname: "fd000000000000000000000000000004.addr.chorus.", qtype: dns.TypeAAAA,
			answer: []string{"fd000000000000000000000000000004.addr.chorus. 0 IN AAAA fd00::4"}},
		{name: "addr bad hex", qname: "zz.addr.chorus.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{soa("chorus")}},
		{name: "host-name address in SRV", qname: "ext.service.chorus.", qtype: dns.TypeSRV,
			answer: []string{"ext.service.chorus. 0 IN SRV 1 1 3306 db.example.com."}},
		{name: "host-name address has no A", qname: "ext.service.chorus.", qtype: dns.TypeA,
			ns: []string{soa("chorus")}},
		{name: "node A", qname: "n1.node.chorus.", qtype: dns.TypeA,
			answer: []string{"n1.node.chorus. 0 IN A 10.0.0.1"}},
		{name: "node case", qname: "N1.Node.Chorus.", qtype: dns.TypeA,
			answer: []string{"N1.Node.Chorus. 0 IN A 10.0.0.1"}},
		{name: "node AAAA", qname: "n4.node.chorus.", qtype: dns.TypeAAAA,
			answer: []string{"n4.node.chorus. 0 IN AAAA fd00::4"}},
		{name: "node TXT", qname: "n1.node.chorus.", qtype: dns.TypeTXT,
			answer: []string{`n1.node.chorus. 0 IN TXT "consul-network-segment="`, `n1.node.chorus. 0 IN TXT "rack=r1"`, `n1.node.chorus. 0 IN TXT "plain"`}},
		{name: "node other type", qname: "n1.node.chorus.", qtype: dns.TypeMX,
			ns: []string{soa("chorus")}},
		{name: "node in dc", qname: "n1.node.dc1.chorus.", qtype: dns.TypeA,
			answer: []string{"n1.node.dc1.chorus. 0 IN A 10.0.0.1"}},
		{name: "unknown node", qname: "nope.node.chorus.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{soa("chorus")}},
		{name: "failed node still resolves", qname: "n5.node.chorus.", qtype: dns.TypeA,
			answer: []string{"n5.node.chorus. 0 IN A 10.0.0.5"}},
		{name: "unknown service", qname: "nosuch.service.chorus.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{soa("chorus")}},
		{name: "critical", qname: "crit.service.chorus.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{soa("chorus")}},
		{name: "critical, other type", qname: "crit.service.chorus.", qtype: dns.TypeAAAA, rcode: dns.RcodeNameError,
			ns: []string{soa("chorus")}},
		{name: "maintenance", qname: "maint.service.chorus.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{soa("chorus")}},
		{name: "failed member", qname: "onfailed.service.chorus.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{soa("chorus")}},
		{name: "warning answered", qname: "warn.service.chorus.", qtype: dns.TypeA,
			answer: []string{"warn.service.chorus. 0 IN A 10.0.0.1"}},
		{name: "tier: A carries the best tier", qname: "db.service.chorus.", qtype: dns.TypeA,
			answer: []string{"db.service.chorus. 0 IN A 10.0.0.1"}},
		{name: "tier: SRV carries every tier", qname: "db.service.chorus.", qtype: dns.TypeSRV,
			answer: []string{"db.service.chorus. 0 IN SRV 1 1 5432 n1.node.chorus.", "db.service.chorus. 0 IN SRV 2 1 5432 n2.node.chorus."},
			extra:  []string{"n1.node.chorus. 0 IN A 10.0.0.1", "n2.node.chorus. 0 IN A 10.0.0.2", `n2.node.chorus. 0 IN TXT "chorus-priority=2"`}},
		{name: "zone fallback", qname: "zonal.service.chorus.", qtype: dns.TypeA,
			answer: []string{"zonal.service.chorus. 0 IN A 10.0.0.3"}},
		{name: "v6 service", qname: "v6.service.chorus.", qtype: dns.TypeAAAA,
			answer: []string{"v6.service.chorus. 0 IN AAAA fd00::4"}},
		{name: "v6 service SRV glue", qname: "v6.service.chorus.", qtype: dns.TypeSRV,
			answer: []string{"v6.service.chorus. 0 IN SRV 1 1 443 n4.node.chorus."},
			extra:  []string{"n4.node.chorus. 0 IN AAAA fd00::4"}},
		{name: "apex SOA", qname: "chorus.", qtype: dns.TypeSOA,
			answer: []string{soa("chorus")}},
		{name: "apex SOA case", qname: "CHORUS.", qtype: dns.TypeSOA,
			answer: []string{"CHORUS. 5 IN SOA n1.node.CHORUS. hostmaster.CHORUS. " + itoa(serial) + " 3600 600 86400 5"}},
		{name: "apex NS", qname: "chorus.", qtype: dns.TypeNS,
			answer: []string{"chorus. 0 IN NS n1.node.chorus."},
			extra:  []string{"n1.node.chorus. 0 IN A 10.0.0.1"}},
		{name: "apex NS alt", qname: "consul.", qtype: dns.TypeNS,
			answer: []string{"consul. 0 IN NS n1.node.consul."},
			extra:  []string{"n1.node.consul. 0 IN A 10.0.0.1"}},
		{name: "apex ANY", qname: "chorus.", qtype: dns.TypeANY,
			answer: []string{soa("chorus")}},
		{name: "apex A", qname: "chorus.", qtype: dns.TypeA,
			ns: []string{soa("chorus")}},
		{name: "empty non-terminal service", qname: "service.chorus.", qtype: dns.TypeA,
			ns: []string{soa("chorus")}},
		{name: "empty non-terminal node", qname: "node.chorus.", qtype: dns.TypeA,
			ns: []string{soa("chorus")}},
		{name: "unknown under domain", qname: "www.chorus.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{soa("chorus")}},
		{name: "prepared queries are not served", qname: "q.query.chorus.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
			ns: []string{soa("chorus")}},
		{name: "PTR node", qname: "1.0.0.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"1.0.0.10.in-addr.arpa. 0 IN PTR n1.node.chorus."}},
		{name: "PTR service", qname: "10.1.168.192.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"10.1.168.192.in-addr.arpa. 0 IN PTR api.service.chorus."}},
		{name: "PTR v6 node", qname: "4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", qtype: dns.TypePTR,
			answer: []string{"4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 0 IN PTR n4.node.chorus."}},
		{name: "PTR unknown, no recursors", qname: "9.9.9.9.in-addr.arpa.", qtype: dns.TypePTR, rcode: dns.RcodeRefused, noAA: true},
		{name: "outside, no recursors", qname: "example.com.", qtype: dns.TypeA, rcode: dns.RcodeRefused, noAA: true},
		{name: "EDNS answer", qname: "web.service.chorus.", qtype: dns.TypeA, edns: true,
			answer: []string{"web.service.chorus. 0 IN A 10.0.0.1", "web.service.chorus. 0 IN A 10.0.0.2"}},
		{name: "EDNS negative", qname: "nosuch.service.chorus.", qtype: dns.TypeA, edns: true, rcode: dns.RcodeNameError,
			ns: []string{soa("chorus")}},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range cases {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				m := query(tc.qname, tc.qtype)
				if tc.edns {
					m.SetEdns0(1232, false)
				}
				r := exchange(t, network, ts.addr, m)
				checkReply(t, m, r, tc)
			})
		}
	}
}

// checkReply compares a reply with a case.
func checkReply(t *testing.T, m, r *dns.Msg, tc dnsCase) {
	t.Helper()
	if r.Id != m.Id {
		t.Errorf("id %d, want %d", r.Id, m.Id)
	}
	if !r.Response {
		t.Errorf("QR not set")
	}
	if r.Rcode != tc.rcode {
		t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
	}
	if r.Authoritative == tc.noAA {
		t.Errorf("AA = %v", r.Authoritative)
	}
	if r.RecursionAvailable {
		t.Errorf("RA set without recursors")
	}
	if r.Truncated {
		t.Errorf("TC set")
	}
	if len(r.Question) != 1 || r.Question[0].Name != m.Question[0].Name || r.Question[0].Qtype != m.Question[0].Qtype {
		t.Errorf("question %v, want %v", r.Question, m.Question)
	}
	if got, want := rrStrings(r.Answer), mustRRs(t, tc.answer...); !sameStrings(got, want) {
		t.Errorf("answer:\n got %q\nwant %q", got, want)
	}
	if got, want := rrStrings(r.Ns), mustRRs(t, tc.ns...); !sameStrings(got, want) {
		t.Errorf("authority:\n got %q\nwant %q", got, want)
	}
	if got, want := rrStrings(r.Extra), mustRRs(t, tc.extra...); !sameStrings(got, want) {
		t.Errorf("additional:\n got %q\nwant %q", got, want)
	}
	if opt := r.IsEdns0(); (opt != nil) != (m.IsEdns0() != nil) {
		t.Errorf("OPT in reply: %v, in query: %v", opt != nil, m.IsEdns0() != nil)
	}
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
