package dns

import (
	"fmt"
	"math"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chorusdns/chorus/catalog"
	"github.com/miekg/dns"
)

// firstA returns the first A record's address of a reply.
func firstA(t *testing.T, r *dns.Msg) string {
	t.Helper()
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	t.Fatalf("no A record in %v", r)
	return ""
}

func answerOrder(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.SRV:
			out = append(out, rr.Target)
		}
	}
	return out
}

// policyStore has one service per policy; each instance on its own node.
func policyStore(t testing.TB) *catalog.Store {
	t.Helper()
	st := catalog.NewStore()
	mk := func(name string, i int, s svc) node {
		return node{name: fmt.Sprintf("%s%d", name, i), addr: fmt.Sprintf("10.2.%d.%d", len(name), i), zone: "a", services: []svc{s}}
	}
	var nodes []node
	// weighted: weights 1 and 3.
	nodes = append(nodes,
		mk("wt", 1, svc{name: "wt", port: 1, weights: catalog.Weights{Passing: 1, Warning: 1}}),
		mk("wt", 2, svc{name: "wt", port: 1, weights: catalog.Weights{Passing: 3, Warning: 1}}),
	)
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, mk("uni", i, svc{name: "uni", port: 1}))
		nodes = append(nodes, mk("rr", i, svc{name: "rr", port: 1, meta: map[string]string{MetaPolicy: PolicyRoundRobin}}))
		nodes = append(nodes, mk("near", i, svc{name: "near", port: 1, meta: map[string]string{MetaPolicy: PolicyNearest}}))
	}
	for i, load := range []float64{5, 1, 3, 1} {
		nodes = append(nodes, mk("ll", i+1, svc{name: "ll", port: 1, load: load, meta: map[string]string{MetaPolicy: PolicyLeastLoaded}}))
	}
	for i := 1; i <= 5; i++ {
		nodes = append(nodes, mk("hash", i, svc{name: "hash", port: 1, meta: map[string]string{MetaPolicy: PolicyHash}}))
	}
	apply(t, st, nodes...)
	return st
}

func TestPolicyRandomWeighted(t *testing.T) {
	ts := startServer(t, baseConfig(), policyStore(t))
	const n = 4000
	heavy := 0
	for i := 0; i < n; i++ {
		r := exchange(t, "udp", ts.addr, query("wt.service.chorus.", dns.TypeA))
		if firstA(t, r) == "10.2.2.2" {
			heavy++
		}
	}
	// P(heavy first) = 3/4; 5 standard deviations is about ±0.034.
	if p := float64(heavy) / n; math.Abs(p-0.75) > 0.035 {
		t.Errorf("weight-3 instance first in %.3f of answers, want 0.75", p)
	}
	// The SRV answer carries the exact weights.
	r := exchange(t, "udp", ts.addr, query("wt.service.chorus.", dns.TypeSRV))
	w := map[string]uint16{}
	for _, rr := range r.Answer {
		w[rr.(*dns.SRV).Target] = rr.(*dns.SRV).Weight
	}
	if w["wt1.node.chorus."] != 1 || w["wt2.node.chorus."] != 3 {
		t.Errorf("SRV weights %v", w)
	}
}

func TestPolicyRandomUniform(t *testing.T) {
	ts := startServer(t, baseConfig(), policyStore(t))
	const n = 3000
	first := map[string]int{}
	for i := 0; i < n; i++ {
		first[firstA(t, exchange(t, "udp", ts.addr, query("uni.service.chorus.", dns.TypeA)))]++
	}
	if len(first) != 3 {
		t.Fatalf("first positions %v", first)
	}
	for a, c := range first {
		if p := float64(c) / n; math.Abs(p-1.0/3) > 0.045 {
			t.Errorf("%s first in %.3f of answers, want 1/3", a, p)
		}
	}
}

