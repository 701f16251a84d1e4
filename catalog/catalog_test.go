package catalog

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
)

func TestValidateLabel(t *testing.T) {
	cases := []struct {
		in string
		ok bool
	}{
		{"web", true}, {"Web-1", true}, {"a", true}, {strings.Repeat("a", 63), true},
		{"", false}, {strings.Repeat("a", 64), false}, {"-web", false}, {"web-", false},
		{"web_1", false}, {"web.1", false}, {"wéb", false}, {"a b", false},
	}
	for _, tc := range cases {
		err := ValidateLabel("name", tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateLabel(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateLabel(%q) error does not wrap ErrInvalid", tc.in)
		}
	}
}

func TestServiceValidateDefaults(t *testing.T) {
	cases := []struct {
		name string
		svc  Service
		want string // error substring, "" = valid
		id   string
		w    Weights
	}{
		{"id defaults to name", Service{Name: "web", Port: 80}, "", "web", DefaultWeights},
		{"explicit weights", Service{Name: "web", ID: "w1", Weights: Weights{Passing: 5, Warning: 0}}, "", "w1", Weights{5, 0}},
		{"bad port", Service{Name: "web", Port: 65536}, "outside", "", Weights{}},
		{"bad tag", Service{Name: "web", Tags: []string{"x y"}}, "tag", "", Weights{}},
		{"bad address", Service{Name: "web", Address: "not an address!"}, "address", "", Weights{}},
		{"host address", Service{Name: "web", Address: "db.example.com"}, "", "web", DefaultWeights},
		{"v6 address", Service{Name: "web", Address: "2001:db8::1"}, "", "web", DefaultWeights},
		{"slash in id", Service{Name: "web", ID: "a/b"}, "service ID", "", Weights{}},
		{"zero passing weight", Service{Name: "web", Weights: Weights{Passing: 0, Warning: 3}}, "Passing", "", Weights{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.svc
			err := s.Validate()
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				if s.ID != tc.svc.ID {
					t.Fatal("Validate changed the service on error")
				}
				return
			}
			if err != nil || s.ID != tc.id || s.Weights != tc.w {
				t.Fatalf("got %+v, %v", s, err)
			}
		})
	}
}

func TestAggregateHealth(t *testing.T) {
	cases := []struct {
		checks []Check
		want   string
	}{
		{nil, HealthPassing},
		{[]Check{{CheckID: "a", Status: HealthPassing}, {CheckID: "b", Status: HealthWarning}}, HealthWarning},
		{[]Check{{CheckID: "a", Status: HealthCritical}, {CheckID: "b", Status: HealthWarning}}, HealthCritical},
		{[]Check{{CheckID: NodeMaintCheckID, Status: HealthCritical}}, HealthMaintenance},
		{[]Check{{CheckID: ServiceMaintCheckPrefix + "web", Status: HealthCritical}, {CheckID: "x", Status: HealthPassing}}, HealthMaintenance},
		{[]Check{{CheckID: "a", Status: "bogus"}}, HealthCritical},
	}
	for i, tc := range cases {
		if got := AggregateHealth(tc.checks); got != tc.want {
			t.Errorf("case %d: %s, want %s", i, got, tc.want)
		}
	}
}

func rec(node string, version uint64, addr string, svcs ...Service) *NodeRecord {
	r := &NodeRecord{Node: Node{Name: node, Address: addr}, Version: version}
	for _, s := range svcs {
		s.Validate()
		r.Services = r.Services.Append(s)
	}
	return r
}

func TestStoreNewestVersionWins(t *testing.T) {
	s := NewStore()
	s.SetMember("a", "10.0.0.1", MemberAlive)
	if !s.ApplyRecord(rec("a", 5, "10.0.0.1", Service{Name: "web", Port: 1})) {
		t.Fatal("first record not applied")
	}
	if s.ApplyRecord(rec("a", 5, "10.0.0.1", Service{Name: "web", Port: 2})) {
		t.Fatal("same version applied twice")
	}
	if s.ApplyRecord(rec("a", 4, "10.0.0.1", Service{Name: "web", Port: 3})) {
		t.Fatal("older version applied")
	}
	se, _ := s.Snapshot().Service("web")
	if se.Instances.Get(0).Service.Port != 1 {
		t.Fatalf("port %d", se.Instances.Get(0).Service.Port)
	}
	if !s.ApplyRecord(rec("a", 6, "10.0.0.1")) {
		t.Fatal("newer record not applied")
	}
	if _, ok := s.Snapshot().Service("web"); ok {
		t.Fatal("removed service still in snapshot")
	}
}

