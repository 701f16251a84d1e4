package catalog

import (
	"errors"
	"testing"
)

func externalRecord(name, owner string, version uint64) *NodeRecord {
	return &NodeRecord{
		Node: Node{Name: name, Address: "10.0.0.5", External: true}, Version: version, Owner: owner,
		Services: ListOf([]Service{{ID: "pg", Name: "postgres", Port: 5432, Weights: DefaultWeights}}),
		Checks: ListOf([]Check{
			{CheckID: "alive", Name: "alive", Status: HealthPassing},
			{CheckID: "pg", Name: "pg", Status: HealthWarning, ServiceID: "pg", ServiceName: "postgres"},
		}),
	}
}

// TestExternalNodeServed: an external node's record is served with no
// member status and no serfHealth check; its owner's failure does not
// touch it; a tombstone removes it from answers and lists it in
// Tombstones until forgotten.
func TestExternalNodeServed(t *testing.T) {
	s := NewStore()
	s.SetMember("agent1", "127.0.0.1", MemberAlive)
	s.ApplyRecord(externalRecord("db1", "agent1", 10))
	n, ok := s.Snapshot().Node("db1")
	if !ok || n.Owner() != "agent1" || n.Status != MemberNone {
		t.Fatalf("db1 not served: %+v", n)
	}
	if len(n.Checks) != 1 || n.Checks[0].CheckID != "alive" {
		t.Fatalf("node checks %+v, want alive only (no serfHealth)", n.Checks)
	}
	if n.Instances.Len() != 1 || n.Instances.Get(0).Health != HealthWarning {
		t.Fatalf("instances %+v", n.Instances)
	}
	if e, ok := s.Snapshot().Service("postgres"); !ok || e.Instances.Len() != 1 {
		t.Fatal("postgres not served")
	}
	s.SetMember("agent1", "127.0.0.1", MemberFailed)
	if n, ok := s.Snapshot().Node("db1"); !ok || n.Health != HealthPassing {
		t.Fatal("owner's failure changed the external node")
	}
	// An older version does not replace it; a tombstone does.
	if s.ApplyRecord(externalRecord("db1", "agent2", 9)) {
		t.Fatal("older version applied")
	}
	s.ApplyRecord(&NodeRecord{Node: Node{Name: "db1"}, Version: 11, Owner: "agent2", Deleted: true})
	if _, ok := s.Snapshot().Node("db1"); ok {
		t.Fatal("tombstoned node still served")
	}
	if _, ok := s.Snapshot().Service("postgres"); ok {
		t.Fatal("tombstoned node's service still served")
	}
	tb := s.Snapshot().Tombstones()
	if len(tb) != 1 || tb[0] != (Tombstone{Node: "db1", Version: 11, Owner: "agent2"}) {
		t.Fatalf("tombstones %+v", tb)
	}
	if s.ApplyRecord(externalRecord("db1", "agent1", 10)) {
		t.Fatal("a version older than the tombstone brought the node back")
	}
	if s.ForgetTombstone("db1", 10) {
		t.Fatal("forgot a tombstone of another version")
	}
	if !s.ForgetTombstone("db1", 11) || len(s.Snapshot().Tombstones()) != 0 || s.Record("db1") != nil {
		t.Fatal("tombstone not forgotten")
	}
	// Tombstones stay sorted across changes.
	for i, name := range []string{"c", "a", "b"} {
		s.ApplyRecord(&NodeRecord{Node: Node{Name: name}, Version: uint64(20 + i), Owner: "agent1", Deleted: true})
	}
	tb = s.Snapshot().Tombstones()
	if len(tb) != 3 || tb[0].Node != "a" || tb[1].Node != "b" || tb[2].Node != "c" {
		t.Fatalf("tombstones %+v", tb)
	}
}

func TestExternalRecordValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  NodeRecord
	}{
		{"tombstone without owner", NodeRecord{Node: Node{Name: "db1"}, Version: 1, Deleted: true}},
		{"owns itself", NodeRecord{Node: Node{Name: "db1", External: true}, Version: 1, Owner: "db1"}},
		{"owner but not external", NodeRecord{Node: Node{Name: "db1"}, Version: 1, Owner: "a"}},
		{"external without owner", NodeRecord{Node: Node{Name: "db1", External: true}, Version: 1}},
		{"bad owner", NodeRecord{Node: Node{Name: "db1"}, Version: 1, Owner: "a b"}},
		{"gossip address", NodeRecord{Node: Node{Name: "db1"}, Version: 1, Owner: "a", Gossip: "127.0.0.1:1"}},
		{"tombstone with services", NodeRecord{Node: Node{Name: "db1"}, Version: 1, Owner: "a", Deleted: true,
			Services: ListOf([]Service{{ID: "x", Name: "x"}})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.rec.Validate(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
	if err := externalRecord("db1", "agent1", 1).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestMemberStatusKeptForLeftMembers(t *testing.T) {
	s := NewStore()
	if s.MemberStatus("a") != MemberNone {
		t.Fatal("unknown member has a status")
	}
	s.SetMember("a", "127.0.0.1", MemberLeft)
	if _, ok := s.Snapshot().Node("a"); ok || s.MemberStatus("a") != MemberLeft {
		t.Fatalf("left member: served %v, status %v", ok, s.MemberStatus("a"))
	}
	s.RemoveNode("a")
	if s.MemberStatus("a") != MemberNone {
		t.Fatal("reaped member keeps a status")
	}
}
