package replication

import (
	"encoding/binary"
	"fmt"

	"github.com/chorusdns/chorus/catalog"
)

// Frames of a tree exchange (stream type strTree). The client, the agent
// whose final digest mismatched, sends a hello (its node name), then up
// to treeDepth hash requests, one level down each time, naming the nodes
// whose hashes differed, and last an entries request naming the differing
// leaves with its own entries of them. The server answers each request:
// the children's hashes, then its own entries of those leaves. Both then
// pull what the other holds newer.
//
//	hello:            [name length][name]
//	hash request:     [opHashes][level][count u16][index u16]…   (level 0…treeDepth-1)
//	hash answer:      [hash u64] × count × treeFanout
//	entries request:  [opEntries][count u16][leaf u16]… entries
//	entries answer:   entries
//	entries:          [n u32] ([name length][name][version u64]) × n
//
// Indexes are strictly ascending and below the level's size; every entry
// must belong to one of the named leaves.
const (
	opHashes  byte = 1
	opEntries byte = 2
	// maxTreeFrame bounds one frame of a tree exchange: maxVectorEntries
	// entries of the longest name, plus every leaf named.
	maxTreeFrame = 1 + 2 + 2*treeLeaves + 4 + maxVectorEntries*(1+253+8)
)

// treeRequest is one request of a tree exchange.
type treeRequest struct {
	op      byte
	level   int      // opHashes: the level of the nodes named
	indexes []uint16 // nodes of level (opHashes) or leaves (opEntries)
	entries []vecEntry
}

func encodeHello(name string) []byte {
	return append([]byte{byte(len(name))}, name...)
}

func decodeHello(b []byte) (string, error) {
	if len(b) < 1 || len(b) != 1+int(b[0]) {
		return "", fmt.Errorf("hello of %d bytes", len(b))
	}
	name := string(b[1:])
	if err := catalog.ValidateNodeName(name); err != nil {
		return "", fmt.Errorf("hello: %w", err)
	}
	return name, nil
}

func encodeTreeRequest(r treeRequest) []byte {
	b := []byte{r.op}
	if r.op == opHashes {
		b = append(b, byte(r.level))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.indexes)))
	for _, i := range r.indexes {
		b = binary.BigEndian.AppendUint16(b, i)
	}
	if r.op == opEntries {
		b = appendEntries(b, r.entries)
	}
	return b
}

// decodeTreeRequest parses and checks a request: a known op, a level
// above the leaves, strictly ascending indexes within the level, and
// (opEntries) entries only of the leaves named.
func decodeTreeRequest(b []byte) (treeRequest, error) {
	var r treeRequest
	if len(b) < 1 {
		return r, fmt.Errorf("empty tree request")
	}
	r.op, b = b[0], b[1:]
	size := treeLeaves
	switch r.op {
	case opHashes:
		if len(b) < 1 {
			return r, fmt.Errorf("hash request without a level")
		}
		r.level, b = int(b[0]), b[1:]
		if r.level >= treeDepth {
			return r, fmt.Errorf("hash request for level %d, deepest inner level %d", r.level, treeDepth-1)
		}
		size = levelSize(r.level)
	case opEntries:
	default:
		return r, fmt.Errorf("unknown tree request %d", r.op)
	}
	if len(b) < 2 {
		return r, fmt.Errorf("tree request without a count")
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n == 0 || n > size || len(b) < 2*n {
		return r, fmt.Errorf("tree request of %d indexes (level of %d, %d bytes left)", n, size, len(b))
	}
	r.indexes = make([]uint16, n)
	for i := range n {
		r.indexes[i] = binary.BigEndian.Uint16(b[2*i:])
		if int(r.indexes[i]) >= size || i > 0 && r.indexes[i] <= r.indexes[i-1] {
			return r, fmt.Errorf("tree request index %d out of order or beyond %d", r.indexes[i], size)
		}
	}
	b = b[2*n:]
	if r.op == opHashes {
		if len(b) != 0 {
			return r, fmt.Errorf("%d bytes after a hash request", len(b))
		}
		return r, nil
	}
	var err error
	if r.entries, err = decodeEntries(b); err != nil {
		return r, err
	}
	if err := entriesWithin(r.entries, r.indexes); err != nil {
		return r, err
	}
	return r, nil
}

// entriesWithin checks that every entry belongs to one of leaves (sorted).
func entriesWithin(entries []vecEntry, leaves []uint16) error {
	for _, e := range entries {
		l := leafOf(e.Name)
		i, j := 0, len(leaves)
		for i < j { // binary search
			h := (i + j) / 2
			if int(leaves[h]) < l {
				i = h + 1
			} else {
				j = h
			}
		}
		if i == len(leaves) || int(leaves[i]) != l {
			return fmt.Errorf("entry %q of leaf %d, not asked for", e.Name, l)
		}
	}
	return nil
}

func encodeHashes(h []uint64) []byte {
	b := make([]byte, 0, 8*len(h))
	for _, x := range h {
		b = binary.BigEndian.AppendUint64(b, x)
	}
	return b
}

// decodeHashes parses a hash answer of exactly want hashes.
func decodeHashes(b []byte, want int) ([]uint64, error) {
	if len(b) != 8*want {
		return nil, fmt.Errorf("hash answer of %d bytes, want %d hashes", len(b), want)
	}
	h := make([]uint64, want)
	for i := range h {
		h[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return h, nil
}

func appendEntries(b []byte, entries []vecEntry) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = append(b, byte(len(e.Name)))
		b = append(b, e.Name...)
		b = binary.BigEndian.AppendUint64(b, e.Version)
	}
	return b
}

// decodeEntries parses entries that fill b: at most maxVectorEntries,
// each a valid node name with a version above 0.
func decodeEntries(b []byte) ([]vecEntry, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("entries without a count")
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	// Each entry takes at least 1+1+8 bytes: a count beyond what the
	// bytes can hold is refused before anything is allocated.
	if n > maxVectorEntries || int(n) > len(b)/10 {
		return nil, fmt.Errorf("%d entries in %d bytes (limit %d)", n, len(b), maxVectorEntries)
	}
	out := make([]vecEntry, 0, n)
	for range n {
		if len(b) < 1 || len(b) < 1+int(b[0])+8 {
			return nil, fmt.Errorf("entry cut short")
		}
		l := int(b[0])
		name := string(b[1 : 1+l])
		if err := catalog.ValidateNodeName(name); err != nil {
			return nil, fmt.Errorf("entry: %w", err)
		}
		v := binary.BigEndian.Uint64(b[1+l:])
		if v == 0 {
			return nil, fmt.Errorf("entry %q of version 0", name)
		}
		out = append(out, vecEntry{name, v})
		b = b[1+l+8:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d bytes after the entries", len(b))
	}
	return out, nil
}
