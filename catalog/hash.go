package catalog

import (
	"hash/fnv"
	"maps"
	"slices"
)

// FNV-1a, 64 bits: the Hasher carries its state from field to field,
// which hash/fnv (elsewhere) cannot start from.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// Hasher fingerprints a sequence of fields with FNV-1a (64 bits): change
// detection for snapshots and API answers, not a cryptographic hash. Each
// field is followed by its length, so adjacent fields cannot run into each
// other. The zero value is not ready: start from NewHasher. It is a value
// type; a copy forks the running hash.
type Hasher uint64

// NewHasher returns a Hasher at FNV-1a's offset basis.
func NewHasher() Hasher { return fnvOffset }

// U64 mixes in a whole word at once: one FNV step, then a shift that
// spreads its high bits down.
func (h *Hasher) U64(v uint64) *Hasher {
	*h ^= Hasher(v)
	*h *= fnvPrime
	*h ^= *h >> 29
	return h
}

// Str mixes in a string, byte by byte, then its length.
func (h *Hasher) Str(s string) *Hasher {
	for i := 0; i < len(s); i++ {
		*h ^= Hasher(s[i])
		*h *= fnvPrime
	}
	return h.U64(uint64(len(s)))
}

// Strs mixes in a list of strings and its length.
func (h *Hasher) Strs(ss []string) *Hasher {
	for _, s := range ss {
		h.Str(s)
	}
	return h.U64(uint64(len(ss)))
}

// StrMap mixes in a map's keys and values in key order, and its size.
func (h *Hasher) StrMap(m map[string]string) *Hasher {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		h.Str(k).Str(m[k])
	}
	return h.U64(uint64(len(m)))
}

// Sum returns the hash of everything mixed in so far.
func (h Hasher) Sum() uint64 { return uint64(h) }

// Mix64 is SplitMix64's finaliser: a fixed, seedless 64-bit mixer, so
// that inputs differing in one bit spread over the whole range and every
// agent computes the same value.
func Mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// RendezvousScore is member's weight for key in rendezvous (highest
// random weight) hashing: FNV-1a (64 bits) of key, a zero byte and
// member, mixed with Mix64. Every agent with the same names computes the
// same scores, so choosing the highest-scoring members needs no
// coordination, and a member's arrival or departure moves only the keys
// it wins or held.
func RendezvousScore(key, member string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(member))
	return Mix64(h.Sum64())
}
