package dns

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chorusdns/chorus/catalog"
	"github.com/miekg/dns"
)

func sortedAnswer(r *dns.Msg) []string {
	o := answerOrder(r)
	sort.Strings(o)
	return o
}

func TestTierFailover(t *testing.T) {
	st := catalog.NewStore()
	primary := func(check string) node {
		return node{name: "p1", addr: "10.3.0.1", zone: "a", services: []svc{{name: "db", port: 1, check: check}}}
	}
	backup := node{name: "b1", addr: "10.3.0.2", zone: "a", services: []svc{{name: "db", port: 1, meta: map[string]string{MetaPriority: "5"}}}}
	apply(t, st, primary(""), backup)
	ts := startServer(t, baseConfig(), st)
	for _, network := range []string{"udp", "tcp"} {
		if got := sortedAnswer(exchange(t, network, ts.addr, query("db.service.chorus.", dns.TypeA))); fmt.Sprint(got) != "[10.3.0.1]" {
			t.Errorf("%s with primary up: %v", network, got)
		}
	}
	r := exchange(t, "udp", ts.addr, query("db.service.chorus.", dns.TypeSRV))
	if len(r.Answer) != 2 || r.Answer[0].(*dns.SRV).Priority != 1 || r.Answer[1].(*dns.SRV).Priority != 5 {
		t.Errorf("SRV tiers not in priority order: %v", r.Answer)
	}
	apply(t, st, primary(catalog.HealthCritical))
	for _, network := range []string{"udp", "tcp"} {
		if got := sortedAnswer(exchange(t, network, ts.addr, query("db.service.chorus.", dns.TypeA))); fmt.Sprint(got) != "[10.3.0.2]" {
			t.Errorf("%s with primary down: %v", network, got)
		}
	}
	// The failed member's instances drop out at once, too.
	apply(t, st, primary(""))
	st.SetMember("p1", "10.3.0.1", catalog.MemberFailed)
	if got := sortedAnswer(exchange(t, "udp", ts.addr, query("db.service.chorus.", dns.TypeA))); fmt.Sprint(got) != "[10.3.0.2]" {
		t.Errorf("with primary's member failed: %v", got)
	}
	st.SetMember("p1", "10.3.0.1", catalog.MemberAlive)
	if got := sortedAnswer(exchange(t, "udp", ts.addr, query("db.service.chorus.", dns.TypeA))); fmt.Sprint(got) != "[10.3.0.1]" {
		t.Errorf("with primary back: %v", got)
	}
}

func TestZones(t *testing.T) {
	st := catalog.NewStore()
	apply(t, st,
		node{name: "a1", addr: "10.4.0.1", zone: "a", services: []svc{{name: "web", port: 1}, {name: "tiered", port: 1, meta: map[string]string{MetaPriority: "2"}}}},
		node{name: "b1", addr: "10.4.0.2", zone: "b", services: []svc{{name: "web", port: 1}, {name: "only-b", port: 1}, {name: "tiered", port: 1}}},
	)
	ts := startServer(t, baseConfig(), st)
	cases := []struct{ qname, want string }{
		{"web.service.chorus.", "[10.4.0.1]"},
		{"only-b.service.chorus.", "[10.4.0.2]"},
		// Tier before zone: a remote primary wins over a local backup, so
		// backups are answered exactly when every primary is down.
		{"tiered.service.chorus.", "[10.4.0.2]"},
	}
	for _, tc := range cases {
		if got := sortedAnswer(exchange(t, "udp", ts.addr, query(tc.qname, dns.TypeA))); fmt.Sprint(got) != tc.want {
			t.Errorf("%s: %v, want %s", tc.qname, got, tc.want)
		}
	}
	// Local instance down: fall back to the other zone.
	apply(t, st, node{name: "a1", addr: "10.4.0.1", zone: "a", services: []svc{{name: "web", port: 1, check: catalog.HealthCritical}}})
	if got := sortedAnswer(exchange(t, "udp", ts.addr, query("web.service.chorus.", dns.TypeA))); fmt.Sprint(got) != "[10.4.0.2]" {
		t.Errorf("fallback: %v", got)
	}
	// Without zone failover the zone is a hard boundary.
	cfg := baseConfig()
	cfg.ZoneFailover = false
	if err := ts.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	r := exchange(t, "udp", ts.addr, query("web.service.chorus.", dns.TypeA))
	if r.Rcode != dns.RcodeNameError {
		t.Errorf("no failover: %s %v, want NXDOMAIN", dns.RcodeToString[r.Rcode], r.Answer)
	}
	// An agent without a zone prefers none.
	cfg = baseConfig()
	cfg.Zone = ""
	if err := ts.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := sortedAnswer(exchange(t, "udp", ts.addr, query("tiered.service.chorus.", dns.TypeA))); fmt.Sprint(got) != "[10.4.0.2]" {
		t.Errorf("no zone: %v, want the primary tier", got)
	}
}

