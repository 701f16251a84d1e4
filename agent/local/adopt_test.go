package local

import (
	"fmt"
	"slices"
	"testing"

	"github.com/chorusdns/chorus/catalog"
)

// addAgent puts an agent's node into store with the given member status.
func addAgent(t *testing.T, store *catalog.Store, name string, status catalog.MemberStatus) {
	t.Helper()
	addr := fmt.Sprintf("10.1.0.%d", len(name))
	if !store.ApplyRecord(&catalog.NodeRecord{Node: catalog.Node{Name: name, Address: addr, Datacenter: "dc1"}, Version: 1}) {
		t.Fatalf("record of %s not applied", name)
	}
	store.SetMember(name, addr, status)
}

// TestAdoptionRound: one round adopts a gone owner's node on the agent
// every survivor computes, and only there; an alive owner, a leaving
// agent, and an owner the member list does not name before the grace
// period keep the node where it is.
func TestAdoptionRound(t *testing.T) {
	for _, tc := range []struct {
		name      string
		owner     *catalog.MemberStatus // nil: never listed
		leaving   bool
		graceOver bool
		adopted   bool
	}{
		{name: "owner failed", owner: ptr(catalog.MemberFailed), adopted: true},
		{name: "owner left", owner: ptr(catalog.MemberLeft), adopted: true},
		{name: "owner alive", owner: ptr(catalog.MemberAlive)},
		{name: "owner leaving", owner: ptr(catalog.MemberLeaving)},
		{name: "this agent leaving", owner: ptr(catalog.MemberFailed), leaving: true},
		{name: "owner unlisted within the grace", graceOver: false},
		{name: "owner unlisted after the grace", graceOver: true, adopted: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := catalog.NewStore()
			owner := testExternals(t, "gone", "", store, nil)
			if err := owner.Register(dbRegistration()); err != nil {
				t.Fatal(err)
			}
			if tc.owner != nil {
				store.SetMember("gone", "10.1.0.99", *tc.owner)
			}
			survivors := []string{"a1", "a2", "a3"}
			var xs []*Externals
			for _, name := range survivors {
				addAgent(t, store, name, catalog.MemberAlive)
				xs = append(xs, testExternals(t, name, "", store, nil))
			}
			before := store.Record("db1").Version
			for _, x := range xs {
				x.round(store.Snapshot(), tc.leaving, tc.graceOver)
			}
			rec := store.Record("db1")
			want := adopter("db1", survivors)
			switch {
			case tc.adopted && (rec.Owner != want || rec.Version <= before):
				t.Fatalf("db1 owned by %q at %d, want adopted by %q above %d", rec.Owner, rec.Version, want, before)
			case !tc.adopted && (rec.Owner != "gone" || rec.Version != before):
				t.Fatalf("db1 owned by %q at %d, want still gone's at %d", rec.Owner, rec.Version, before)
			}
			for i, x := range xs {
				owns := slices.Contains(x.Owned(), "db1")
				if owns != (tc.adopted && survivors[i] == want) {
					t.Errorf("%s owns db1: %v", survivors[i], owns)
				}
				if n := x.Stats().Adoptions; n != 0 && !owns {
					t.Errorf("%s counted %d adoptions", survivors[i], n)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestAdopterRendezvous: every agent computes the same adopter whatever
// the order of its member list; losing an agent moves only the nodes it
// would have adopted; nodes spread evenly.
func TestAdopterRendezvous(t *testing.T) {
	alive := []string{"a1", "a2", "a3", "a4", "a5"}
	reversed := slices.Clone(alive)
	slices.Reverse(reversed)
	count := map[string]int{}
	for i := range 5000 {
		node := fmt.Sprintf("ext-%d", i)
		w := adopter(node, alive)
		if adopter(node, reversed) != w {
			t.Fatalf("%s: adopter depends on the list's order", node)
		}
		count[w]++
		without := slices.DeleteFunc(slices.Clone(alive), func(m string) bool { return m == "a3" })
		if w != "a3" && adopter(node, without) != w {
			t.Fatalf("%s: losing a3 moved a node a3 did not hold", node)
		}
	}
	for _, m := range alive {
		if c := count[m]; c < 800 || c > 1200 {
			t.Fatalf("uneven spread: %v", count)
		}
	}
	if adopter("x", nil) != "" {
		t.Fatal("an adopter among no agents")
	}
}
