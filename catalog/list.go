package catalog

import (
	"bytes"
	"encoding/json"
	"iter"
	"slices"
	"sort"
	"strings"
)

// listChunk is the length of a List's chunks when it is built from a
// slice (ListOf) or regrouped: a change copies the chunks it touches (a
// chunk of services is about 12 KB) and the list of chunks (24 bytes a
// chunk), so that a new version of a node record with 10,000 services
// costs about 16 KB instead of a copy of every service (1.8 MB).
const listChunk = 64

// List is an immutable sequence of a node record's services or checks,
// or of a snapshot's instances, kept in chunks that versions share:
// ApplyFunc returns a new List that holds new copies of the chunks it
// changed and the previous List's other chunks. A List of up to
// listChunk elements is one chunk held inline (no allocation beyond its
// elements). The zero List is empty. Its JSON form is an array, as a
// slice's.
//
// Nothing may modify an element of a List that another goroutine can
// see; the pointers At and All return are for reading (a decoder fills a
// List it has not yet handed on).
type List[T any] struct {
	first []T   // chunk 0; empty only when the List is
	more  [][]T // chunks 1…; nil for a List of one chunk
	ends  []int // ends[k]: the number of elements in chunks 0…k+1 (with more)
}

// Every chunk is non-empty, with capacity equal to its length.

// ListOf returns a List of the elements of s, taking s over: the caller
// must not use s afterwards.
func ListOf[T any](s []T) List[T] {
	if len(s) <= listChunk {
		return List[T]{first: s[:len(s):len(s)]}
	}
	chunks := make([][]T, 0, (len(s)+listChunk-1)/listChunk)
	for i := 0; i < len(s); i += listChunk {
		j := min(i+listChunk, len(s))
		chunks = append(chunks, s[i:j:j])
	}
	return fromChunks(chunks)
}

// fromChunks returns the List of chunks (each non-empty, capacity equal
// to length), sharing the chunks array.
func fromChunks[T any](chunks [][]T) List[T] {
	switch len(chunks) {
	case 0:
		return List[T]{}
	case 1:
		return List[T]{first: chunks[0]}
	}
	l := List[T]{first: chunks[0], more: chunks[1:], ends: make([]int, len(chunks)-1)}
	n := len(chunks[0])
	for k, c := range l.more {
		n += len(c)
		l.ends[k] = n
	}
	return l
}

// numChunks returns the number of chunks.
func (l List[T]) numChunks() int {
	if len(l.first) == 0 {
		return 0
	}
	return 1 + len(l.more)
}

// chunk returns chunk k.
func (l List[T]) chunk(k int) []T {
	if k == 0 {
		return l.first
	}
	return l.more[k-1]
}

// start returns the index of chunk k's first element.
func (l List[T]) start(k int) int {
	switch k {
	case 0:
		return 0
	case 1:
		return len(l.first)
	}
	return l.ends[k-2]
}

// Len returns the number of elements.
func (l List[T]) Len() int {
	if len(l.ends) == 0 {
		return len(l.first)
	}
	return l.ends[len(l.ends)-1]
}

// IsZero reports whether l is empty (for encoding/json's omitzero).
func (l List[T]) IsZero() bool { return l.Len() == 0 }

// locate returns the chunk holding element i and i's offset in it.
func (l List[T]) locate(i int) (k, off int) {
	if i < len(l.first) {
		return 0, i
	}
	k = 1 + sort.Search(len(l.ends), func(k int) bool { return l.ends[k] > i })
	return k, i - l.start(k)
}

// At returns element i, which must be in [0, Len).
func (l List[T]) At(i int) *T {
	if i < 0 || i >= l.Len() {
		panic("catalog: List index out of range")
	}
	k, off := l.locate(i)
	return &l.chunk(k)[off]
}

// All yields every element with its index, in order.
func (l List[T]) All() iter.Seq2[int, *T] {
	return func(yield func(int, *T) bool) {
		for j := range l.first {
			if !yield(j, &l.first[j]) {
				return
			}
		}
		i := len(l.first)
		for _, c := range l.more {
			for j := range c {
				if !yield(i, &c[j]) {
					return
				}
				i++
			}
		}
	}
}

