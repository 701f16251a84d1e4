package wan

import (
	"fmt"
	"testing"

	"github.com/chorusdns/chorus/catalog"
)

// benchStore holds nodes × perNode instances with a tag, a meta key and a
// passing check each, as a datacenter's catalog.
func benchStore(b *testing.B, nodes, perNode int) *catalog.Store {
	b.Helper()
	st := catalog.NewStore()
	st.Update(func(tx *catalog.Tx) {
		for i := 0; i < nodes; i++ {
			name := fmt.Sprintf("node-%05d", i)
			addr := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
			rec := &catalog.NodeRecord{Node: catalog.Node{Name: name, Address: addr, Datacenter: "dc1"}, Version: 1}
			for j := 0; j < perNode; j++ {
				id := fmt.Sprintf("svc-%d-%d", j, i)
				rec.Services = rec.Services.Append(catalog.Service{ID: id, Name: fmt.Sprintf("svc-%d", j), Port: 8000 + j,
					Tags: []string{"v1"}, Meta: map[string]string{"version": "1.2.3"}, Weights: catalog.DefaultWeights})
				rec.Checks = rec.Checks.Append(catalog.Check{CheckID: "c:" + id, Name: "c", Status: catalog.HealthPassing, ServiceID: id})
			}
			tx.ApplyRecord(rec)
			tx.SetMember(name, addr, catalog.MemberAlive)
		}
	})
	return st
}

// BenchmarkSummary measures what one change costs a speaker (build,
// hash, encode) and a receiver (decode, build its catalog), with the
// encoded size, at 1,000 and 10,000 instances.
func BenchmarkSummary(b *testing.B) {
	for _, size := range []struct{ nodes, per int }{{100, 10}, {1000, 10}} {
		st := benchStore(b, size.nodes, size.per)
		name := fmt.Sprintf("instances=%d", size.nodes*size.per)
		b.Run(name+"/speaker", func(b *testing.B) {
			var n int
			for i := 0; i < b.N; i++ {
				s := BuildSummary("dc1", st.Snapshot())
				s.Version = uint64(i + 1)
				_ = s.ContentHash()
				enc, err := s.Encode()
				if err != nil {
					b.Fatal(err)
				}
				n = len(enc)
			}
			b.ReportMetric(float64(n), "bytes")
		})
		s := BuildSummary("dc1", st.Snapshot())
		s.Version = 1
		enc, _ := s.Encode()
		b.Run(name+"/receiver", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				d, err := DecodeSummary(enc)
				if err != nil {
					b.Fatal(err)
				}
				d.snapshot()
			}
		})
	}
}
