package dns

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Distances estimates the round-trip time from this agent to a node, for
// the nearest policy (the agent implements it with Serf coordinates). RTT
// must be safe for concurrent use and fast: it runs once per candidate
// instance of every query answered with the nearest policy.
type Distances interface {
	RTT(node string) (time.Duration, bool)
}

// zeroWeightKey orders weight-0 units after every weighted one: a
// weighted key is -ln(u)/w <= 37 for u >= 2^-53 and w >= 1.
const zeroWeightKey = 1e6

// keyed is a unit with its sort key for one query.
type keyed struct {
	key float64
	tie uint64
	idx int32
}

func keyedLess(a, b keyed) int {
	switch {
	case a.key < b.key:
		return -1
	case a.key > b.key:
		return 1
	case a.tie < b.tie:
		return -1
	case a.tie > b.tie:
		return 1
	}
	return 0
}

// orderInput is what the per-query ordering may depend on besides the
// entry: the client (hash policy) and the distances (nearest policy).
type orderInput struct {
	client uint64 // hash of the client address or ECS subnet
	dist   Distances
}

// orderUnits returns the indexes of up to k units of e in answer order:
// tiers in priority order, each tier ordered by the entry's policy. Only
// the first k positions are computed, so a large service costs O(n) and
// not O(n log n) per query.
func orderUnits(e *entry, k int, sc *scratch, in *orderInput) []int32 {
	out := sc.order[:0]
	var rot uint32
	if e.policy == policyRoundRobin {
		rot = e.rr.Add(1) - 1
	}
	lo := 0
	for t, hiv := range e.tiers {
		hi := int(hiv)
		if len(out) >= k {
			break
		}
		n := hi - lo
		want := min(k-len(out), n)
		switch {
		case n == 1 || e.policy == policyFixed:
			for i := lo; i < lo+want; i++ {
				out = append(out, int32(i))
			}
		case e.policy == policyRoundRobin:
			start := int(rot % uint32(n))
			for i := 0; i < want; i++ {
				out = append(out, int32(lo+(start+i)%n))
			}
		case e.policy == policyRandom && e.equal[t]:
			// Partial Fisher–Yates: uniform, O(want).
			base := len(out)
			for i := lo; i < hi; i++ {
				out = append(out, int32(i))
			}
			tail := out[base:]
			for i := 0; i < want; i++ {
				j := i + int(rand.Uint64N(uint64(n-i)))
				tail[i], tail[j] = tail[j], tail[i]
			}
			out = out[:base+want]
		default:
			keys := sc.keyed[:0]
			for i := lo; i < hi; i++ {
				keys = append(keys, unitKey(e.policy, &e.units[i], int32(i), in))
			}
			selectSmallest(keys, want)
			for _, kk := range keys[:want] {
				out = append(out, kk.idx)
			}
			sc.keyed = keys
		}
		lo = hi
	}
	sc.order = out
	return out
}

// unitKey computes a unit's sort key; smaller comes first.
//
//   - random: -ln(U)/w with U uniform, the Efraimidis–Spirakis weighted
//     shuffle: a unit is first with probability w/Σw.
//   - hash: the same with U derived from hash(client, unit), which is
//     weighted rendezvous hashing: a client's order only changes when its
//     first instance goes away, and then only for that instance's clients.
//   - least-loaded: the load, ties at random.
//   - nearest: the estimated RTT, unknown last, ties at random.
func unitKey(p policyKind, u *unit, idx int32, in *orderInput) keyed {
	k := keyed{idx: idx}
	switch p {
	case policyHash:
		h := mix64(in.client ^ u.key)
		k.key = weightedKey(unitFloat(h), u.weight)
		k.tie = u.key
	case policyLeastLoaded:
		k.key = u.load
		k.tie = rand.Uint64()
	case policyNearest:
		k.key = math.Inf(1)
		if in.dist != nil {
			if d, ok := in.dist.RTT(u.node); ok {
				k.key = d.Seconds()
			}
		}
		k.tie = rand.Uint64()
	default:
		k.key = weightedKey(unitFloat(rand.Uint64()), u.weight)
	}
	return k
}

// weightedKey is -ln(u)/w for u in (0, 1].
func weightedKey(u, w float64) float64 {
	if w <= 0 {
		return zeroWeightKey + u
	}
	return -math.Log(u) / w
}

// unitFloat maps 64 random bits to a float in (0, 1].
func unitFloat(h uint64) float64 {
	return float64(h>>11+1) * (1.0 / (1 << 53))
}

// selectSmallest reorders keys so that keys[:k] are the k smallest, in
// order.
func selectSmallest(keys []keyed, k int) {
	n := len(keys)
	if k <= 0 || n == 0 {
		return
	}
	if n <= 32 || k*4 >= n {
		if n <= 16 {
			insertionSort(keys)
			return
		}
		slices.SortFunc(keys, keyedLess)
		return
	}
	quickselect(keys, k)
	slices.SortFunc(keys[:k], keyedLess)
}

func insertionSort(keys []keyed) {
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keyedLess(keys[j], keys[j-1]) < 0; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
}

// quickselect partitions keys so that keys[:k] hold the k smallest.
func quickselect(keys []keyed, k int) {
	lo, hi := 0, len(keys)-1
	for lo < hi {
		// Median of three as pivot.
		mid := lo + (hi-lo)/2
		if keyedLess(keys[mid], keys[lo]) < 0 {
			keys[mid], keys[lo] = keys[lo], keys[mid]
		}
		if keyedLess(keys[hi], keys[lo]) < 0 {
			keys[hi], keys[lo] = keys[lo], keys[hi]
		}
		if keyedLess(keys[hi], keys[mid]) < 0 {
			keys[hi], keys[mid] = keys[mid], keys[hi]
		}
		pivot := keys[mid]
		i, j := lo, hi
		for i <= j {
			for keyedLess(keys[i], pivot) < 0 {
				i++
			}
			for keyedLess(keys[j], pivot) > 0 {
				j--
			}
			if i <= j {
				keys[i], keys[j] = keys[j], keys[i]
				i++
				j--
			}
		}
		switch {
		case k-1 <= j:
			hi = j
		case k-1 >= i:
			lo = i
		default:
			return
		}
	}
}

// mix64 is the SplitMix64 finaliser: a fixed, seedless bit mixer, so that
// every agent hashes a client to the same instances.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func randUint64() uint64 { return rand.Uint64() }