// Values yields every element (a copy) with its index, in order: for
// Lists of pointers.
func (l List[T]) Values() iter.Seq2[int, T] {
	return func(yield func(int, T) bool) {
		for j, x := range l.first {
			if !yield(j, x) {
				return
			}
		}
		i := len(l.first)
		for _, c := range l.more {
			for _, x := range c {
				if !yield(i, x) {
					return
				}
				i++
			}
		}
	}
}

// Get returns a copy of element i, which must be in [0, Len).
func (l List[T]) Get(i int) T { return *l.At(i) }

// Slice returns a new slice holding the elements.
func (l List[T]) Slice() []T {
	out := make([]T, 0, l.Len())
	out = append(out, l.first...)
	for _, c := range l.more {
		out = append(out, c...)
	}
	return out
}

// View returns elements [i, j): a view of l when they lie in one chunk
// (it must not be modified), else a new slice.
func (l List[T]) View(i, j int) []T {
	if i >= j {
		return nil
	}
	k, off := l.locate(i)
	if c := l.chunk(k); off+(j-i) <= len(c) {
		return c[off : off+(j-i) : off+(j-i)]
	}
	out := make([]T, 0, j-i)
	for x := i; x < j; x++ {
		out = append(out, *l.At(x))
	}
	return out
}

// Search returns the index of the first element for which cmp returns
// ≥ 0 and whether cmp returns 0 there, l being sorted so that cmp is
// negative up to some index and not after it (as slices.BinarySearchFunc,
// with cmp(e) = compare(key(e), target)).
func (l List[T]) Search(cmp func(*T) int) (int, bool) {
	nc := l.numChunks()
	k := sort.Search(nc, func(k int) bool {
		c := l.chunk(k)
		return cmp(&c[len(c)-1]) >= 0
	})
	if k == nc {
		return l.Len(), false
	}
	c := l.chunk(k)
	off := sort.Search(len(c), func(j int) bool { return cmp(&c[j]) >= 0 })
	return l.start(k) + off, cmp(&c[off]) == 0
}

// Append returns l with vs added at its end, leaving l as it was. The
// order is the caller's to keep (NodeRecord.Sort restores the canonical
// one).
func (l List[T]) Append(vs ...T) List[T] {
	if len(vs) == 0 {
		return l
	}
	chunks := make([][]T, 0, l.numChunks()+1)
	for k := range l.numChunks() {
		chunks = append(chunks, l.chunk(k))
	}
	if k := len(chunks) - 1; k >= 0 && len(chunks[k]) < listChunk {
		last := chunks[k]
		n := min(listChunk-len(last), len(vs))
		c := make([]T, 0, len(last)+n)
		chunks[k] = append(append(c, last...), vs[:n]...)
		vs = vs[n:]
	}
	for i := 0; i < len(vs); i += listChunk {
		j := min(i+listChunk, len(vs))
		chunks = append(chunks, slices.Clone(vs[i:j]))
	}
	return fromChunks(chunks)
}

// Edit is one change to a sorted List: Value put in (replacing the
// element the edit names, or inserted in order), or the element it names
// removed when Delete is set. Apply names elements by ID; ApplyFunc by
// its comparison, which may read Value instead (Value then carries the
// key of an element to remove).
type Edit[T any] struct {
	ID     string
	Value  T
	Delete bool
}

// Apply returns l, sorted by key with unique keys, with edits (sorted by
// ID, unique) made, leaving l as it was: ApplyFunc with edits matched to
// elements by key.
func (l List[T]) Apply(key func(*T) string, edits []Edit[T]) List[T] {
	return l.ApplyFunc(func(x *T, e *Edit[T]) int { return strings.Compare(key(x), e.ID) }, edits)
}

