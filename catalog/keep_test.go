package catalog

import (
	"crypto/ed25519"
	"reflect"
	"testing"
)

// TestStoreKeepsSmallRecordsWithoutTree checks that the store holds a
// record of fewer than treeKeptPieces pieces without its hash tree and a
// larger one with it, that neither the record handed in nor what readers
// see changes, and that a delta against the record held still applies and
// verifies (its base tree computed again).
func TestStoreKeepsSmallRecordsWithoutTree(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	for _, n := range []int{5, treeKeptPieces} { // 10 pieces; 128 pieces
		base, next := deltaTestRecords(t, key, n)
		got := received(t, base)
		st := NewStore()
		st.SetMember(got.Node.Name, got.Node.Address, MemberAlive)
		if !st.ApplyRecord(got) {
			t.Fatal("record not applied")
		}
		if got.tree == nil {
			t.Fatal("the record handed in lost its tree")
		}
		held := st.Record(got.Node.Name)
		small := got.Services.Len()+got.Checks.Len() < treeKeptPieces
		if (held.tree == nil) != small {
			t.Fatalf("%d pieces: held with tree %v", got.Services.Len()+got.Checks.Len(), held.tree != nil)
		}
		c := *got
		c.tree = nil
		h := *held
		h.tree = nil
		if !reflect.DeepEqual(&c, &h) {
			t.Fatalf("%d services: the record held differs from the one applied", n)
		}
		if e, ok := st.Snapshot().Node(got.Node.Name); !ok || e.Record() != held || e.Instances.Len() != got.Services.Len() {
			t.Fatalf("%d services: snapshot entry does not read the record held", n)
		}
		d, err := EncodeDelta(base, next)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := ApplyDelta(held, d)
		if err != nil {
			t.Fatalf("%d services: delta against the record held: %v", n, err)
		}
		if err := rec.Verify(pub); err != nil {
			t.Fatalf("%d services: %v", n, err)
		}
		if !st.ApplyRecord(rec) || st.Record(rec.Node.Name).Version != next.Version {
			t.Fatalf("%d services: next version not applied", n)
		}
		if e, _ := st.Snapshot().Node(rec.Node.Name); e.Instances.Len() != next.Services.Len() {
			t.Fatalf("%d services: %d instances after the delta, want %d", n, e.Instances.Len(), next.Services.Len())
		}
	}
}

// BenchmarkDeltaSmallBase measures applying a delta to a record of the
// catalogmem shape's size (10 services with their checks: 20 pieces) as
// the store holds it now (no tree: computed again per delta) and with
// the tree kept.
func BenchmarkDeltaSmallBase(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(nil)
	base, next := deltaTestRecords(b, key, 10)
	d, err := EncodeDelta(base, next)
	if err != nil {
		b.Fatal(err)
	}
	withTree := received(b, base)
	bare := *withTree
	bare.tree = nil
	for _, c := range []struct {
		name string
		base *NodeRecord
	}{{"tree-kept", withTree}, {"tree-computed", &bare}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ApplyDelta(c.base, d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
