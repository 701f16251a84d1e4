package dns

import (
	"fmt"
	"net"
	"testing"

	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/catalog/catalogtest"
	"github.com/miekg/dns"
)

// discard is a ResponseWriter that drops what is written.
type discard struct{ remote net.Addr }

func (d *discard) LocalAddr() net.Addr         { return d.remote }
func (d *discard) RemoteAddr() net.Addr        { return d.remote }
func (d *discard) WriteMsg(*dns.Msg) error     { return nil }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) Close() error                { return nil }
func (d *discard) TsigStatus() error           { return nil }
func (d *discard) TsigTimersOnly(bool)         {}
func (d *discard) Hijack()                     {}

// benchStore holds service "svc" with n healthy instances, plus filler
// services up to total instances in all (3 instances per filler service,
// 10 instances per node).
func benchStore(b testing.TB, n, total int) *catalog.Store {
	st := catalog.NewStore()
	var nodes []node
	for i := 0; i < n; i++ {
		nodes = append(nodes, node{name: fmt.Sprintf("s%05d", i), addr: fmt.Sprintf("10.%d.%d.%d", 100+i/65536, i/256%256, i%256), zone: "a",
			services: []svc{{name: "svc", port: 8080}}})
	}
	filler := total - n
	for i := 0; i*10 < filler; i++ {
		nd := node{name: fmt.Sprintf("f%05d", i), addr: fmt.Sprintf("10.%d.%d.%d", 200+i/65536, i/256%256, i%256), zone: "a"}
		for j := 0; j < 10 && i*10+j < filler; j++ {
			k := i*10 + j
			nd.services = append(nd.services, svc{id: fmt.Sprintf("f%d", k), name: fmt.Sprintf("filler%d", k/3), port: 9000 + j})
		}
		nodes = append(nodes, nd)
	}
	st.Update(func(tx *catalog.Tx) {
		for _, nd := range nodes {
			tx.ApplyRecord(record(b, nd))
			tx.SetMember(nd.name, nd.addr, catalog.MemberAlive)
		}
	})
	return st
}

func benchServe(b *testing.B, st *catalog.Store, cfg Config, qname string, qtype uint16, edns bool) {
	s, err := New(cfg, st, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	m := query(qname, qtype)
	if edns {
		m.SetEdns0(1232, false)
	}
	w := &discard{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}}
	s.ServeDNS(w, m) // warm the cache
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.ServeDNS(w, m)
	}
}

func BenchmarkServeDNS(b *testing.B) {
	cfg := baseConfig()
	for _, n := range []int{3, 30} {
		st := benchStore(b, n, n)
		b.Run(fmt.Sprintf("A/%d", n), func(b *testing.B) { benchServe(b, st, cfg, "svc.service.chorus.", dns.TypeA, false) })
		b.Run(fmt.Sprintf("A-EDNS/%d", n), func(b *testing.B) { benchServe(b, st, cfg, "svc.service.chorus.", dns.TypeA, true) })
		b.Run(fmt.Sprintf("SRV/%d", n), func(b *testing.B) { benchServe(b, st, cfg, "svc.service.chorus.", dns.TypeSRV, false) })
		b.Run(fmt.Sprintf("SRV-EDNS/%d", n), func(b *testing.B) { benchServe(b, st, cfg, "svc.service.chorus.", dns.TypeSRV, true) })
	}
	st := benchStore(b, 3, 10000)
	b.Run("A/3-of-10000", func(b *testing.B) { benchServe(b, st, cfg, "svc.service.chorus.", dns.TypeA, false) })
	b.Run("SRV/3-of-10000", func(b *testing.B) { benchServe(b, st, cfg, "svc.service.chorus.", dns.TypeSRV, false) })
	big := benchStore(b, 10000, 10000)
	b.Run("A/10000", func(b *testing.B) { benchServe(b, big, cfg, "svc.service.chorus.", dns.TypeA, true) })
	b.Run("SRV/10000", func(b *testing.B) { benchServe(b, big, cfg, "svc.service.chorus.", dns.TypeSRV, true) })
	b.Run("NXDOMAIN", func(b *testing.B) { benchServe(b, st, cfg, "nope.service.chorus.", dns.TypeA, false) })
	b.Run("node", func(b *testing.B) { benchServe(b, st, cfg, "s00001.node.chorus.", dns.TypeA, false) })
	for _, p := range []string{PolicyRoundRobin, PolicyLeastLoaded, PolicyNearest, PolicyHash} {
		c := cfg
		c.Policy = p
		st := benchStore(b, 30, 30)
		b.Run("A-"+p+"/30", func(b *testing.B) { benchServe(b, st, c, "svc.service.chorus.", dns.TypeA, false) })
	}
}