// ApplyFunc returns l with edits made, leaving l as it was. cmp orders an
// element against an edit's target (negative: the element comes first;
// zero: the edit replaces or removes it); l is sorted by it and so are
// edits, each naming a different target. An edit's ID is used only
// through cmp.
//
// It copies only the chunks the edits fall in and the list of chunks:
// O(edits · chunk + chunks). A chunk grown past twice the usual length
// is split, an emptied one dropped, and when small chunks have made the
// list of chunks twice as long as it needs to be, the elements are
// regrouped (a copy of all, amortised over the edits that fragmented
// them).
func (l List[T]) ApplyFunc(cmp func(x *T, e *Edit[T]) int, edits []Edit[T]) List[T] {
	if len(edits) == 0 {
		return l
	}
	nc := l.numChunks()
	if nc <= 1 {
		// One chunk (or none): merge into a new one, split when large.
		merged := mergeChunk(l.first, cmp, edits)
		if len(merged) <= 2*listChunk {
			return List[T]{first: merged}
		}
		return ListOf(merged)
	}
	chunks := make([][]T, 0, nc+1)
	e := 0
	for k := range nc {
		c := l.chunk(k)
		// The edits that fall in chunk k: targets up to its last
		// element (all that remain, for the last chunk).
		hi := e
		last := &c[len(c)-1]
		for hi < len(edits) && (k == nc-1 || cmp(last, &edits[hi]) >= 0) {
			hi++
		}
		if hi == e {
			chunks = append(chunks, c)
			continue
		}
		merged := mergeChunk(c, cmp, edits[e:hi])
		e = hi
		for len(merged) > 2*listChunk {
			chunks = append(chunks, merged[:listChunk:listChunk])
			merged = merged[listChunk:]
		}
		if len(merged) > 0 {
			chunks = append(chunks, merged)
		}
	}
	out := fromChunks(chunks)
	if n := out.Len(); len(chunks) > 2*(n/listChunk)+2 {
		return ListOf(out.Slice())
	}
	return out
}

// mergeChunk returns a new chunk: c (sorted by cmp) with edits made.
func mergeChunk[T any](c []T, cmp func(x *T, e *Edit[T]) int, edits []Edit[T]) []T {
	out := make([]T, 0, len(c)+len(edits))
	i := 0
	for k := range edits {
		ed := &edits[k]
		for i < len(c) && cmp(&c[i], ed) < 0 {
			out = append(out, c[i])
			i++
		}
		if i < len(c) && cmp(&c[i], ed) == 0 {
			i++
		}
		if !ed.Delete {
			out = append(out, ed.Value)
		}
	}
	out = append(out, c[i:]...)
	return slices.Clip(out)
}

// SortFunc returns l ordered by cmp: l itself when it is in order
// already (one pass), else a new List.
func (l List[T]) SortFunc(cmp func(a, b *T) int) List[T] {
	sorted := true
	var prev *T
	for _, x := range l.All() {
		if prev != nil && cmp(prev, x) > 0 {
			sorted = false
			break
		}
		prev = x
	}
	if sorted {
		return l
	}
	s := l.Slice()
	slices.SortStableFunc(s, func(a, b T) int { return cmp(&a, &b) })
	return ListOf(s)
}

// MarshalJSON encodes l as a JSON array. encoding/json checks and
// compacts what a MarshalJSON returns, so a large List in a value passed
// to json.Marshal costs a second pass; EncodeRecord encodes a record's
// Lists as slices instead (recordJSON).
func (l List[T]) MarshalJSON() ([]byte, error) {
	if l.more == nil {
		return json.Marshal(l.first)
	}
	var buf bytes.Buffer
	buf.WriteByte('[')
	for k := range l.numChunks() {
		b, err := json.Marshal(l.chunk(k))
		if err != nil {
			return nil, err
		}
		if k > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b[1 : len(b)-1]) // the chunk's elements, without its brackets
	}
	buf.WriteByte(']')
	return buf.Bytes(), nil
}

// UnmarshalJSON decodes a JSON array (or null: empty) into l.
func (l *List[T]) UnmarshalJSON(b []byte) error {
	var s []T
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*l = ListOf(clipped(s))
	return nil
}