func TestPolicyRoundRobin(t *testing.T) {
	ts := startServer(t, baseConfig(), policyStore(t))
	var seq []string
	for i := 0; i < 6; i++ {
		r := exchange(t, "udp", ts.addr, query("rr.service.chorus.", dns.TypeA))
		o := answerOrder(r)
		if len(o) != 3 {
			t.Fatalf("answer %v", o)
		}
		seq = append(seq, o[0])
		if i > 0 {
			// Each answer is the previous one rotated by one.
			prev := seq[len(seq)-2]
			if o[2] != prev {
				t.Errorf("answer %d %v does not rotate the previous first %s to the end", i, o, prev)
			}
		}
	}
	for i := 3; i < 6; i++ {
		if seq[i] != seq[i-3] {
			t.Errorf("first positions %v do not cycle with period 3", seq)
		}
	}
	if seq[0] == seq[1] || seq[1] == seq[2] || seq[0] == seq[2] {
		t.Errorf("first positions %v repeat", seq)
	}
}

func TestPolicyLeastLoaded(t *testing.T) {
	ts := startServer(t, baseConfig(), policyStore(t))
	ties := map[string]int{}
	for i := 0; i < 200; i++ {
		o := answerOrder(exchange(t, "udp", ts.addr, query("ll.service.chorus.", dns.TypeA)))
		// Loads: ll1=5, ll2=1, ll3=3, ll4=1.
		if len(o) != 4 || o[2] != "10.2.2.3" || o[3] != "10.2.2.1" {
			t.Fatalf("order %v, want the load-1 pair, then 10.2.2.3, then 10.2.2.1", o)
		}
		ties[o[0]]++
	}
	if ties["10.2.2.2"] < 60 || ties["10.2.2.4"] < 60 {
		t.Errorf("ties are not broken at random: %v", ties)
	}
}

// fakeDistances is the nearest policy's RTT source; Serf coordinates live
// in the agent, so a table stands in for them here.
type fakeDistances struct {
	mu  sync.Mutex
	rtt map[string]time.Duration
}

func (f *fakeDistances) RTT(node string) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.rtt[node]
	return d, ok
}

func TestPolicyNearest(t *testing.T) {
	ts := startServer(t, baseConfig(), policyStore(t))
	d := &fakeDistances{rtt: map[string]time.Duration{"near1": 30 * time.Millisecond, "near3": 2 * time.Millisecond}}
	ts.SetDistances(d)
	for _, network := range []string{"udp", "tcp"} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeSRV} {
			o := answerOrder(exchange(t, network, ts.addr, query("near.service.chorus.", qt)))
			want := []string{"10.2.4.3", "10.2.4.1", "10.2.4.2"}
			if qt == dns.TypeSRV {
				want = []string{"near3.node.chorus.", "near1.node.chorus.", "near2.node.chorus."}
			}
			if fmt.Sprint(o) != fmt.Sprint(want) {
				t.Errorf("%s %s order %v, want %v (unknown RTT last)", network, dns.TypeToString[qt], o, want)
			}
		}
	}
}

// ecsQuery is a query for name carrying an ECS option for subnet.
func ecsQuery(name string, qtype uint16, subnet string) *dns.Msg {
	m := query(name, qtype)
	m.SetEdns0(1232, false)
	_, n, _ := net.ParseCIDR(subnet)
	ones, _ := n.Mask.Size()
	fam := uint16(1)
	if n.IP.To4() == nil {
		fam = 2
	}
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: uint8(ones), Address: n.IP})
	return m
}