func TestSnapshotMembershipAndHealth(t *testing.T) {
	s := NewStore()
	s.SetMember("a", "10.0.0.1", MemberAlive)
	s.SetMember("b", "10.0.0.2", MemberAlive)
	r := rec("b", 1, "10.0.0.2", Service{Name: "web", Port: 80}, Service{Name: "db", Port: 5432, Address: "10.9.9.9"})
	r.Checks = ListOf([]Check{{CheckID: "service:db", Status: HealthWarning, ServiceID: "db"}})
	s.ApplyRecord(r)
	s.ApplyRecord(rec("a", 1, "10.0.0.1", Service{Name: "web", Port: 81}))
	snap := s.Snapshot()

	web, ok := snap.Service("WEB")
	if !ok || web.Instances.Len() != 2 || web.Instances.Get(0).Node.Node.Name != "a" {
		t.Fatalf("web: %+v", web)
	}
	db, _ := snap.Service("db")
	if h := db.Instances.Get(0).Health; h != HealthWarning {
		t.Fatalf("db health %s", h)
	}
	if db.Instances.Get(0).Address() != "10.9.9.9" || web.Instances.Get(1).Address() != "10.0.0.2" {
		t.Fatal("addresses")
	}
	if n := snap.NodesByAddress(net.ParseIP("10.0.0.2")); len(n) != 1 || n[0].Node.Name != "b" {
		t.Fatalf("by address: %v", n)
	}
	if i := snap.InstancesByAddress(net.ParseIP("10.9.9.9")); i.Len() != 1 {
		t.Fatalf("service by address: %v", i)
	}

	// A failed member: still listed, every instance critical.
	s.SetMember("b", "10.0.0.2", MemberFailed)
	snap = s.Snapshot()
	n, ok := snap.Node("b")
	if !ok || n.Health != HealthCritical || n.Checks[0].CheckID != SerfCheckID {
		t.Fatalf("failed node: %+v", n)
	}
	web, _ = snap.Service("web")
	for _, i := range web.Instances.Values() {
		if i.Node.Node.Name == "b" && i.Health != HealthCritical {
			t.Fatal("instance on failed node not critical")
		}
	}
	// Left: gone from the snapshot but the record is kept.
	s.SetMember("b", "10.0.0.2", MemberLeft)
	if _, ok := s.Snapshot().Node("b"); ok {
		t.Fatal("left node served")
	}
	if s.Version("b") != 1 {
		t.Fatal("record of left node dropped")
	}
	// Reaped: forgotten.
	s.RemoveNode("b")
	if s.Version("b") != 0 {
		t.Fatal("reaped node kept")
	}
}

func TestIndexesMoveOnlyForTheirData(t *testing.T) {
	s := NewStore()
	s.SetMember("a", "10.0.0.1", MemberAlive)
	s.ApplyRecord(rec("a", 1, "10.0.0.1", Service{Name: "web", Port: 80}, Service{Name: "db", Port: 5432}))
	snap1 := s.Snapshot()
	web1, _ := snap1.Service("web")
	db1, _ := snap1.Service("db")

	s.ApplyRecord(rec("a", 2, "10.0.0.1", Service{Name: "web", Port: 80}, Service{Name: "db", Port: 5433}))
	snap2 := s.Snapshot()
	select {
	case <-snap1.Changed():
	default:
		t.Fatal("old snapshot not marked changed")
	}
	web2, _ := snap2.Service("web")
	db2, _ := snap2.Service("db")
	if snap2.Index <= snap1.Index {
		t.Fatal("index did not grow")
	}
	if web2.Index != web1.Index {
		t.Fatal("web's index moved for a change to db")
	}
	if db2.Index <= db1.Index {
		t.Fatal("db's index did not move")
	}
	if snap2.ServicesIndex() != snap1.ServicesIndex() {
		t.Fatal("service set index moved without a change to names or tags")
	}
}

