package catalog

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
)

// A node record is signed in pieces, so that a change costs what changed:
// every service and every check is a piece whose leaf hash is SHA-256 of
// its kind and its canonical JSON; the pieces fall into pieceBuckets
// buckets by a hash of their kind and ID; a bucket's hash covers its
// leaves in ID order; the root covers the bucket hashes in order; and the
// signature covers the record's other fields (the header) and the root
// (SignedBytes). Changing one service re-encodes that service, rehashes
// its bucket (a few dozen leaves at 10,000 pieces) and the root (8 KiB),
// and signs a short message.
//
// Soundness: the tree is always computed by whoever checks a signature,
// from the pieces it holds (DecodeRecord from a whole record, ApplyDelta
// from the record it held and the delta's pieces), never taken from the
// wire; SHA-256's collision resistance then binds the signature to every
// piece.

// pieceBuckets is the number of buckets of a PieceTree.
const pieceBuckets = 256

// Piece kinds, the first byte hashed into a leaf.
const (
	PieceService byte = 's'
	PieceCheck   byte = 'c'
)

// treePrefix starts the bytes a root hash covers.
const treePrefix = "chorus piece tree v1\n"

// Leaf is one piece of a node record as its PieceTree holds it.
type Leaf struct {
	Kind byte // PieceService or PieceCheck
	ID   string
	Sum  [32]byte
}

// less orders leaves within a bucket: by kind, then ID.
func (a *Leaf) compare(b *Leaf) int {
	if a.Kind != b.Kind {
		return int(a.Kind) - int(b.Kind)
	}
	return strings.Compare(a.ID, b.ID)
}

// bucketOf is the bucket of a piece: FNV-1a (32 bits) of its kind and
// ID. It is part of the record format: signatures cover the buckets.
func bucketOf(kind byte, id string) int {
	h := fnv.New32a()
	h.Write([]byte{kind})
	h.Write([]byte(id))
	return int(h.Sum32() % pieceBuckets)
}

// PieceTree is the hash tree of a record's pieces (see above). A
// PieceTree is immutable: With and BuildTree return new trees that share
// unchanged buckets with the old one. It is safe for concurrent use.
//
// Only non-empty buckets are held (a record of 20 pieces fills at most 20
// of the 256): every replica keeps the tree of every record it holds, and
// a full array per record would cost 14 KiB each, 140 MB at 10,000 nodes.
// An empty bucket's hash is all zeros, as the root takes it.
type PieceTree struct {
	bs   []bucket // the non-empty buckets, by index
	root [32]byte
	n    int
}

// bucket is one non-empty bucket of a PieceTree.
type bucket struct {
	leaves []Leaf // sorted by kind, then ID
	// sum is the bucket's hash when it holds more than one leaf. A
	// bucket of one leaf (most buckets of most records: 20 pieces in 256
	// buckets) has SHA-256 of that leaf's sum as its hash, computed when
	// needed rather than kept for every record a catalog holds.
	sum *[32]byte
	idx int
}

// hash returns the bucket's hash, bucketSum of its leaves.
func (b *bucket) hash() [32]byte {
	if b.sum != nil {
		return *b.sum
	}
	if len(b.leaves) == 1 {
		return sha256.Sum256(b.leaves[0].Sum[:])
	}
	return bucketSum(b.leaves)
}

// setSum keeps the bucket's hash when it has more than one leaf.
func (b *bucket) setSum() {
	b.sum = nil
	if len(b.leaves) > 1 {
		s := bucketSum(b.leaves)
		b.sum = &s
	}
}

// sameBucket reports whether two buckets have the same hash: the same
// sequence of leaf sums.
func sameBucket(x, y *bucket) bool {
	if x.sum != nil && y.sum != nil {
		return *x.sum == *y.sum
	}
	return sameLeaves(x.leaves, y.leaves)
}

// Root returns the tree's root hash.
func (t *PieceTree) Root() [32]byte { return t.root }

// Leaf returns the tree's leaf of piece (kind, id), if it holds one.
func (t *PieceTree) Leaf(kind byte, id string) (Leaf, bool) { return t.leaf(kind, id) }

// leaf returns the tree's leaf of piece (kind, id).
func (t *PieceTree) leaf(kind byte, id string) (Leaf, bool) {
	j, ok := t.find(bucketOf(kind, id))
	if !ok {
		return Leaf{}, false
	}
	b := t.bs[j].leaves
	k := Leaf{Kind: kind, ID: id}
	if i, ok := slices.BinarySearchFunc(b, k, func(x, y Leaf) int { return x.compare(&y) }); ok {
		return b[i], true
	}
	return Leaf{}, false
}

// Len returns the number of pieces in the tree.
func (t *PieceTree) Len() int { return t.n }

