package dns

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/chorusdns/chorus/catalog"
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
// the first k positions are computed: picking a handful of records out of
// a very large tier costs O(k) for random and least-loaded, O(n) with no
// sort for hash and nearest.
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
		case e.policy == policyRandom && e.equal[t] && want*4 < n:
			out = sampleUniform(out, lo, n, want, sc)
		case e.policy == policyRandom && e.equal[t]:
			// Partial Fisher–Yates: uniform, O(n) to copy, O(want) to draw.
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
		case e.policy == policyRandom && want*4 < n && n > 64:
			var ok bool
			if out, ok = sampleWeighted(out, e, lo, hi, want, sc); ok {
				break
			}
			out = orderByKey(out, e, lo, hi, want, sc, in)
		case e.policy == policyLeastLoaded:
			out = orderByLoad(out, e, lo, hi, want)
		default:
			out = orderByKey(out, e, lo, hi, want, sc, in)
		}
		lo = hi
	}
	sc.order = out
	return out
}

// orderByKey computes every unit's key and keeps the want smallest.
func orderByKey(out []int32, e *entry, lo, hi, want int, sc *scratch, in *orderInput) []int32 {
	keys := sc.keyed[:0]
	equal := e.equal[e.tierOf(lo)]
	for i := lo; i < hi; i++ {
		keys = append(keys, unitKey(e.policy, &e.units[i], int32(i), in, equal))
	}
	selectSmallest(keys, want)
	for _, kk := range keys[:want] {
		out = append(out, kk.idx)
	}
	sc.keyed = keys
	return out
}

// sampleUniform draws want distinct units of [lo, lo+n) uniformly by
// rejection, for want much smaller than n.
func sampleUniform(out []int32, lo, n, want int, sc *scratch) []int32 {
	seen := sc.mark(n)
	for picked := 0; picked < want; {
		i := int(rand.Uint64N(uint64(n)))
		if seen[i/64]&(1<<(i%64)) != 0 {
			continue
		}
		seen[i/64] |= 1 << (i % 64)
		out = append(out, int32(lo+i))
		picked++
	}
	return out
}

// sampleWeighted draws want distinct units of [lo, hi) by successive
// weighted sampling (each draw proportional to weight among those not yet
// drawn, the distribution of the Efraimidis–Spirakis keys) using the
// entry's cumulative weights and rejecting repeats. Heavily skewed weights
// make repeats frequent; after a bounded number of draws it gives up and
// the caller computes keys instead.
func sampleWeighted(out []int32, e *entry, lo, hi, want int, sc *scratch) ([]int32, bool) {
	base := 0.0
	if lo > 0 {
		base = e.cum[lo-1]
	}
	total := e.cum[hi-1] - base
	if total <= 0 {
		return out, false
	}
	start := len(out)
	seen := sc.mark(hi - lo)
	for tries, picked := 0, 0; picked < want; tries++ {
		if tries > 8*want+32 {
			return out[:start], false
		}
		x := base + unitFloat(rand.Uint64())*total
		i, _ := slices.BinarySearch(e.cum[lo:hi], x)
		if i >= hi-lo {
			i = hi - lo - 1
		}
		if e.units[lo+i].weight <= 0 || seen[i/64]&(1<<(i%64)) != 0 {
			continue
		}
		seen[i/64] |= 1 << (i % 64)
		out = append(out, int32(lo+i))
		picked++
	}
	return out, true
}

// orderByLoad walks the tier in the load order prepared with the entry and
// shuffles each run of equal loads, so ties are broken at random.
func orderByLoad(out []int32, e *entry, lo, hi, want int) []int32 {
	order := e.byLoad[lo:hi]
	for g := 0; g < len(order) && want > 0; {
		end := g + 1
		for end < len(order) && e.units[order[end]].load == e.units[order[g]].load {
			end++
		}
		base := len(out)
		out = append(out, order[g:end]...)
		grp := out[base:]
		take := min(want, len(grp))
		for i := 0; i < take; i++ {
			j := i + int(rand.Uint64N(uint64(len(grp)-i)))
			grp[i], grp[j] = grp[j], grp[i]
		}
		out = out[:base+take]
		want -= take
		g = end
	}
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
//
// equal says all weights of the tier are equal: hash then orders by U
// alone, which is the same order without a logarithm per unit.
func unitKey(p policyKind, u *unit, idx int32, in *orderInput, equal bool) keyed {
	k := keyed{idx: idx}
	switch p {
	case policyHash:
		h := catalog.Mix64(in.client ^ u.key)
		if equal && u.weight > 0 {
			k.key = -unitFloat(h)
		} else {
			k.key = weightedKey(unitFloat(h), u.weight)
		}
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
	k = min(k, n)
	if k <= 0 {
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

func randUint64() uint64 { return rand.Uint64() }