// BenchmarkServeDNSParallel measures the lock-free read path under
// concurrency.
func BenchmarkServeDNSParallel(b *testing.B) {
	s, err := New(baseConfig(), benchStore(b, 3, 3), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	m := query("svc.service.chorus.", dns.TypeA)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discard{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}}
		for pb.Next() {
			s.ServeDNS(w, m)
		}
	})
}

// BenchmarkBare is the reference handler of issue 5: a fixed reply of
// three A records built and packed for each query.
func BenchmarkBare(b *testing.B) {
	m := query("svc.service.chorus.", dns.TypeA)
	w := &discard{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		bareHandler(w, m)
	}
}

func bareHandler(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	for _, ip := range []net.IP{{10, 0, 0, 1}, {10, 0, 0, 2}, {10, 0, 0, 3}} {
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: ip})
	}
	_ = w.WriteMsg(m)
}

// BenchmarkSnapshotChange measures the first answer after an unrelated
// catalog change: the entry is carried over, not rebuilt.
func BenchmarkSnapshotChange(b *testing.B) {
	st := benchStore(b, 30, 3000)
	s, err := New(baseConfig(), st, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	m := query("svc.service.chorus.", dns.TypeSRV)
	w := &discard{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}}
	s.ServeDNS(w, m)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st.SetMember("f00001", "10.200.0.1", catalog.MemberStatus(1+i%2*3)) // alive ↔ failed
		b.StartTimer()
		s.ServeDNS(w, m)
	}
}

// BenchmarkChange100k measures DNS's share of one node's change in the
// 100,000-instance catalog: after each change, 1,000 warm service names
// are asked again (A), so an op is one change plus 1,000 answers. Entries
// of services the change did not touch must not be prepared again.
func BenchmarkChange100k(b *testing.B) {
	shape := catalogtest.Shape100k
	st := catalog.NewStore()
	catalogtest.Fill(st, shape)
	s, err := New(baseConfig(), st, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	w := &discard{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}}
	var qs []*dns.Msg
	for j := 0; j < 1000; j++ {
		qs = append(qs, query(catalogtest.ServiceName(j*shape.Nodes/1000)+".service.chorus.", dns.TypeA))
	}
	for _, m := range qs {
		s.ServeDNS(w, m)
	}
	rec := catalogtest.Record(shape, shape.Nodes-1, 1)
	v := st.Version(rec.Node.Name)
	b.Run("change-only", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			v++
			st.ApplyRecord(catalogtest.Flip(rec, v, []string{catalog.HealthCritical, catalog.HealthPassing}[i%2]))
		}
	})
	b.Run("change+1000-answers", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			v++
			st.ApplyRecord(catalogtest.Flip(rec, v, []string{catalog.HealthCritical, catalog.HealthPassing}[i%2]))
			for _, m := range qs {
				s.ServeDNS(w, m)
			}
		}
	})
	b.Run("1000-answers", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			for _, m := range qs {
				s.ServeDNS(w, m)
			}
		}
	})
}

// BenchmarkServeDNS100k answers from the 100,000-instance catalog: a
// service of 9 instances, node-exporter (one instance on each of the
// 10,000 nodes, EDNS so that the answer is not truncated to nothing) and
// a node.
func BenchmarkServeDNS100k(b *testing.B) {
	st := catalog.NewStore()
	catalogtest.Fill(st, catalogtest.Shape100k)
	cfg := baseConfig()
	b.Run("A/9", func(b *testing.B) {
		benchServe(b, st, cfg, catalogtest.ServiceName(42)+".service.chorus.", dns.TypeA, false)
	})
	b.Run("SRV/9", func(b *testing.B) {
		benchServe(b, st, cfg, catalogtest.ServiceName(42)+".service.chorus.", dns.TypeSRV, true)
	})
	b.Run("A/10000", func(b *testing.B) { benchServe(b, st, cfg, "node-exporter.service.chorus.", dns.TypeA, true) })
	b.Run("node", func(b *testing.B) {
		benchServe(b, st, cfg, catalogtest.NodeName(4242)+".node.chorus.", dns.TypeA, false)
	})
}
