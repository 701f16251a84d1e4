package replication

import (
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/chorusdns/chorus/catalog"
	tu "github.com/chorusdns/chorus/test/testutil"
)

// externalBy makes a record of external node name owned by owner, signed
// with key.
func externalBy(key ed25519.PrivateKey, name, owner string, version uint64) *catalog.NodeRecord {
	rec := &catalog.NodeRecord{Node: catalog.Node{Name: name, Address: "10.0.0.5", External: true}, Version: version, Owner: owner,
		Services: catalog.ListOf([]catalog.Service{{ID: "pg", Name: "postgres", Port: 5432, Weights: catalog.DefaultWeights}})}
	if err := rec.Sign(key); err != nil {
		panic(err)
	}
	return rec
}

// TestExternalRecordVerifiedAgainstItsOwner: an external node's record,
// noticed from its owner's address, applies when the owner's key signed
// it and is refused when another member's key did (a member cannot write
// an external node in another member's name); NotifyRecord reaches every
// member, and anti-entropy carries tombstones.
func TestExternalRecordVerifiedAgainstItsOwner(t *testing.T) {
	nodes := newMemNet(t).add(3)
	victim, owner, other := nodes[0], nodes[1], nodes[2]
	soon := uint64(time.Now().UnixMilli())
	sendNotice(t, other, victim, other.addr, externalBy(other.key, "db1", "node1", soon))
	tu.Eventually(t, 2*time.Second, func() error {
		if n := victim.rejected(rejSignature); n != 1 {
			return fmt.Errorf("%g bad signatures counted, want 1", n)
		}
		return nil
	})
	if v := victim.store.Version("db1"); v != 0 {
		t.Fatalf("record signed by another member applied: version %d", v)
	}
	rec := externalBy(owner.key, "db1", "node1", soon+1)
	sendNotice(t, owner, victim, owner.addr, rec)
	tu.Eventually(t, 2*time.Second, func() error {
		if v := victim.store.Version("db1"); v != rec.Version {
			return fmt.Errorf("version %d, want %d", v, rec.Version)
		}
		return nil
	})

	// The owner's NotifyRecord reaches the others; its tombstone
	// reaches a member that missed the notice through anti-entropy.
	rec2 := externalBy(owner.key, "db1", "node1", soon+2)
	owner.store.ApplyRecord(rec2)
	owner.sync.NotifyRecord(rec2)
	converged(t, nodes, "db1", rec2.Version, 5*time.Second)
	tomb := &catalog.NodeRecord{Node: catalog.Node{Name: "db1"}, Version: soon + 3, Owner: "node1", Deleted: true}
	if err := tomb.Sign(owner.key); err != nil {
		t.Fatal(err)
	}
	owner.store.ApplyRecord(tomb) // no notice: only anti-entropy can carry it
	converged(t, nodes, "db1", tomb.Version, 10*time.Second)
	if _, ok := victim.store.Snapshot().Node("db1"); ok {
		t.Fatal("tombstoned external node still served")
	}
}
