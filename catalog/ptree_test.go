package catalog

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// TestPtreeMatchesMap applies random batches of sets and deletes and
// checks after each batch that the new version holds exactly what a map
// holds, in order, and that every earlier version is unchanged.
func TestPtreeMatchesMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	type version struct {
		tree ptree[int]
		want map[string]int
	}
	var versions []version
	var cur ptree[int]
	want := map[string]int{}
	for round := 0; round < 300; round++ {
		ed := new(edit)
		for op := 0; op < 1+r.IntN(40); op++ {
			k := "k" + strconv.Itoa(r.IntN(3000))
			if r.IntN(3) == 0 {
				cur.delete(ed, k)
				delete(want, k)
			} else {
				v := r.Int()
				cur.set(ed, k, v)
				want[k] = v
			}
		}
		versions = append(versions, version{cur, clone(want)})
	}
	for i, v := range versions {
		checkTree(t, i, v.tree, v.want)
	}
	// Delete everything: the tree ends empty.
	ed := new(edit)
	for k := range want {
		cur.delete(ed, k)
	}
	if cur.Len() != 0 || cur.root != nil {
		t.Fatalf("after deleting all: len %d", cur.Len())
	}
	checkTree(t, len(versions)-1, versions[len(versions)-1].tree, versions[len(versions)-1].want)
}

func clone(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func checkTree(t *testing.T, i int, tr ptree[int], want map[string]int) {
	t.Helper()
	if tr.Len() != len(want) {
		t.Fatalf("version %d: len %d, want %d", i, tr.Len(), len(want))
	}
	keys := make([]string, 0, len(want))
	for k, v := range want {
		keys = append(keys, k)
		if got, ok := tr.get(k); !ok || got != v {
			t.Fatalf("version %d: get(%s) = %d %v, want %d", i, k, got, ok, v)
		}
	}
	slices.Sort(keys)
	var got []string
	tr.ascend(func(k string, _ int) bool { got = append(got, k); return true })
	if !slices.Equal(got, keys) {
		t.Fatalf("version %d: keys out of order or missing", i)
	}
	if _, ok := tr.get("absent"); ok {
		t.Fatalf("version %d: absent key found", i)
	}
}