func bucketSum(leaves []Leaf) [32]byte {
	if len(leaves) == 0 {
		return [32]byte{}
	}
	h := sha256.New()
	for i := range leaves {
		h.Write(leaves[i].Sum[:])
	}
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// zeroSums is what the root covers for a run of empty buckets.
var zeroSums [pieceBuckets * 32]byte

// sumRoot hashes the prefix and all pieceBuckets bucket hashes in order,
// zeros for the empty ones.
func (t *PieceTree) sumRoot() {
	h := sha256.New()
	h.Write([]byte(treePrefix))
	next := 0
	for i := range t.bs {
		h.Write(zeroSums[:(t.bs[i].idx-next)*32])
		s := t.bs[i].hash()
		h.Write(s[:])
		next = t.bs[i].idx + 1
	}
	h.Write(zeroSums[:(pieceBuckets-next)*32])
	h.Sum(t.root[:0])
}

// find returns the position of bucket idx in t.bs, or where it would go.
func (t *PieceTree) find(idx int) (int, bool) {
	return slices.BinarySearchFunc(t.bs, idx, func(b bucket, idx int) int { return b.idx - idx })
}

// BuildTree returns the tree of leaves, which must be every piece of a
// record in canonical order: its checks, then its services, each sorted
// by ID (the order of NodeRecord.Sort). Buckets whose leaves equal those
// of prev (which may be nil) keep prev's hash, so a rebuild costs one
// pass over the leaves plus the hashing of the buckets that changed.
func BuildTree(prev *PieceTree, leaves []Leaf) *PieceTree {
	t := &PieceTree{n: len(leaves)}
	var counts [pieceBuckets]int32
	used := 0
	for i := range leaves {
		b := bucketOf(leaves[i].Kind, leaves[i].ID)
		if counts[b] == 0 {
			used++
		}
		counts[b]++
	}
	// One backing array for every bucket's leaves.
	all := make([]Leaf, len(leaves))
	t.bs = make([]bucket, 0, used)
	var at [pieceBuckets]int32 // position of bucket b in t.bs
	off := 0
	for b := range counts {
		if counts[b] == 0 {
			continue
		}
		at[b] = int32(len(t.bs))
		t.bs = append(t.bs, bucket{idx: b, leaves: all[off : off : off+int(counts[b])]})
		off += int(counts[b])
	}
	for i := range leaves {
		bk := &t.bs[at[bucketOf(leaves[i].Kind, leaves[i].ID)]]
		bk.leaves = append(bk.leaves, leaves[i])
	}
	for i := range t.bs {
		bk := &t.bs[i]
		if prev != nil {
			if j, ok := prev.find(bk.idx); ok && sameLeaves(prev.bs[j].leaves, bk.leaves) {
				bk.sum = prev.bs[j].sum
				continue
			}
		}
		bk.setSum()
	}
	t.sumRoot()
	return t
}

func sameLeaves(a, b []Leaf) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Sum != b[i].Sum {
			return false
		}
	}
	return true
}

// With returns the tree with the leaves in set added or replaced (by kind
// and ID) and the pieces in del (kind and ID; Sum ignored) removed. Only
// the buckets they fall in are copied and rehashed.
func (t *PieceTree) With(set, del []Leaf) *PieceTree {
	n := &PieceTree{bs: slices.Clone(t.bs), n: t.n}
	var touched [pieceBuckets]bool
	// own returns bucket idx of n, its leaves copied on first touch; a
	// bucket that does not exist is made (empty) when create is set.
	own := func(idx int, create bool) *bucket {
		j, ok := n.find(idx)
		if !ok {
			if !create {
				return nil
			}
			n.bs = slices.Insert(n.bs, j, bucket{idx: idx})
		}
		if !touched[idx] {
			touched[idx] = true
			n.bs[j].leaves = slices.Clone(n.bs[j].leaves)
		}
		return &n.bs[j]
	}
	cmp := func(x, y Leaf) int { return x.compare(&y) }
	for i := range del {
		bk := own(bucketOf(del[i].Kind, del[i].ID), false)
		if bk == nil {
			continue
		}
		if j, ok := slices.BinarySearchFunc(bk.leaves, del[i], cmp); ok {
			bk.leaves = slices.Delete(bk.leaves, j, j+1)
			n.n--
		}
	}
	for i := range set {
		bk := own(bucketOf(set[i].Kind, set[i].ID), true)
		j, ok := slices.BinarySearchFunc(bk.leaves, set[i], cmp)
		if ok {
			bk.leaves[j] = set[i]
		} else {
			bk.leaves = slices.Insert(bk.leaves, j, set[i])
			n.n++
		}
	}
	n.bs = slices.DeleteFunc(n.bs, func(b bucket) bool { return len(b.leaves) == 0 })
	for i := range n.bs {
		if touched[n.bs[i].idx] {
			n.bs[i].setSum()
		}
	}
	n.sumRoot()
	return n
}

