package catalog

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// denseRoot computes a root by the definition: the prefix, then the hash
// of each of the pieceBuckets buckets in order (zeros when empty), each
// bucket the SHA-256 of its leaves' sums in (kind, ID) order.
func denseRoot(leaves []Leaf) [32]byte {
	var buckets [pieceBuckets][]Leaf
	for _, l := range leaves {
		b := bucketOf(l.Kind, l.ID)
		buckets[b] = append(buckets[b], l)
	}
	h := sha256.New()
	h.Write([]byte(treePrefix))
	for _, b := range buckets {
		slices.SortFunc(b, func(x, y Leaf) int { return x.compare(&y) })
		s := bucketSum(b)
		h.Write(s[:])
	}
	var r [32]byte
	h.Sum(r[:0])
	return r
}

func randomLeaf(r *rand.Rand, ids int) Leaf {
	kind := PieceService
	if r.IntN(2) == 0 {
		kind = PieceCheck
	}
	l := Leaf{Kind: kind, ID: fmt.Sprintf("id-%d", r.IntN(ids))}
	l.Sum[0], l.Sum[1] = byte(r.Uint32()), byte(r.Uint32())
	return l
}

// canonical sorts leaves as BuildTree wants them: checks, then services,
// each by ID, one leaf per (kind, ID).
func canonical(m map[[2]string]Leaf) []Leaf {
	out := make([]Leaf, 0, len(m))
	for _, l := range m {
		out = append(out, l)
	}
	slices.SortFunc(out, func(x, y Leaf) int {
		if x.Kind != y.Kind {
			return int(x.Kind) - int(y.Kind) // 'c' < 's': checks first
		}
		return x.compare(&y)
	})
	return out
}

// TestPieceTreeIncremental: trees changed with With, and rebuilt with
// BuildTree from a previous tree, always equal a tree built from scratch
// and the root the definition gives; DiffTrees finds exactly the pieces
// that differ; Leaf finds every piece.
func TestPieceTreeIncremental(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, ids := range []int{1, 5, 40, 600} {
		held := map[[2]string]Leaf{}
		tree := BuildTree(nil, nil)
		if tree.Root() != denseRoot(nil) || tree.Len() != 0 {
			t.Fatalf("empty tree: root or length wrong")
		}
		for step := 0; step < 300; step++ {
			var set, del []Leaf
			for range 1 + r.IntN(4) {
				l := randomLeaf(r, ids)
				key := [2]string{string(l.Kind), l.ID}
				if r.IntN(3) == 0 {
					// With applies del before set: a piece deleted after
					// being set in the same call is not set.
					set = slices.DeleteFunc(set, func(d Leaf) bool { return d.Kind == l.Kind && d.ID == l.ID })
					del = append(del, l)
					delete(held, key)
				} else {
					// A piece set and deleted in one call is set (With
					// applies del first): keep the model in step.
					del = slices.DeleteFunc(del, func(d Leaf) bool { return d.Kind == l.Kind && d.ID == l.ID })
					set = append(set, l)
					held[key] = l
				}
			}
			// Re-set what the model holds last, so the model is exact.
			for i := range set {
				set[i] = held[[2]string{string(set[i].Kind), set[i].ID}]
			}
			prev := tree
			tree = prev.With(set, del)
			want := canonical(held)
			fresh := BuildTree(nil, want)
			rebuilt := BuildTree(prev, want)
			if tree.Root() != fresh.Root() || rebuilt.Root() != fresh.Root() || fresh.Root() != denseRoot(want) {
				t.Fatalf("ids %d step %d: roots differ (With %x, rebuilt %x, fresh %x)", ids, step, tree.Root(), rebuilt.Root(), fresh.Root())
			}
			if tree.Len() != len(want) {
				t.Fatalf("ids %d step %d: Len %d, want %d", ids, step, tree.Len(), len(want))
			}
			for _, l := range want {
				if got, ok := tree.Leaf(l.Kind, l.ID); !ok || got != l {
					t.Fatalf("ids %d step %d: Leaf(%c, %s) = %v %v", ids, step, l.Kind, l.ID, got, ok)
				}
			}
			s, d := DiffTrees(prev, tree)
			old := map[[2]string]Leaf{}
			for _, l := range prevLeaves(prev) {
				old[[2]string{string(l.Kind), l.ID}] = l
			}
			wantSet, wantDel := 0, 0
			for k, l := range held {
				if o, ok := old[k]; !ok || o != l {
					wantSet++
				}
			}
			for k := range old {
				if _, ok := held[k]; !ok {
					wantDel++
				}
			}
			if len(s) != wantSet || len(d) != wantDel {
				t.Fatalf("ids %d step %d: DiffTrees set %d del %d, want %d %d", ids, step, len(s), len(d), wantSet, wantDel)
			}
		}
	}
}

func prevLeaves(t *PieceTree) []Leaf {
	var out []Leaf
	for _, b := range t.bs {
		out = append(out, b.leaves...)
	}
	return out
}

// TestRendezvousScore: the score is FNV-1a of key, a zero byte and member,
// mixed with Mix64, so every agent computes the same (the values are
// pinned: agents of different builds must agree); keys are spread evenly
// over members.
func TestRendezvousScore(t *testing.T) {
	for _, tc := range []struct {
		key, member string
		want        uint64
	}{
		{"db.example", "agent-1", 0xb4e5fe22645d74ca},
		{"", "", 0x25fc6dd36ce04b20},
		{"dc1", "node-42", 0x279b7682f3ee31a9},
	} {
		if got := RendezvousScore(tc.key, tc.member); got != tc.want {
			t.Errorf("RendezvousScore(%q, %q) = %#x, want %#x", tc.key, tc.member, got, tc.want)
		}
	}
	members := []string{"a", "b", "c", "d"}
	wins := map[string]int{}
	for i := range 4000 {
		key := fmt.Sprintf("node-%d", i)
		best, bestScore := "", uint64(0)
		for _, m := range members {
			if s := RendezvousScore(key, m); best == "" || s > bestScore {
				best, bestScore = m, s
			}
		}
		wins[best]++
	}
	for _, m := range members {
		if wins[m] < 800 || wins[m] > 1200 {
			t.Errorf("member %s wins %d of 4000 keys, want about 1000", m, wins[m])
		}
	}
}

// TestBucketOfPinned: a piece's bucket is part of the record format (the
// signature covers the buckets' hashes), so it must not change between
// builds.
func TestBucketOfPinned(t *testing.T) {
	for _, tc := range []struct {
		kind byte
		id   string
		want int
	}{{0, "web", 95}, {1, "service:web", 63}, {1, "", 140}} {
		if got := bucketOf(tc.kind, tc.id); got != tc.want {
			t.Errorf("bucketOf(%d, %q) = %d, want %d", tc.kind, tc.id, got, tc.want)
		}
	}
}
