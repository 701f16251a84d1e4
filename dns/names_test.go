package dns

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/chorusdns/chorus/catalog"
	"github.com/miekg/dns"
)

func testRuntime(t testing.TB, dnssd bool) *runtime {
	t.Helper()
	c := baseConfig()
	c.DNSSD = dnssd
	rt, err := compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func TestParseName(t *testing.T) {
	rt := testRuntime(t, true)
	cases := []struct {
		qname string
		in    bool
		want  parsedName
	}{
		{"chorus.", true, parsedName{kind: kindApex}},
		{"consul.", true, parsedName{kind: kindApex, domain: 1}},
		{"example.com.", false, parsedName{}},
		{"xchorus.", false, parsedName{}},
		{"a\\.chorus.", false, parsedName{}},
		{"a\\\\.chorus.", true, parsedName{kind: kindNone, apexLabels: 1}},
		{"web.service.chorus.", true, parsedName{kind: kindService, apexLabels: 2, service: "web"}},
		{"web.service.consul.", true, parsedName{kind: kindService, domain: 1, apexLabels: 2, service: "web"}},
		{"v1.web.service.chorus.", true, parsedName{kind: kindService, apexLabels: 3, service: "web", tag: "v1"}},
		{"a.b.web.service.chorus.", true, parsedName{kind: kindService, apexLabels: 4, service: "web", tag: "a.b"}},
		{"_web._v1.service.chorus.", true, parsedName{kind: kindService, apexLabels: 3, service: "web", tag: "v1"}},
		{"_web._tcp.service.chorus.", true, parsedName{kind: kindService, apexLabels: 3, service: "web", proto: "tcp"}},
		{"_web._udp.chorus.", true, parsedName{kind: kindService, apexLabels: 2, service: "web", proto: "udp", bare: true}},
		{"_web._v1.chorus.", true, parsedName{kind: kindService, apexLabels: 2, service: "web", tag: "v1", bare: true}},
		{"_web.service.chorus.", true, parsedName{kind: kindEmpty, apexLabels: 2}},
		{"_._tcp.service.chorus.", true, parsedName{kind: kindNone, apexLabels: 3}},
		{"web.service.dc1.chorus.", true, parsedName{kind: kindService, apexLabels: 3, service: "web", ownDC: true}},
		{"web.service.dc1.dc.chorus.", true, parsedName{kind: kindService, apexLabels: 4, service: "web", ownDC: true}},
		// Another datacenter: parsed with its name, answered from its
		// summary (NXDOMAIN when none is held).
		{"web.service.dc2.chorus.", true, parsedName{kind: kindService, service: "web", apexLabels: 3, dc: "dc2"}},
		{"web.service.dc2.dc.chorus.", true, parsedName{kind: kindService, service: "web", apexLabels: 4, dc: "dc2"}},
		{"n1.node.dc2.chorus.", true, parsedName{kind: kindNode, node: "n1", apexLabels: 3, dc: "dc2"}},
		{"x.query.dc2.chorus.", true, parsedName{kind: kindNone, apexLabels: 3, dc: "dc2"}},
		{"service.chorus.", true, parsedName{kind: kindEmpty, apexLabels: 1}},
		{"dc1.chorus.", true, parsedName{kind: kindEmpty, apexLabels: 1}},
		{"dc1.dc.chorus.", true, parsedName{kind: kindEmpty, apexLabels: 2}},
		{"n1.node.chorus.", true, parsedName{kind: kindNode, apexLabels: 2, node: "n1"}},
		{"host.example.node.chorus.", true, parsedName{kind: kindNode, apexLabels: 3, node: "host.example"}},
		{"n1.node.dc1.chorus.", true, parsedName{kind: kindNode, apexLabels: 3, node: "n1", ownDC: true}},
		{"node.chorus.", true, parsedName{kind: kindEmpty, apexLabels: 1}},
		{"0a000001.addr.chorus.", true, parsedName{kind: kindAddr, apexLabels: 2, addr: netip.MustParseAddr("10.0.0.1")}},
		{"20010db8000000000000000000000001.addr.chorus.", true, parsedName{kind: kindAddr, apexLabels: 2, addr: netip.MustParseAddr("2001:db8::1")}},
		{"00000000000000000000ffff0a000001.addr.chorus.", true, parsedName{kind: kindNone, apexLabels: 2}},
		{"0a00001.addr.chorus.", true, parsedName{kind: kindNone, apexLabels: 2}},
		{"x.0a000001.addr.chorus.", true, parsedName{kind: kindNone, apexLabels: 3}},
		{"addr.chorus.", true, parsedName{kind: kindEmpty, apexLabels: 1}},
		{"q.query.chorus.", true, parsedName{kind: kindNone, apexLabels: 2}},
		{"_services._dns-sd._udp.chorus.", true, parsedName{kind: kindDNSSDTypes, apexLabels: 3}},
		{"b._dns-sd._udp.chorus.", true, parsedName{kind: kindDNSSDBrowse, apexLabels: 3}},
		{"lb._dns-sd._udp.chorus.", true, parsedName{kind: kindDNSSDBrowse, apexLabels: 3}},
		{"r._dns-sd._udp.chorus.", true, parsedName{kind: kindNone, apexLabels: 3}},
		{"_dns-sd._udp.chorus.", true, parsedName{kind: kindEmpty, apexLabels: 2}},
		{"_tcp.chorus.", true, parsedName{kind: kindEmpty, apexLabels: 1}},
		{"web-h1._web._tcp.chorus.", true, parsedName{kind: kindDNSSDInstance, apexLabels: 3, instance: "web-h1", service: "web", proto: "tcp"}},
		{"web-h1._web._v1.chorus.", true, parsedName{kind: kindNone, apexLabels: 3}},
		{"www.chorus.", true, parsedName{kind: kindNone, apexLabels: 1}},
		{"a..chorus.", true, parsedName{kind: kindNone, apexLabels: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.qname, func(t *testing.T) {
			got, in := parseName(tc.qname, rt)
			if in != tc.in {
				t.Fatalf("inDomain %v, want %v", in, tc.in)
			}
			if in && got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	// Without DNSSD the browsing names do not exist.
	off := testRuntime(t, false)
	for _, n := range []string{"_services._dns-sd._udp.chorus.", "web-h1._web._tcp.chorus.", "b._dns-sd._udp.chorus."} {
		if got, _ := parseName(n, off); got.kind != kindNone {
			t.Errorf("%s without DNSSD: kind %d", n, got.kind)
		}
	}
}

func TestParseReverse(t *testing.T) {
	cases := []struct {
		name string
		want string // "" = not an address
	}{
		{"1.0.0.10.in-addr.arpa.", "10.0.0.1"},
		{"255.255.255.255.in-addr.arpa.", "255.255.255.255"},
		{"0.0.10.in-addr.arpa.", ""},
		{"256.0.0.10.in-addr.arpa.", ""},
		{"01.0.0.10.in-addr.arpa.", ""},
		{"a.0.0.10.in-addr.arpa.", ""},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", "2001:db8::1"},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.ip6.arpa.", ""},
		{"g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", ""},
		{"1.0.0.0.0.0.a.0.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.", "10.0.0.1"},
		{"example.com.", ""},
	}
	for _, tc := range cases {
		a, ok := parseReverse(tc.name)
		if got := ""; ok {
			got = a.String()
			if got != tc.want {
				t.Errorf("%s: %s, want %q", tc.name, got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("%s: not parsed, want %s", tc.name, tc.want)
		}
	}
}

func TestHexAddrRoundTrip(t *testing.T) {
	for _, s := range []string{"10.0.0.1", "192.168.1.10", "2001:db8::1", "fd00::4"} {
		a := netip.MustParseAddr(s)
		b, ok := parseHexAddr(hexAddr(a))
		if !ok || b != a {
			t.Errorf("%s → %s → %v", s, hexAddr(a), b)
		}
	}
}

func TestRFC1464(t *testing.T) {
	got := metaTXT(map[string]string{"a=b": "c", "`q": "x", " lead": "y", "plain": "v=w", "rfc1035-x": "raw text"})
	want := []string{"` lead=y", "``q=x", "a`=b=c", "plain=v=w", "raw text"}
	if len(got) != len(want) {
		t.Fatalf("%q", got)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%d: %q, want %q", i, got[i], want[i])
		}
	}
}

// FuzzParseName checks that the parser never panics and that what it
// returns is consistent: an in-domain name has labels before the domain
// that add up, and service, node and address kinds carry their fields.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"chorus.", "web.service.chorus.", "v1.web.service.dc1.dc.chorus.", "_web._tcp.service.chorus.",
		"_web._tcp.chorus.", "n1.node.chorus.", "0a000001.addr.chorus.", "_services._dns-sd._udp.chorus.",
		"inst._web._tcp.consul.", "a\\.b.chorus.", "1.0.0.10.in-addr.arpa.", "b._dns-sd._udp.chorus.",
		"\\000.service.chorus.", "..", "a..chorus.",
	} {
		f.Add(s)
	}
	rt := testRuntime(f, true)
	f.Fuzz(func(t *testing.T, name string) {
		name = lower(name)
		p, in := parseName(name, rt)
		_, _ = parseReverse(name)
		if !in {
			return
		}
		if p.domain < 0 || p.domain >= len(rt.domains) {
			t.Fatalf("domain index %d", p.domain)
		}
		if p.apexLabels < 0 || (p.kind == kindApex) != (p.apexLabels == 0) {
			t.Fatalf("apex labels %d for kind %d", p.apexLabels, p.kind)
		}
		switch p.kind {
		case kindService:
			if p.service == "" {
				t.Fatalf("service kind without a service: %+v", p)
			}
		case kindNode:
			if p.node == "" {
				t.Fatalf("node kind without a node: %+v", p)
			}
		case kindAddr:
			if !p.addr.IsValid() {
				t.Fatalf("addr kind without an address")
			}
		}
		if q, ok := newQname(name); ok && p.kind != kindApex && p.apexLabels > len(q.offs) {
			t.Fatalf("apex label %d beyond the %d labels of %q", p.apexLabels, len(q.offs), name)
		}
	})
}

func TestHugeMetaStaysWithinLimits(t *testing.T) {
	meta := map[string]string{}
	for i := 0; i < 600; i++ {
		meta[fmt.Sprintf("key%03d", i)] = strings.Repeat("v", 200)
	}
	meta["toolong"] = strings.Repeat("x", 300)
	st := catalog.NewStore()
	apply(t, st, node{name: "m1", addr: "10.9.9.1", zone: "a", meta: meta, services: []svc{{name: "meta", port: 1, meta: meta}}})
	s, err := New(baseConfig(), st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"meta.service.chorus.", dns.TypeTXT}, {"meta.service.chorus.", dns.TypeSRV}, {"m1.node.chorus.", dns.TypeTXT}} {
		for _, tcp := range []bool{false, true} {
			w := newRecorder(tcp)
			m := query(q.name, q.qtype)
			s.ServeDNS(w, m)
			checkFuzzReply(t, m, w, tcp)
			r := w.reply(t)
			if tcp && len(r.Answer) == 0 {
				t.Errorf("%s %s over TCP: no answer (TC=%v)", q.name, dns.TypeToString[q.qtype], r.Truncated)
			}
			if !tcp && !r.Truncated {
				t.Errorf("%s %s over UDP: not truncated", q.name, dns.TypeToString[q.qtype])
			}
		}
	}
}

// TestNodeTXTMeta: an agent's node shows Consul's empty network segment
// among its TXT records, as its HTTP node meta does; an external node
// shows exactly the meta it was registered with.
func TestNodeTXTMeta(t *testing.T) {
	agentNode := catalog.Node{Name: "a", Meta: map[string]string{"rack": "r1"}}
	if got := metaTXT(nodeTXTMeta(agentNode)); !slices.Equal(got, []string{"consul-network-segment=", "rack=r1"}) {
		t.Errorf("agent node TXT = %q", got)
	}
	if len(agentNode.Meta) != 1 {
		t.Errorf("the node's own meta was changed: %v", agentNode.Meta)
	}
	ext := catalog.Node{Name: "db", External: true, Meta: map[string]string{"rack": "r1"}}
	if got := metaTXT(nodeTXTMeta(ext)); !slices.Equal(got, []string{"rack=r1"}) {
		t.Errorf("external node TXT = %q", got)
	}
	if got := nodeTXTMeta(catalog.Node{Name: "e", External: true}); len(got) != 0 {
		t.Errorf("external node without meta has TXT meta %v", got)
	}
}