func TestPolicyHash(t *testing.T) {
	st := policyStore(t)
	ts := startServer(t, baseConfig(), st)
	// The same client always gets the same order.
	base := answerOrder(exchange(t, "udp", ts.addr, query("hash.service.chorus.", dns.TypeA)))
	for i := 0; i < 20; i++ {
		if o := answerOrder(exchange(t, "udp", ts.addr, query("hash.service.chorus.", dns.TypeA))); fmt.Sprint(o) != fmt.Sprint(base) {
			t.Fatalf("order changed for the same client: %v then %v", base, o)
		}
	}
	// Subnets spread over instances, the ECS is echoed with the scope set.
	firsts := map[string]string{}
	count := map[string]int{}
	for i := 0; i < 300; i++ {
		subnet := fmt.Sprintf("198.%d.%d.0/24", 18+i/256, i%256)
		r := exchange(t, "udp", ts.addr, ecsQuery("hash.service.chorus.", dns.TypeA, subnet))
		firsts[subnet] = firstA(t, r)
		count[firsts[subnet]]++
		opt := r.IsEdns0()
		if opt == nil || len(opt.Option) != 1 {
			t.Fatalf("ECS not echoed: %v", opt)
		}
		e := opt.Option[0].(*dns.EDNS0_SUBNET)
		if e.SourceNetmask != 24 || e.SourceScope != 24 {
			t.Fatalf("ECS echoed as %v, want source 24 scope 24", e)
		}
		again := exchange(t, "tcp", ts.addr, ecsQuery("hash.service.chorus.", dns.TypeA, subnet))
		if firstA(t, again) != firsts[subnet] {
			t.Fatalf("subnet %s moved between UDP and TCP", subnet)
		}
	}
	if len(count) != 5 {
		t.Fatalf("300 subnets reached %d of 5 instances: %v", len(count), count)
	}
	for a, c := range count {
		if c < 25 {
			t.Errorf("instance %s first for only %d of 300 subnets", a, c)
		}
	}
	// Remove one instance: only its clients move.
	apply(t, st, node{name: "hash3", addr: "10.2.4.3", zone: "a", services: []svc{{name: "hash", port: 1, meta: map[string]string{MetaPolicy: PolicyHash}, check: catalog.HealthCritical}}})
	moved := 0
	for subnet, was := range firsts {
		now := firstA(t, exchange(t, "udp", ts.addr, ecsQuery("hash.service.chorus.", dns.TypeA, subnet)))
		if was == "10.2.4.3" {
			if now == was {
				t.Errorf("subnet %s still answered by the removed instance", subnet)
			}
			moved++
			continue
		}
		if now != was {
			t.Errorf("subnet %s moved from %s to %s though its instance stayed", subnet, was, now)
		}
	}
	if moved == 0 {
		t.Errorf("no subnet was on the removed instance")
	}
}

func TestPolicyConfigDefaultAndReload(t *testing.T) {
	cfg := baseConfig()
	cfg.Policy = PolicyRoundRobin
	ts := startServer(t, cfg, policyStore(t))
	a := answerOrder(exchange(t, "udp", ts.addr, query("uni.service.chorus.", dns.TypeA)))
	b := answerOrder(exchange(t, "udp", ts.addr, query("uni.service.chorus.", dns.TypeA)))
	if a[0] != b[2] {
		t.Errorf("configured round-robin does not rotate: %v then %v", a, b)
	}
	cfg.Policy = "bogus"
	if err := ts.Reload(cfg); err == nil {
		t.Fatalf("Reload accepted a bad policy")
	}
	cfg.Policy = PolicyLeastLoaded
	if err := ts.Reload(cfg); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	// The service's own chorus-policy still wins over the configuration.
	o := answerOrder(exchange(t, "udp", ts.addr, query("rr.service.chorus.", dns.TypeA)))
	p := answerOrder(exchange(t, "udp", ts.addr, query("rr.service.chorus.", dns.TypeA)))
	if o[0] != p[2] {
		t.Errorf("chorus-policy round-robin lost to the configured policy: %v then %v", o, p)
	}
}

// largeStore holds service "large" with n instances on n nodes; mod
// adjusts each instance.
func largeStore(t testing.TB, n int, mod func(i int, s *svc)) *catalog.Store {
	st := catalog.NewStore()
	var nodes []node
	for i := 0; i < n; i++ {
		s := svc{name: "large", port: 1}
		if mod != nil {
			mod(i, &s)
		}
		nodes = append(nodes, node{name: fmt.Sprintf("l%04d", i), addr: fmt.Sprintf("10.8.%d.%d", i/250, i%250+1), zone: "a", services: []svc{s}})
	}
	st.Update(func(tx *catalog.Tx) {
		for _, nd := range nodes {
			tx.ApplyRecord(record(t, nd))
			tx.SetMember(nd.name, nd.addr, catalog.MemberAlive)
		}
	})
	return st
}

