package replication

import (
	"hash/fnv"

	"github.com/chorusdns/chorus/catalog"
)

// The version tree: anti-entropy compares the node → version vector of
// two agents through a fixed hash tree instead of the vector itself.
//
// Every entry (node name, version) lands in one of treeLeaves leaves by the
// top bits of its name's hash. A leaf's hash is the sum (mod 2^64) of its
// entries' hashes, and every inner node's hash is the sum of its
// treeFanout children, so the root is the sum of every entry and two
// agents' roots are equal exactly when their vectors are (but for a 2^-64
// chance). Levels: 0 (the root), 1 (16), 2 (256), 3 (4,096 leaves).
// Finding d differing entries costs at most treeDepth rounds of 16 hashes
// per differing node, then the entries of the differing leaves: about
// d × (3 × 128 + 30) bytes, whatever the size of the vector.
const (
	treeFanout = 16
	treeDepth  = 3 // levels below the root
	treeLeaves = 1 << (4 * treeDepth)
	leafShift  = 64 - 4*treeDepth
)

// levelSize is the number of tree nodes at level l (0 ≤ l ≤ treeDepth).
func levelSize(l int) int { return 1 << (4 * l) }

// versionTree is the hash tree of one catalog snapshot's version vector.
// It is immutable once built and shared by readers.
type versionTree struct {
	index uint64 // the snapshot's index
	// sums[l][i] is the hash of node i of level l.
	sums [treeDepth + 1][]uint64
	// entries sorted by leaf; leaf i's are entries[start[i]:start[i+1]].
	entries []vecEntry
	start   []int32
}

// vecEntry is one node's version.
type vecEntry struct {
	Name    string
	Version uint64
}

// nameHash spreads a node name over 64 bits; its top bits pick the leaf.
func nameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return catalog.Mix64(h.Sum64())
}

// leafOf is the leaf a node name belongs to.
func leafOf(name string) int { return int(nameHash(name) >> leafShift) }

// entryHash is the hash of one (name, version) entry.
func entryHash(nh, version uint64) uint64 {
	return catalog.Mix64(nh ^ catalog.Mix64(version+0x9e3779b97f4a7c15))
}

// buildTree builds the tree of every node in snap with a record (version
// above 0). It costs O(nodes) and about 35 KB for the sums.
func buildTree(snap *catalog.Snapshot) *versionTree {
	t := &versionTree{index: snap.Index}
	for l := range t.sums {
		t.sums[l] = make([]uint64, levelSize(l))
	}
	type placed struct {
		e    vecEntry
		leaf int32
	}
	all := make([]placed, 0, snap.NodeCount())
	counts := make([]int32, treeLeaves+1)
	leaves := t.sums[treeDepth]
	add := func(name string, version uint64) {
		nh := nameHash(name)
		leaf := int32(nh >> leafShift)
		leaves[leaf] += entryHash(nh, version)
		counts[leaf+1]++
		all = append(all, placed{vecEntry{name, version}, leaf})
	}
	// External nodes' tombstones are compared like records
	// (catalog/external.go; snapshots serve nothing for them), merged in
	// name order.
	tombs := snap.Tombstones()
	for n := range snap.AllNodes() {
		if n.Version == 0 {
			continue
		}
		for len(tombs) > 0 && tombs[0].Node < n.Node.Name {
			add(tombs[0].Node, tombs[0].Version)
			tombs = tombs[1:]
		}
		add(n.Node.Name, n.Version)
	}
	for _, tb := range tombs {
		add(tb.Node, tb.Version)
	}
	for l := treeDepth - 1; l >= 0; l-- {
		up, down := t.sums[l], t.sums[l+1]
		for i := range down {
			up[i/treeFanout] += down[i]
		}
	}
	for i := 1; i <= treeLeaves; i++ {
		counts[i] += counts[i-1]
	}
	t.start = counts
	t.entries = make([]vecEntry, len(all))
	next := make([]int32, treeLeaves)
	copy(next, counts[:treeLeaves])
	for _, p := range all { // stable: each leaf's entries stay sorted by name
		t.entries[next[p.leaf]] = p.e
		next[p.leaf]++
	}
	return t
}

func (t *versionTree) root() uint64 { return t.sums[0][0] }

// children returns the hashes of the treeFanout children of node i of
// level l (l < treeDepth).
func (t *versionTree) children(l, i int) []uint64 {
	return t.sums[l+1][i*treeFanout : (i+1)*treeFanout]
}

// leafEntries returns the entries of the given leaves.
func (t *versionTree) leafEntries(leaves []uint16) []vecEntry {
	var out []vecEntry
	for _, l := range leaves {
		out = append(out, t.entries[t.start[l]:t.start[l+1]]...)
	}
	return out
}

// vector returns the whole version vector (for peers of the previous
// release, which exchange vectors).
func (t *versionTree) vector() map[string]uint64 {
	m := make(map[string]uint64, len(t.entries))
	for _, e := range t.entries {
		m[e.Name] = e.Version
	}
	return m
}

// tree returns the version tree of the current catalog snapshot, built on
// first use per snapshot.
func (s *Syncer) tree() *versionTree {
	snap := s.store.Snapshot()
	if t := s.vtree.Load(); t != nil && t.index == snap.Index {
		return t
	}
	t := buildTree(snap)
	s.vtree.Store(t)
	return t
}
