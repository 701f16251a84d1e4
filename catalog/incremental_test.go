package catalog

import (
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strings"
	"testing"
)

// reference derives what a snapshot must hold from the nodes it serves,
// from scratch: the services with their instances in node-name then ID
// order and their tag unions, and the address indexes.
type reference struct {
	services  map[string][]*Instance // lower-case name
	tags      map[string][]string
	nodeAddrs map[string][]*NodeEntry
	svcAddrs  map[string][]*Instance
}

func referenceOf(nodes []*NodeEntry) reference {
	r := reference{map[string][]*Instance{}, map[string][]string{}, map[string][]*NodeEntry{}, map[string][]*Instance{}}
	for _, n := range nodes {
		if ip := net.ParseIP(n.Node.Address); ip != nil {
			r.nodeAddrs[ip.String()] = append(r.nodeAddrs[ip.String()], n)
		}
		for _, inst := range n.Instances.Values() {
			k := strings.ToLower(inst.Service.Name)
			r.services[k] = append(r.services[k], inst)
			for _, t := range inst.Service.Tags {
				if !slices.Contains(r.tags[k], t) {
					r.tags[k] = append(r.tags[k], t)
				}
			}
			if ip := net.ParseIP(inst.Service.Address); ip != nil && inst.Service.Address != "" {
				r.svcAddrs[ip.String()] = append(r.svcAddrs[ip.String()], inst)
			}
		}
	}
	for _, t := range r.tags {
		sort.Strings(t)
	}
	return r
}

// TestIncrementalSnapshotMatchesReference applies random batches of
// record, member and removal changes and checks every snapshot against a
// derivation from scratch, and that each service's index moved exactly
// when its instances changed.
func TestIncrementalSnapshotMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	st := NewStore()
	names := []string{"n01", "n02", "N03", "n04", "n05", "n06", "n07", "n08", "n09", "n10", "n11", "n12"}
	svcs := []string{"web", "db", "Cache", "queue", "api"}
	tags := []string{"a", "b", "c", "d"}
	addrs := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "::1", ""}
	version := map[string]uint64{}
	randRecord := func(name string) *NodeRecord {
		version[name]++
		rec := &NodeRecord{Node: Node{Name: name, Address: addrs[r.IntN(4)]}, Version: version[name]}
		for i := 0; i < r.IntN(4); i++ {
			s := Service{Name: svcs[r.IntN(len(svcs))], ID: fmt.Sprintf("s%d", i), Port: r.IntN(3), Address: addrs[r.IntN(len(addrs))]}
			for _, tg := range tags {
				if r.IntN(3) == 0 {
					s.Tags = append(s.Tags, tg)
				}
			}
			s.Validate()
			rec.Services = rec.Services.Append(s)
			if r.IntN(2) == 0 {
				rec.Checks = rec.Checks.Append(Check{CheckID: "c" + s.ID, ServiceID: s.ID, Status: []string{HealthPassing, HealthCritical}[r.IntN(2)]})
			}
		}
		rec.Sort()
		return rec
	}
	prev := st.Snapshot()
	for round := 0; round < 400; round++ {
		st.Update(func(tx *Tx) {
			for i := 0; i < 1+r.IntN(4); i++ {
				name := names[r.IntN(len(names))]
				switch r.IntN(6) {
				case 0, 1, 2:
					tx.ApplyRecord(randRecord(name))
				case 3, 4:
					tx.SetMember(name, "10.1.1.1", MemberStatus(1+r.IntN(4)))
				case 5:
					tx.RemoveNode(name)
				}
			}
		})
		snap := st.Snapshot()
		nodes := snap.Nodes()
		if !sort.SliceIsSorted(nodes, func(i, j int) bool { return nodes[i].Node.Name < nodes[j].Node.Name }) {
			t.Fatalf("round %d: nodes not sorted", round)
		}
		if snap.NodeCount() != len(nodes) {
			t.Fatalf("round %d: NodeCount %d, %d nodes", round, snap.NodeCount(), len(nodes))
		}
		for _, n := range nodes {
			if got, ok := snap.Node(strings.ToUpper(n.Node.Name)); !ok || got != n {
				t.Fatalf("round %d: Node(%s) = %v", round, n.Node.Name, got)
			}
		}
		ref := referenceOf(nodes)
		if snap.ServiceCount() != len(ref.services) || len(snap.Services()) != len(ref.services) {
			t.Fatalf("round %d: %d services, want %d", round, snap.ServiceCount(), len(ref.services))
		}
		services := snap.Services()
		if !sort.SliceIsSorted(services, func(i, j int) bool { return services[i].Name < services[j].Name }) {
			t.Fatalf("round %d: services not sorted", round)
		}
		for k, want := range ref.services {
			se, ok := snap.Service(k)
			if !ok || !slices.Equal(se.Instances.Slice(), want) || !slices.Equal(se.Tags, ref.tags[k]) || se.Name != want[0].Service.Name {
				t.Fatalf("round %d: service %s differs", round, k)
			}
			old, had := prev.Service(k)
			same := had && old.Instances.Len() == se.Instances.Len()
			for i := 0; same && i < se.Instances.Len(); i++ {
				same = old.Instances.Get(i).hash == se.Instances.Get(i).hash
			}
			if same != (had && old.Index == se.Index) {
				t.Fatalf("round %d: service %s: index %d→%d, instances same %v", round, k, old.Index, se.Index, same)
			}
		}
		for a, want := range ref.nodeAddrs {
			if got := snap.NodesByAddress(net.ParseIP(a)); !slices.Equal(got, want) {
				t.Fatalf("round %d: nodes at %s differ", round, a)
			}
		}
		for a, want := range ref.svcAddrs {
			if got := snap.InstancesByAddress(net.ParseIP(a)); !slices.Equal(got.Slice(), want) {
				t.Fatalf("round %d: instances at %s: %d, want %d", round, a, got.Len(), len(want))
			}
		}
		if snap.nodeAddrs.Len() != len(ref.nodeAddrs) || snap.svcAddrs.Len() != len(ref.svcAddrs) {
			t.Fatalf("round %d: stale address keys", round)
		}
		if moved, differ := snap.ServicesIndex() != prev.ServicesIndex(), serviceSet(snap) != serviceSet(prev); prev.ServicesIndex() != 0 && moved != differ {
			t.Fatalf("round %d: services index moved %v, service set changed %v", round, moved, differ)
		}
		prev = snap
	}
}

func serviceSet(s *Snapshot) string {
	var b strings.Builder
	for _, se := range s.Services() {
		fmt.Fprintln(&b, se.Name, se.Tags)
	}
	return b.String()
}