// askLarge answers one A query with EDNS 1232 through the handler.
func askLarge(t *testing.T, s *Server, w *recorder) []string {
	t.Helper()
	w.reset()
	m := query("large.service.chorus.", dns.TypeA)
	m.SetEdns0(1232, false)
	s.ServeDNS(w, m)
	r := w.reply(t)
	o := answerOrder(r)
	seen := map[string]bool{}
	for _, a := range o {
		if seen[a] {
			t.Fatalf("duplicate %s in %v", a, o)
		}
		seen[a] = true
	}
	if !r.Truncated || len(o) < 60 {
		t.Fatalf("%d answers, TC=%v", len(o), r.Truncated)
	}
	return o
}

func TestLargeTiers(t *testing.T) {
	t.Run("uniform", func(t *testing.T) {
		s, _ := New(baseConfig(), largeStore(t, 1000, nil), nil, nil)
		w := newRecorder(false)
		first := map[string]int{}
		for i := 0; i < 2000; i++ {
			first[askLarge(t, s, w)[0]]++
		}
		if len(first) < 800 {
			t.Errorf("only %d of 1000 instances came first in 2000 answers", len(first))
		}
	})
	t.Run("weighted", func(t *testing.T) {
		st := largeStore(t, 300, func(i int, s *svc) {
			s.weights = catalog.Weights{Passing: 1, Warning: 1}
			if i == 7 {
				s.weights.Passing = 1000
			}
		})
		s, _ := New(baseConfig(), st, nil, nil)
		w := newRecorder(false)
		heavy := 0
		const n = 3000
		for i := 0; i < n; i++ {
			if askLarge(t, s, w)[0] == "10.8.0.8" {
				heavy++
			}
		}
		// P = 1000/1299 ≈ 0.770; 5 standard deviations ≈ 0.038.
		if p := float64(heavy) / n; math.Abs(p-1000.0/1299) > 0.04 {
			t.Errorf("heavy instance first in %.3f of answers, want 0.770", p)
		}
	})
	t.Run("least-loaded", func(t *testing.T) {
		st := largeStore(t, 400, func(i int, s *svc) {
			s.meta = map[string]string{MetaPolicy: PolicyLeastLoaded}
			s.load = float64((i * 7919) % 50)
		})
		s, _ := New(baseConfig(), st, nil, nil)
		w := newRecorder(false)
		loadOf := map[string]float64{}
		for i := 0; i < 400; i++ {
			loadOf[fmt.Sprintf("10.8.%d.%d", i/250, i%250+1)] = float64((i * 7919) % 50)
		}
		o := askLarge(t, s, w)
		for i := 1; i < len(o); i++ {
			if loadOf[o[i]] < loadOf[o[i-1]] {
				t.Fatalf("load order broken at %d: %v then %v", i, loadOf[o[i-1]], loadOf[o[i]])
			}
		}
		if loadOf[o[0]] != 0 {
			t.Errorf("first has load %v", loadOf[o[0]])
		}
	})
	t.Run("hash", func(t *testing.T) {
		st := largeStore(t, 500, func(i int, s *svc) { s.meta = map[string]string{MetaPolicy: PolicyHash} })
		s, _ := New(baseConfig(), st, nil, nil)
		w := newRecorder(false)
		a := askLarge(t, s, w)
		b := askLarge(t, s, w)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("hash order not stable")
		}
	})
}

func TestSelectSmallest(t *testing.T) {
	for _, n := range []int{1, 5, 17, 33, 100, 1000} {
		for _, k := range []int{1, 3, n / 5, n / 2, n} {
			if k <= 0 || k > n {
				continue
			}
			keys := make([]keyed, n)
			for i := range keys {
				keys[i] = keyed{key: float64(randUint64() % 50), tie: randUint64(), idx: int32(i)}
			}
			want := append([]keyed(nil), keys...)
			slices.SortFunc(want, keyedLess)
			selectSmallest(keys, k)
			for i := 0; i < k; i++ {
				if keys[i] != want[i] {
					t.Fatalf("n=%d k=%d: position %d is %v, want %v", n, k, i, keys[i], want[i])
				}
			}
		}
	}
}