func TestOnlyPassing(t *testing.T) {
	st := catalog.NewStore()
	apply(t, st,
		node{name: "a1", addr: "10.5.0.1", zone: "a", services: []svc{{name: "web", port: 1, check: catalog.HealthWarning, weights: catalog.Weights{Passing: 10, Warning: 2}}}},
		node{name: "a2", addr: "10.5.0.2", zone: "a", services: []svc{{name: "web", port: 1}}},
		node{name: "a3", addr: "10.5.0.3", zone: "a", nodeCheck: catalog.HealthWarning, services: []svc{{name: "web", port: 1}}},
	)
	ts := startServer(t, baseConfig(), st)
	r := exchange(t, "udp", ts.addr, query("web.service.chorus.", dns.TypeSRV))
	weights := map[string]uint16{}
	for _, rr := range r.Answer {
		weights[rr.(*dns.SRV).Target] = rr.(*dns.SRV).Weight
	}
	if len(weights) != 3 || weights["a1.node.chorus."] != 2 || weights["a2.node.chorus."] != 1 {
		t.Errorf("warning weights: %v", weights)
	}
	cfg := baseConfig()
	cfg.OnlyPassing = true
	if err := ts.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := sortedAnswer(exchange(t, "udp", ts.addr, query("web.service.chorus.", dns.TypeA))); fmt.Sprint(got) != "[10.5.0.2]" {
		t.Errorf("only_passing: %v", got)
	}
}

func TestTTLs(t *testing.T) {
	st := catalog.NewStore()
	apply(t, st, node{name: "t1", addr: "10.6.0.1", zone: "a", services: []svc{
		{name: "web", port: 1}, {name: "api", port: 1}, {name: "apex", port: 1},
		{name: "other", port: 1}, {name: "meta", port: 1, meta: map[string]string{MetaTTL: "45s"}},
	}})
	cfg := baseConfig()
	cfg.NodeTTL = 7 * time.Second
	cfg.ServiceTTL = 10 * time.Second
	cfg.ServiceTTLs = map[string]time.Duration{"web": 30 * time.Second, "ap*": 20 * time.Second, "apex": 25 * time.Second}
	ts := startServer(t, cfg, st)
	ttl := func(qname string, qt uint16) uint32 {
		r := exchange(t, "udp", ts.addr, query(qname, qt))
		if len(r.Answer) == 0 {
			t.Fatalf("%s: no answer", qname)
		}
		return r.Answer[0].Header().Ttl
	}
	cases := []struct {
		qname string
		qt    uint16
		want  uint32
	}{
		{"web.service.chorus.", dns.TypeA, 30},
		{"api.service.chorus.", dns.TypeA, 20},
		{"apex.service.chorus.", dns.TypeA, 25},
		{"other.service.chorus.", dns.TypeA, 10},
		{"meta.service.chorus.", dns.TypeA, 45},
		{"t1.node.chorus.", dns.TypeA, 7},
		{"0a060001.addr.chorus.", dns.TypeA, 7},
		{"chorus.", dns.TypeNS, 7},
		{"chorus.", dns.TypeSOA, 5},
	}
	for _, tc := range cases {
		if got := ttl(tc.qname, tc.qt); got != tc.want {
			t.Errorf("%s %s TTL %d, want %d", tc.qname, dns.TypeToString[tc.qt], got, tc.want)
		}
	}
	// SRV glue carries the node TTL.
	r := exchange(t, "udp", ts.addr, query("web.service.chorus.", dns.TypeSRV))
	if r.Answer[0].Header().Ttl != 30 || r.Extra[0].Header().Ttl != 7 {
		t.Errorf("SRV TTL %d, glue TTL %d", r.Answer[0].Header().Ttl, r.Extra[0].Header().Ttl)
	}
	// "*" is the default of service_ttls.
	cfg.ServiceTTLs["*"] = 15 * time.Second
	if err := ts.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := ttl("other.service.chorus.", dns.TypeA); got != 15 {
		t.Errorf("'*' TTL %d, want 15", got)
	}
	// Negative answers: the SOA with the SOA minimum as TTL.
	cfg.SOA.MinTTL = 60
	if err := ts.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	r = exchange(t, "udp", ts.addr, query("nope.service.chorus.", dns.TypeA))
	if len(r.Ns) != 1 || r.Ns[0].Header().Ttl != 60 || r.Ns[0].(*dns.SOA).Minttl != 60 {
		t.Errorf("negative SOA %v", r.Ns)
	}
}

