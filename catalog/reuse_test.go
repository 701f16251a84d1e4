package catalog

import (
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
)

// TestReusedInstancesMatchFreshOnes changes one node's record a little at
// a time (records with their hash trees, as the agent's and a peer's are)
// and checks that the entry built by lending the previous entry's
// unchanged instances, and the service and address lists patched with
// the instances that changed, equal those of a store that built the
// record from scratch: below sparseNode instances (every instance built
// again) and above (unchanged instances kept).
func TestReusedInstancesMatchFreshOnes(t *testing.T) {
	for _, size := range []int{50, 3 * sparseNode} {
		t.Run(fmt.Sprint(size), func(t *testing.T) { testReusedInstances(t, size) })
	}
}

func testReusedInstances(t *testing.T, size int) {
	r := rand.New(rand.NewPCG(3, 5))
	st := NewStore()
	st.SetMember("n1", "10.0.0.1", MemberAlive)
	// Another node shares the service names and addresses, so that
	// the lists patched hold other nodes' instances around n1's.
	other := &NodeRecord{Node: Node{Name: "n0", Address: "10.0.0.2"}, Version: 1,
		Services: ListOf([]Service{{ID: "w", Name: "web", Address: "10.1.0.1", Weights: DefaultWeights}, {ID: "z", Name: "db", Address: "10.1.0.2", Weights: DefaultWeights}})}
	other2 := &NodeRecord{Node: Node{Name: "n2", Address: "10.0.0.3"}, Version: 1,
		Services: ListOf([]Service{{ID: "a", Name: "web", Address: "10.1.0.1", Weights: DefaultWeights}})}
	for _, o := range []*NodeRecord{other, other2} {
		st.SetMember(o.Node.Name, o.Node.Address, MemberAlive)
		st.ApplyRecord(o)
	}
	addrs := []string{"", "10.1.0.1", "10.1.0.2"}
	rec := &NodeRecord{Node: Node{Name: "n1", Address: "10.0.0.1"}, Version: 1}
	for i := range size {
		id := fmt.Sprintf("s%03d", i)
		rec.Services = rec.Services.Append(Service{ID: id, Name: []string{"web", "db"}[i%2], Port: i, Tags: []string{"a"}, Address: addrs[i%3], Weights: DefaultWeights})
		rec.Checks = rec.Checks.Append(Check{CheckID: "c" + id, ServiceID: id, Status: HealthPassing})
	}
	next := func(change func(r *NodeRecord)) {
		n := *rec
		n.Version++
		n.Services = ListOf(rec.Services.Slice())
		n.Checks = ListOf(rec.Checks.Slice())
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
	reused, kept := 0, 0
	prev, _ := st.Snapshot().Node("n1")
	for round := range 300 {
		switch r.IntN(10) {
		case 0, 1:
			next(func(n *NodeRecord) { n.Services.At(r.IntN(n.Services.Len())).Port = r.IntN(1000) })
		case 7:
			next(func(n *NodeRecord) {
				s := &*n.Services.At(r.IntN(n.Services.Len()))
				s.Address = addrs[r.IntN(len(addrs))]
				s.Tags = [][]string{{"a"}, {"b"}, nil}[r.IntN(3)]
				if r.IntN(4) == 0 {
					s.Name = []string{"web", "db", "Web", "cache"}[r.IntN(4)]
				}
			})
		case 8:
			// A check moves to another service.
			next(func(n *NodeRecord) {
				c := &*n.Checks.At(r.IntN(n.Checks.Len()))
				if c.ServiceID != "" {
					c.ServiceID = n.Services.At(r.IntN(n.Services.Len())).ID
				}
			})
		case 9:
			// A second check for a service.
			next(func(n *NodeRecord) {
				id := n.Services.At(r.IntN(n.Services.Len())).ID
				n.Checks = n.Checks.Append(Check{CheckID: fmt.Sprintf("d%03d", round), ServiceID: id, Status: HealthWarning})
			})
		case 2:
			next(func(n *NodeRecord) {
				c := &*n.Checks.At(r.IntN(n.Checks.Len()))
				c.Status = []string{HealthPassing, HealthWarning, HealthCritical}[r.IntN(3)]
			})
		case 3:
			next(func(n *NodeRecord) {
				id := fmt.Sprintf("x%03d", round)
				n.Services = n.Services.Append(Service{ID: id, Name: "web", Port: 1, Weights: DefaultWeights})
				n.Checks = n.Checks.Append(Check{CheckID: "c" + id, ServiceID: id, Status: HealthCritical})
			})
		case 4:
			next(func(n *NodeRecord) {
				if n.Services.Len() < 2 {
					return
				}
				i := r.IntN(n.Services.Len())
				id := n.Services.At(i).ID
				n.Services = ListOf(slices.Delete(n.Services.Slice(), i, i+1))
				n.Checks = ListOf(slices.DeleteFunc(n.Checks.Slice(), func(c Check) bool { return c.ServiceID == id }))
			})
		case 5:
			next(func(n *NodeRecord) {
				if r.IntN(2) == 0 {
					n.Checks = n.Checks.Append(Check{CheckID: "node", Status: HealthWarning})
				} else {
					n.Checks = ListOf(slices.DeleteFunc(n.Checks.Slice(), func(c Check) bool { return c.CheckID == "node" }))
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
		if got.Instances.Len() != want.Instances.Len() || !slices.Equal(got.Checks, want.Checks) || !slices.Equal(checkValues(got.AllChecks()), checkValues(want.AllChecks())) || got.Health != want.Health || got.allSlow != want.allSlow {
			t.Fatalf("round %d: node entry differs from a fresh build", round)
		}
		for i, g := range got.Instances.Values() {
			w := want.Instances.Get(i)
			if g.Service.ID != w.Service.ID || g.hash != w.hash || g.Health != w.Health || !slices.Equal(checkValues(g.Checks()), checkValues(w.Checks())) ||
				!slices.Equal(g.OwnChecks(), w.OwnChecks()) || g.Node != got.head {
				t.Fatalf("round %d: instance %s differs from a fresh build", round, g.Service.ID)
			}
		}
		if h := got.head; h.Node.Name != got.Node.Name || h.Status != got.Status || h.Health != got.Health || !slices.Equal(h.Checks, got.Checks) {
			t.Fatalf("round %d: the instances' node entry differs from the node's", round)
		}
		// The service and address lists equal a fresh store's.
		fresh := NewStore()
		for _, o := range []*NodeRecord{other, other2, rec} {
			fresh.SetMember(o.Node.Name, o.Node.Address, MemberAlive)
			fresh.ApplyRecord(o)
		}
		fresh.SetMember("n1", "10.0.0.1", got.Status)
		fs := fresh.Snapshot()
		list := func(l List[*Instance]) string {
			var b []string
			for _, i := range l.Values() {
				b = append(b, fmt.Sprintf("%s/%s/%x/%s", i.Node.Node.Name, i.Service.ID, i.hash, i.Health))
			}
			return fmt.Sprint(b)
		}
		for _, name := range []string{"web", "db", "cache"} {
			a, _ := snap.Service(name)
			b, _ := fs.Service(name)
			if (a == nil) != (b == nil) || a != nil && (list(a.Instances) != list(b.Instances) || !slices.Equal(a.Tags, b.Tags) || !slices.Equal(a.tagCount, b.tagCount) || a.Name != b.Name) {
				t.Fatalf("round %d: service %s differs from a fresh build", round, name)
			}
		}
		for _, ip := range []string{"10.1.0.1", "10.1.0.2"} {
			if a, b := list(snap.InstancesByAddress(net.ParseIP(ip))), list(fs.InstancesByAddress(net.ParseIP(ip))); a != b {
				t.Fatalf("round %d: instances at %s differ from a fresh build:\n%s\n%s", round, ip, a, b)
			}
		}
		if size >= sparseNode && prev.Instances.Len() > 0 && got.Instances.Len() > 0 && got.Status == prev.Status && got.Instances.Get(0) == prev.Instances.Get(0) {
			kept++
		}
		for _, g := range got.Instances.Values() {
			for _, p := range prev.Instances.Values() {
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
	if size >= sparseNode && kept == 0 {
		t.Fatal("no entry ever kept its previous entry's instances")
	}
	t.Logf("%d instances lent, %d entries kept the previous one's", reused, kept)
}