// DiffTrees returns the pieces of b that a lacks or holds otherwise
// (set) and the pieces of a that b lacks (del). It compares bucket hashes
// first, so its cost is that of the buckets that differ.
func DiffTrees(a, b *PieceTree) (set, del []Leaf) {
	i, j := 0, 0
	for i < len(a.bs) || j < len(b.bs) {
		var x, y []Leaf
		switch {
		case j == len(b.bs) || (i < len(a.bs) && a.bs[i].idx < b.bs[j].idx):
			x = a.bs[i].leaves
			i++
		case i == len(a.bs) || b.bs[j].idx < a.bs[i].idx:
			y = b.bs[j].leaves
			j++
		default:
			same := sameBucket(&a.bs[i], &b.bs[j])
			x, y = a.bs[i].leaves, b.bs[j].leaves
			i, j = i+1, j+1
			if same {
				continue
			}
		}
		for len(x) > 0 || len(y) > 0 {
			switch {
			case len(y) == 0:
				del = append(del, x[0])
				x = x[1:]
			case len(x) == 0:
				set = append(set, y[0])
				y = y[1:]
			default:
				switch c := x[0].compare(&y[0]); {
				case c < 0:
					del = append(del, x[0])
					x = x[1:]
				case c > 0:
					set = append(set, y[0])
					y = y[1:]
				default:
					if x[0].Sum != y[0].Sum {
						set = append(set, y[0])
					}
					x, y = x[1:], y[1:]
				}
			}
		}
	}
	return set, del
}

// canonicalJSON returns the JSON of v as a receiver re-encodes it after
// decoding: a string with invalid UTF-8 is encoded with escaped U+FFFD,
// which a receiver decodes and encodes unescaped, so such a value is
// taken through one round trip.
func canonicalJSON[T any](v *T) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if bytes.Contains(raw, []byte(`\ufffd`)) {
		var d T
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, err
		}
		if raw, err = json.Marshal(&d); err != nil {
			return nil, err
		}
	}
	return raw, nil
}

// leafEncoder encodes and hashes pieces with a buffer and a digest it
// keeps: a decoded record's tree hashes every piece, and an encoding and
// a digest allocated per piece would be garbage of the sizes the records
// themselves are kept in.
type leafEncoder struct {
	buf  bytes.Buffer
	enc  *json.Encoder
	h    hash.Hash
	kind [1]byte
}

// maxPooledLeafBuf is the largest buffer a leafEncoder goes back to the
// pool with.
const maxPooledLeafBuf = 64 << 10

var leafEncoders = sync.Pool{New: func() any {
	e := &leafEncoder{h: sha256.New()}
	e.enc = json.NewEncoder(&e.buf)
	return e
}}

// pieceLeaf returns the leaf of piece v (kind, id) and the length of its
// canonical JSON: SHA-256 of the kind and canonicalJSON(v).
func pieceLeaf[T any](kind byte, id string, v *T) (Leaf, int, error) {
	e := leafEncoders.Get().(*leafEncoder)
	defer func() {
		if e.buf.Cap() <= maxPooledLeafBuf {
			leafEncoders.Put(e)
		}
	}()
	e.buf.Reset()
	// Encode writes what Marshal returns (HTML escaped), then a newline.
	if err := e.enc.Encode(v); err != nil {
		return Leaf{}, 0, err
	}
	raw := bytes.TrimSuffix(e.buf.Bytes(), []byte{'\n'})
	if bytes.Contains(raw, []byte(`\ufffd`)) {
		c, err := canonicalJSON(v)
		if err != nil {
			return Leaf{}, 0, err
		}
		raw = c
	}
	e.h.Reset()
	e.kind[0] = kind
	e.h.Write(e.kind[:])
	e.h.Write(raw)
	l := Leaf{Kind: kind, ID: id}
	e.h.Sum(l.Sum[:0])
	return l, len(raw), nil
}

// ServiceLeaf returns s's leaf and the length of its JSON (what it adds
// to a record's encoding, before compression).
func ServiceLeaf(s *Service) (Leaf, int, error) {
	l, n, err := pieceLeaf(PieceService, s.ID, s)
	if err != nil {
		return Leaf{}, 0, fmt.Errorf("encode service %q: %w", s.ID, err)
	}
	return l, n, nil
}

// CheckLeaf returns c's leaf and the length of its JSON.
func CheckLeaf(c *Check) (Leaf, int, error) {
	l, n, err := pieceLeaf(PieceCheck, c.CheckID, c)
	if err != nil {
		return Leaf{}, 0, fmt.Errorf("encode check %q: %w", c.CheckID, err)
	}
	return l, n, nil
}

// recordLeaves returns the leaves of every piece of r, in the order
// BuildTree takes (r must be sorted).
func recordLeaves(r *NodeRecord) ([]Leaf, error) {
	leaves := make([]Leaf, 0, r.Services.Len()+r.Checks.Len())
	for _, c := range r.Checks.All() {
		l, _, err := CheckLeaf(c)
		if err != nil {
			return nil, err
		}
		leaves = append(leaves, l)
	}
	for _, s := range r.Services.All() {
		l, _, err := ServiceLeaf(s)
		if err != nil {
			return nil, err
		}
		leaves = append(leaves, l)
	}
	return leaves, nil
}

// computeTree returns the tree of r's pieces (r must be sorted).
func computeTree(r *NodeRecord) (*PieceTree, error) {
	leaves, err := recordLeaves(r)
	if err != nil {
		return nil, err
	}
	return BuildTree(nil, leaves), nil
}