func TestDNSSD(t *testing.T) {
	st := catalog.NewStore()
	apply(t, st,
		node{name: "h1", addr: "10.7.0.1", zone: "a", services: []svc{
			{name: "web", port: 80, meta: map[string]string{"path": "/"}},
			{id: "web-alt", name: "web", port: 8080},
			{name: "printer", port: 631},
			{name: "down", port: 1, check: catalog.HealthCritical},
		}},
		node{name: "h2", addr: "10.7.0.2", zone: "a", services: []svc{{name: "web", port: 80}}},
	)
	cfg := baseConfig()
	cfg.DNSSD = true
	ts := startServer(t, cfg, st)

	r := exchange(t, "udp", ts.addr, query("_services._dns-sd._udp.chorus.", dns.TypePTR))
	if got := rrStrings(r.Answer); fmt.Sprint(got) != fmt.Sprint(mustRRs(t,
		"_services._dns-sd._udp.chorus. 0 IN PTR _printer._tcp.chorus.",
		"_services._dns-sd._udp.chorus. 0 IN PTR _web._tcp.chorus.")) {
		t.Errorf("service types: %q", got)
	}
	r = exchange(t, "udp", ts.addr, query("b._dns-sd._udp.chorus.", dns.TypePTR))
	if len(r.Answer) != 1 || r.Answer[0].(*dns.PTR).Ptr != "chorus." {
		t.Errorf("browse domain: %v", r.Answer)
	}

	r = exchange(t, "tcp", ts.addr, query("_web._tcp.chorus.", dns.TypePTR))
	if len(r.Answer) != 3 {
		t.Fatalf("instances: %v", r.Answer)
	}
	srvs, txts, addrs := map[string]*dns.SRV{}, map[string]*dns.TXT{}, 0
	for _, rr := range r.Extra {
		switch rr := rr.(type) {
		case *dns.SRV:
			srvs[rr.Hdr.Name] = rr
		case *dns.TXT:
			txts[rr.Hdr.Name] = rr
		case *dns.A:
			addrs++
		}
	}
	if addrs != 2 {
		t.Errorf("%d addresses in additional, want 2 (one per host)", addrs)
	}
	for _, rr := range r.Answer {
		inst := rr.(*dns.PTR).Ptr
		if !strings.HasSuffix(inst, "._web._tcp.chorus.") || srvs[inst] == nil || txts[inst] == nil {
			t.Errorf("instance %s without SRV or TXT in additional", inst)
		}
	}
	if srvs["web-h1._web._tcp.chorus."] == nil || srvs["web-alt-h1._web._tcp.chorus."].Port != 8080 {
		t.Errorf("instance names: %v", srvs)
	}

	r = exchange(t, "udp", ts.addr, query("web-h1._web._tcp.chorus.", dns.TypeSRV))
	if len(r.Answer) != 1 || r.Answer[0].(*dns.SRV).Target != "h1.node.chorus." || len(r.Extra) != 1 {
		t.Errorf("instance SRV: %v / %v", r.Answer, r.Extra)
	}
	r = exchange(t, "udp", ts.addr, query("WEB-H1._web._tcp.chorus.", dns.TypeTXT))
	if len(r.Answer) != 1 || fmt.Sprint(r.Answer[0].(*dns.TXT).Txt) != "[path=/]" {
		t.Errorf("instance TXT: %v", r.Answer)
	}
	r = exchange(t, "udp", ts.addr, query("web-h2._web._tcp.chorus.", dns.TypeTXT))
	if len(r.Answer) != 1 || fmt.Sprint(r.Answer[0].(*dns.TXT).Txt) != "[]" {
		t.Errorf("empty instance TXT (one empty string): %v", r.Answer)
	}
	r = exchange(t, "udp", ts.addr, query("down-h1._down._tcp.chorus.", dns.TypeSRV))
	if r.Rcode != dns.RcodeNameError {
		t.Errorf("unhealthy instance: %s", dns.RcodeToString[r.Rcode])
	}
	// SRV of the service type is still the RFC 2782 answer.
	r = exchange(t, "udp", ts.addr, query("_web._tcp.chorus.", dns.TypeSRV))
	if len(r.Answer) != 3 {
		t.Errorf("RFC 2782 SRV: %v", r.Answer)
	}

	// Disabled: browsing names do not exist.
	cfg.DNSSD = false
	if err := ts.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"_services._dns-sd._udp.chorus.", "web-h1._web._tcp.chorus."} {
		if r := exchange(t, "udp", ts.addr, query(name, dns.TypePTR)); r.Rcode != dns.RcodeNameError {
			t.Errorf("%s with DNSSD off: %s", name, dns.RcodeToString[r.Rcode])
		}
	}
	if r := exchange(t, "udp", ts.addr, query("_web._tcp.chorus.", dns.TypePTR)); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("PTR of a service with DNSSD off: %v", r)
	}
}

