package wan

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/chorusdns/chorus/catalog"
)

func sampleSummary() *Summary {
	return &Summary{
		Datacenter: "dc2", Version: 42, Speakers: []string{"10.0.0.1:8302"},
		Nodes: []SummaryNode{
			{Name: "a", Address: "10.0.0.1", Zone: "z1", Meta: map[string]string{"rack": "1"}, Instances: []SummaryInstance{
				{ID: "web-1", Name: "web", Tags: []string{"v1"}, Port: 80, Meta: map[string]string{"chorus-failover": "dc1"}, Weights: catalog.Weights{Passing: 3, Warning: 1}, Health: catalog.HealthPassing},
				{ID: "db", Name: "db", Address: "10.0.0.9", Port: 5432, Weights: catalog.DefaultWeights, Health: catalog.HealthMaintenance},
			}},
			{Name: "b", Address: "10.0.0.2", Instances: []SummaryInstance{
				{ID: "web", Name: "web", Port: 80, Weights: catalog.DefaultWeights, Health: catalog.HealthCritical},
			}},
		},
	}
}

func TestSummaryRoundTrip(t *testing.T) {
	s := sampleSummary()
	enc, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSummary(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
	}
	if got.ContentHash() != s.ContentHash() {
		t.Fatal("content hash changed in a round trip")
	}
	s2 := sampleSummary()
	s2.Version++
	if s2.ContentHash() != s.ContentHash() {
		t.Fatal("the version changed the content hash")
	}
	s2.Nodes[1].Instances[0].Health = catalog.HealthPassing
	if s2.ContentHash() == s.ContentHash() {
		t.Fatal("a health change left the content hash")
	}
}

// The summary's snapshot answers as the remote datacenter's catalog:
// instance health as summarised, maintenance kept.
func TestSummarySnapshot(t *testing.T) {
	snap := sampleSummary().snapshot()
	web, ok := snap.Service("web")
	if !ok || web.Instances.Len() != 2 {
		t.Fatalf("web: %v %+v", ok, web)
	}
	health := map[string]string{}
	for _, in := range web.Instances.Values() {
		health[in.Node.Node.Name] = in.Health
		if in.Node.Node.Datacenter != "dc2" {
			t.Fatalf("instance on %s has datacenter %q", in.Node.Node.Name, in.Node.Node.Datacenter)
		}
	}
	if health["a"] != catalog.HealthPassing || health["b"] != catalog.HealthCritical {
		t.Fatalf("health %v", health)
	}
	db, _ := snap.Service("db")
	if db.Instances.Get(0).Health != catalog.HealthMaintenance {
		t.Fatalf("db health %q, want maintenance", db.Instances.Get(0).Health)
	}
}

func TestBuildSummaryFromCatalog(t *testing.T) {
	st := catalog.NewStore()
	rec := &catalog.NodeRecord{Node: catalog.Node{Name: "n1", Address: "10.1.0.1", Datacenter: "dc1"}, Version: 5,
		Services: catalog.ListOf([]catalog.Service{{ID: "web", Name: "web", Port: 80, Weights: catalog.DefaultWeights}}),
		Checks:   catalog.ListOf([]catalog.Check{{CheckID: "c", Name: "c", Status: catalog.HealthWarning, ServiceID: "web"}})}
	st.ApplyRecord(rec)
	st.SetMember("n1", "10.1.0.1", catalog.MemberAlive)
	st.ApplyRecord(&catalog.NodeRecord{Node: catalog.Node{Name: "empty", Address: "10.1.0.2", Datacenter: "dc1"}, Version: 1})
	st.SetMember("empty", "10.1.0.2", catalog.MemberAlive)
	s := BuildSummary("dc1", st.Snapshot())
	if len(s.Nodes) != 1 || s.Nodes[0].Name != "n1" || s.Nodes[0].Instances[0].Health != catalog.HealthWarning {
		t.Fatalf("summary %+v", s)
	}
	st.SetMember("n1", "10.1.0.1", catalog.MemberFailed)
	if h := BuildSummary("dc1", st.Snapshot()).Nodes[0].Instances[0].Health; h != catalog.HealthCritical {
		t.Fatalf("a failed node's instance summarised as %q", h)
	}
}

func TestDecodeSummaryRefuses(t *testing.T) {
	enc := func(mut func(*Summary)) []byte {
		s := sampleSummary()
		mut(s)
		b, err := s.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown format", []byte{9, 1, 2}},
		{"not deflate", []byte{summaryFormat, 0xff, 0xff, 0xff}},
		{"bad datacenter", enc(func(s *Summary) { s.Datacenter = "dc 2" })},
		{"version zero", enc(func(s *Summary) { s.Version = 0 })},
		{"bad node address", enc(func(s *Summary) { s.Nodes[0].Address = "nowhere" })},
		{"repeated node", enc(func(s *Summary) { s.Nodes[1].Name = "A" })},
		{"unknown health", enc(func(s *Summary) { s.Nodes[0].Instances[0].Health = "fine" })},
		{"repeated instance", enc(func(s *Summary) { s.Nodes[0].Instances[1].ID = "web-1" })},
		{"bad port", enc(func(s *Summary) { s.Nodes[0].Instances[0].Port = 70000 })},
		{"bad speaker", enc(func(s *Summary) { s.Speakers = []string{"nowhere"} })},
		{"node without instances", enc(func(s *Summary) { s.Nodes[1].Instances = nil })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeSummary(tc.b); !errors.Is(err, ErrSummary) {
				t.Fatalf("err %v, want ErrSummary", err)
			}
		})
	}
}

// FuzzDecodeSummary: any input either fails with ErrSummary or decodes to
// a summary that validates and survives a round trip unchanged.
func FuzzDecodeSummary(f *testing.F) {
	good, _ := sampleSummary().Encode()
	f.Add(good)
	f.Add([]byte{summaryFormat})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSummary(b)
		if err != nil {
			if !errors.Is(err, ErrSummary) {
				t.Fatalf("error %v does not wrap ErrSummary", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("decoded summary does not validate: %v", err)
		}
		enc, err := s.Encode()
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeSummary(enc)
		if err != nil {
			t.Fatalf("re-encoded summary does not decode: %v", err)
		}
		enc2, _ := again.Encode()
		if !bytes.Equal(enc, enc2) {
			t.Fatal("encoding is not stable")
		}
		again.snapshot() // a valid summary always builds a catalog
	})
}

// FuzzDecodeMessage: notices and digests never panic and refuse what
// breaks their bounds.
func FuzzDecodeMessage(f *testing.F) {
	f.Add([]byte(`{"e":[{"d":"dc2","v":1,"c":5}]}`))
	f.Add([]byte(`{"e":[],"s":"AQ=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			return
		}
		for _, e := range m.E {
			if e.V == 0 || e.DC == "" {
				t.Fatalf("accepted entry %+v", e)
			}
		}
	})
}
