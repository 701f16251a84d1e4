package catalog_test

import (
	"fmt"
	"testing"

	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/catalog/catalogtest"
)

var benchShapes = []struct {
	name  string
	shape catalogtest.Shape
}{
	{"10k", catalogtest.Shape{Nodes: 1000, ServicesPerNode: 10}},
	{"100k", catalogtest.Shape100k},
}

// BenchmarkSnapshotOneNode measures the snapshot built for one node's
// change in a full catalog: a service check flipping (which touches the
// node's 10 services, one of them on every node) and a member flipping
// between alive and failed.
func BenchmarkSnapshotOneNode(b *testing.B) {
	for _, bs := range benchShapes {
		st := catalog.NewStore()
		catalogtest.Fill(st, bs.shape)
		n := bs.shape.Nodes / 2
		rec := catalogtest.Record(bs.shape, n, 1)
		b.Run(bs.name+"/check", func(b *testing.B) {
			v := st.Version(rec.Node.Name)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				v++
				status := catalog.HealthCritical
				if i%2 == 1 {
					status = catalog.HealthPassing
				}
				st.ApplyRecord(catalogtest.Flip(rec, v, status))
			}
		})
		b.Run(bs.name+"/member", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				st.SetMember(rec.Node.Name, rec.Node.Address, catalog.MemberStatus(1+i%2*3)) // alive ↔ failed
			}
			st.SetMember(rec.Node.Name, rec.Node.Address, catalog.MemberAlive)
		})
	}
}

// BenchmarkSnapshotBurst measures K nodes' changes applied through one
// Store.Update, as replication applies a burst of received records: the
// cost should be about K times one node's.
func BenchmarkSnapshotBurst(b *testing.B) {
	shape := catalogtest.Shape100k
	st := catalog.NewStore()
	catalogtest.Fill(st, shape)
	for _, k := range []int{1, 10, 100} {
		recs := make([]*catalog.NodeRecord, k)
		vers := make([]uint64, k)
		for j := range recs {
			recs[j] = catalogtest.Record(shape, j*shape.Nodes/k, 1)
			vers[j] = st.Version(recs[j].Node.Name)
		}
		b.Run(fmt.Sprintf("100k/K=%d", k), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				status := catalog.HealthCritical
				if i%2 == 1 {
					status = catalog.HealthPassing
				}
				st.Update(func(tx *catalog.Tx) {
					for j, r := range recs {
						vers[j]++
						tx.ApplyRecord(catalogtest.Flip(r, vers[j], status))
					}
				})
			}
		})
	}
}

// BenchmarkOwnNodeChange measures the snapshot built when a node with
// many instances of one service, all at one service address, changes one
// of them (a new port), as the owner's own record arrives with its hash
// tree after a registration: the cost should follow the change, not the
// node's instances.
func BenchmarkOwnNodeChange(b *testing.B) {
	for _, n := range []int{300, 10000} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			st := catalog.NewStore()
			st.SetMember("own", "10.0.0.1", catalog.MemberAlive)
			rec := &catalog.NodeRecord{Node: catalog.Node{Name: "own", Address: "10.0.0.1"}, Version: 1}
			for i := range n {
				id := fmt.Sprintf("web-%05d", i)
				rec.Services = rec.Services.Append(catalog.Service{ID: id, Name: "web", Address: "10.0.0.2", Port: 1000,
					Tags: []string{"primary"}, Weights: catalog.DefaultWeights})
				rec.Checks = rec.Checks.Append(catalog.Check{CheckID: "service:" + id, Name: "ttl", Status: catalog.HealthPassing, ServiceID: id, ServiceName: "web"})
			}
			tree, err := rec.PieceTree()
			if err != nil {
				b.Fatal(err)
			}
			rec.SetPieceTree(tree)
			st.ApplyRecord(rec)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				// The record is the owner's work: only its application is
				// timed.
				b.StopTimer()
				next := *rec
				next.Version++
				k := i % n
				svc := *rec.Services.At(k)
				svc.Port++
				next.Services = rec.Services.Apply(func(s *catalog.Service) string { return s.ID }, []catalog.Edit[catalog.Service]{{ID: svc.ID, Value: svc}})
				lf, _, err := catalog.ServiceLeaf(&svc)
				if err != nil {
					b.Fatal(err)
				}
				tree = tree.With([]catalog.Leaf{lf}, nil)
				next.SetPieceTree(tree)
				rec = &next
				b.StartTimer()
				st.ApplyRecord(rec)
			}
		})
	}
}
