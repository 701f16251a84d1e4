package catalog

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestReusedInstancesMatchFreshOnes changes one node's record a little at
// a time (records with their hash trees, as the agent's and a peer's are)
// and checks that the entry built by lending the previous entry's
// unchanged instances equals one built from scratch.
func TestReusedInstancesMatchFreshOnes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	st := NewStore()
	st.SetMember("n1", "10.0.0.1", MemberAlive)
	rec := &NodeRecord{Node: Node{Name: "n1", Address: "10.0.0.1"}, Version: 1}
	for i := range 50 {
		id := fmt.Sprintf("s%02d", i)
		rec.Services = append(rec.Services, Service{ID: id, Name: []string{"web", "db"}[i%2], Port: i, Tags: []string{"a"}, Weights: DefaultWeights})
		rec.Checks = append(rec.Checks, Check{CheckID: "c" + id, ServiceID: id, Status: HealthPassing})
	}
	next := func(change func(r *NodeRecord)) {
		n := *rec
		n.Version++
		n.Services = slices.Clone(rec.Services)
		n.Checks = slices.Clone(rec.Checks)
		change(&n)
		n.Sort()
		t0, err := computeTree(&n)
		if err != nil {
			t.Fatal(err)
		}
		n.SetPieceTree(t0)
		rec = &n
		st.ApplyRecord(rec)
	}
	next(func(*NodeRecord) {})
	reused := 0
	prev, _ := st.Snapshot().Node("n1")
	for round := range 300 {
		switch r.IntN(7) {
		case 0, 1:
			next(func(n *NodeRecord) { n.Services[r.IntN(len(n.Services))].Port = r.IntN(1000) })
		case 2:
			next(func(n *NodeRecord) {
				c := &n.Checks[r.IntN(len(n.Checks))]
				c.Status = []string{HealthPassing, HealthWarning, HealthCritical}[r.IntN(3)]
			})
		case 3:
			next(func(n *NodeRecord) {
				id := fmt.Sprintf("x%03d", round)
				n.Services = append(n.Services, Service{ID: id, Name: "web", Port: 1, Weights: DefaultWeights})
				n.Checks = append(n.Checks, Check{CheckID: "c" + id, ServiceID: id, Status: HealthCritical})
			})
		case 4:
			next(func(n *NodeRecord) {
				if len(n.Services) < 2 {
					return
				}
				i := r.IntN(len(n.Services))
				id := n.Services[i].ID
				n.Services = slices.Delete(n.Services, i, i+1)
				n.Checks = slices.DeleteFunc(n.Checks, func(c Check) bool { return c.ServiceID == id })
			})
		case 5:
			next(func(n *NodeRecord) {
				if r.IntN(2) == 0 {
					n.Checks = append(n.Checks, Check{CheckID: "node", Status: HealthWarning})
				} else {
					n.Checks = slices.DeleteFunc(n.Checks, func(c Check) bool { return c.CheckID == "node" })
				}
			})
		case 6:
			st.SetMember("n1", "10.0.0.1", []MemberStatus{MemberAlive, MemberFailed}[r.IntN(2)])
		}
		snap := st.Snapshot()
		got, ok := snap.Node("n1")
		if !ok {
			t.Fatal("node missing")
		}
		want := buildNode("n1", "10.0.0.1", rec, got.Status, got.Index, nil)
		if len(got.Instances) != len(want.Instances) || !slices.Equal(got.Checks, want.Checks) || !slices.Equal(checkValues(got.AllChecks()), checkValues(want.AllChecks())) || got.Health != want.Health || got.allSlow != want.allSlow {
			t.Fatalf("round %d: node entry differs from a fresh build", round)
		}
		for i, g := range got.Instances {
			w := want.Instances[i]
			if g.Service.ID != w.Service.ID || g.hash != w.hash || g.Health != w.Health || !slices.Equal(checkValues(g.Checks()), checkValues(w.Checks())) || g.Node != got {
				t.Fatalf("round %d: instance %s differs from a fresh build", round, g.Service.ID)
			}
		}
		for _, g := range got.Instances {
			for _, p := range prev.Instances {
				if p.Service.ID == g.Service.ID && len(g.own) > 0 && len(p.own) > 0 && &g.own[0] == &p.own[0] {
					reused++
				}
			}
		}
		prev = got
	}
	if reused == 0 {
		t.Fatal("no instance was ever lent by the previous entry")
	}
	t.Logf("%d instances lent", reused)
}