func TestDigestEqualForEqualCatalogs(t *testing.T) {
	build := func(order []string) *Store {
		s := NewStore()
		for _, n := range order {
			s.SetMember(n, "", MemberAlive)
			s.ApplyRecord(rec(n, 3, "10.0.0.1", Service{Name: "x"}))
		}
		return s
	}
	a := build([]string{"n1", "n2", "n3"})
	b := build([]string{"n3", "n1", "n2"})
	if a.Snapshot().Digest() != b.Snapshot().Digest() {
		t.Fatal("same catalogs, different digests")
	}
	b.ApplyRecord(rec("n2", 4, "10.0.0.1"))
	if a.Snapshot().Digest() == b.Snapshot().Digest() {
		t.Fatal("different catalogs, same digest")
	}
}

func TestRecordCodecRoundTripAndRejects(t *testing.T) {
	r := rec("node-1", 42, "10.0.0.1", Service{Name: "web", Port: 80, Tags: []string{"a"}, Meta: map[string]string{"k": "v"}})
	r.Checks = ListOf([]Check{{CheckID: "service:web", Status: HealthPassing, ServiceID: "web"}})
	r.Gossip = "10.0.0.1:8301"
	b, err := EncodeRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(b)
	if err != nil || got.Version != 42 || got.Services.At(0).Meta["k"] != "v" || got.Checks.At(0).Status != HealthPassing || got.Gossip != r.Gossip {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	bad := []struct {
		name string
		rec  *NodeRecord
	}{
		{"bad node name", rec("bad name", 1, "")},
		{"duplicate ids", rec("n", 1, "", Service{Name: "web"}, Service{Name: "web"})},
		{"check for unknown service", &NodeRecord{Node: Node{Name: "n"}, Checks: ListOf([]Check{{CheckID: "c", Status: HealthPassing, ServiceID: "zzz"}})}},
		{"unknown status", &NodeRecord{Node: Node{Name: "n"}, Checks: ListOf([]Check{{CheckID: "c", Status: "great"}})}},
		{"gossip address without port", &NodeRecord{Node: Node{Name: "n"}, Gossip: "10.0.0.1"}},
		{"gossip address by name", &NodeRecord{Node: Node{Name: "n"}, Gossip: "example.com:8301"}},
		{"gossip port 0", &NodeRecord{Node: Node{Name: "n"}, Gossip: "[::1]:0"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			b, err := EncodeRecord(tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeRecord(b); !errors.Is(err, ErrRecordCorrupt) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	for i, junk := range [][]byte{nil, {1}, {9, 1, 2}, append([]byte{1}, []byte("not deflate")...)} {
		if _, err := DecodeRecord(junk); err == nil {
			t.Errorf("junk %d decoded", i)
		}
	}
}

// FuzzDecodeRecord feeds arbitrary bytes to the record decoder, which
// peers' data goes through: it must never panic, and whatever it accepts
// must validate and re-encode.
func FuzzDecodeRecord(f *testing.F) {
	r := rec("node-1", 7, "10.0.0.1", Service{Name: "web", Port: 80})
	b, _ := EncodeRecord(r)
	f.Add(b)
	f.Add([]byte{1, 0})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeRecord(data)
		if err != nil {
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("accepted a record that does not validate: %v", err)
		}
		if _, err := EncodeRecord(got); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func BenchmarkPublish10kInstances(b *testing.B) {
	s := NewStore()
	for n := 0; n < 100; n++ {
		name := fmt.Sprintf("node%03d", n)
		s.SetMember(name, "10.0.0.1", MemberAlive)
		r := &NodeRecord{Node: Node{Name: name, Address: "10.0.0.1"}, Version: 1}
		for i := 0; i < 100; i++ {
			sv := Service{Name: fmt.Sprintf("svc%d", i%50), ID: fmt.Sprintf("i%d", i), Port: i}
			sv.Validate()
			r.Services = r.Services.Append(sv)
		}
		s.ApplyRecord(r)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.SetMember("node000", "10.0.0.1", MemberStatus(1+i%2*3))
	}
}