func TestReloadDomain(t *testing.T) {
	ts := startServer(t, baseConfig(), fixture(t))
	cfg := baseConfig()
	cfg.Domain = "example."
	cfg.AltDomain = ""
	if err := ts.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if r := exchange(t, "udp", ts.addr, query("web.service.example.", dns.TypeA)); len(r.Answer) != 2 {
		t.Errorf("new domain: %v", r)
	}
	if r := exchange(t, "udp", ts.addr, query("web.service.chorus.", dns.TypeA)); r.Rcode != dns.RcodeRefused {
		t.Errorf("old domain: %s", dns.RcodeToString[r.Rcode])
	}
}

// TestCacheReuse checks that an entry survives a snapshot change that did
// not touch its service, and is rebuilt when its service changes.
func TestCacheReuse(t *testing.T) {
	st := fixture(t)
	s, err := New(baseConfig(), st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := newRecorder(false)
	ask := func(name string) *entry {
		w.reset()
		s.ServeDNS(w, query(name, dns.TypeA))
		c := s.cache.Load()
		return c.load(append([]byte(name), 0, qcA))
	}
	web := ask("web.service.chorus.")
	n1 := ask("n1.node.chorus.")
	if web == nil || n1 == nil {
		t.Fatal("entries not cached")
	}
	// Change another node and service: web's and n1's entries carry over.
	apply(t, st, node{name: "n9", addr: "10.0.0.9", zone: "a", services: []svc{{name: "new", port: 1}}})
	if ask("web.service.chorus.") != web || ask("n1.node.chorus.") != n1 {
		t.Errorf("unchanged entries were rebuilt")
	}
	// Change web: its entry is rebuilt.
	apply(t, st, node{name: "n2", addr: "10.0.0.2", zone: "a", services: []svc{{name: "web", port: 80, check: catalog.HealthCritical}}})
	if ask("web.service.chorus.") == web {
		t.Errorf("changed entry reused")
	}
	if got := sortedAnswer(w.reply(t)); fmt.Sprint(got) != "[10.0.0.1]" {
		t.Errorf("after change: %v", got)
	}
	// Unknown names are answered but never cached.
	ask("random123.service.chorus.")
	ask("zz9.web.service.chorus.")
	c := s.cache.Load()
	for _, k := range []string{"random123.service.chorus.", "zz9.web.service.chorus."} {
		if c.load(append([]byte(k), 0, qcA)) != nil {
			t.Errorf("%s was cached", k)
		}
	}
}

// TestCacheAcrossUnqueriedSnapshots checks that an entry outlives
// snapshots in which nobody asked for it, as long as its service is
// unchanged, and that the entry of a service that is gone is dropped.
func TestCacheAcrossUnqueriedSnapshots(t *testing.T) {
	st := fixture(t)
	s, err := New(baseConfig(), st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := newRecorder(false)
	key := func(name string) []byte { return append([]byte(name), 0, qcA) }
	ask := func(name string) *entry {
		w.reset()
		s.ServeDNS(w, query(name, dns.TypeA))
		return s.cache.Load().load(key(name))
	}
	web := ask("web.service.chorus.")
	if web == nil {
		t.Fatal("web not cached")
	}
	for i := 0; i < 3; i++ {
		apply(t, st, node{name: fmt.Sprintf("x%d", i), addr: fmt.Sprintf("10.0.1.%d", i), zone: "a", services: []svc{{name: "other", port: 1}}})
	}
	if ask("web.service.chorus.") != web {
		t.Fatal("entry rebuilt after unrelated changes nobody queried in between")
	}
	ask("other.service.chorus.")
	if s.cache.Load().load(key("other.service.chorus.")) == nil {
		t.Fatal("other not cached")
	}
	for i := 0; i < 3; i++ {
		st.RemoveNode(fmt.Sprintf("x%d", i))
	}
	w.reset()
	s.ServeDNS(w, query("other.service.chorus.", dns.TypeA))
	if r := w.reply(t); r.Rcode != dns.RcodeNameError {
		t.Fatalf("removed service: %s", dns.RcodeToString[r.Rcode])
	}
	if s.cache.Load().load(key("other.service.chorus.")) != nil {
		t.Fatal("entry of a removed service kept")
	}
}

func TestOwnNodeBeforeItsRecord(t *testing.T) {
	st := catalog.NewStore() // the agent's own record has not arrived yet
	ts := startServer(t, baseConfig(), st)
	r := exchange(t, "udp", ts.addr, query("n1.node.chorus.", dns.TypeA))
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.0.0.1" {
		t.Errorf("own node: %v", r)
	}
}
