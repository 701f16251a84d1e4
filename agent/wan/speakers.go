package wan

import (
	"slices"
	"strings"

	"github.com/chorusdns/chorus/catalog"
)

// DefaultSpeakers is how many agents of a datacenter are in the WAN pool
// when the configuration does not say.
const DefaultSpeakers = 3

// Speakers returns the k members of alive (node names of the alive LAN
// members, the caller included) that speak for datacenter dc, best first.
// The choice is rendezvous hashing: each name scores hash(dc, name) and
// the k highest scores win. It depends only on the set of names, so every
// agent that sees the same members picks the same speakers; when a
// speaker dies or leaves, only its place changes hands (to the next
// name in the order), and a new member displaces a speaker only if it
// outscores one. Names are compared case-insensitively, as the catalog
// does. It does not modify alive.
func Speakers(dc string, alive []string, k int) []string {
	if k <= 0 || len(alive) == 0 {
		return nil
	}
	type scored struct {
		name  string
		score uint64
	}
	s := make([]scored, 0, len(alive))
	for _, n := range alive {
		s = append(s, scored{n, score(dc, n)})
	}
	slices.SortFunc(s, func(a, b scored) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	out := make([]string, 0, min(k, len(s)))
	for _, x := range s {
		if len(out) == k {
			break
		}
		if len(out) > 0 && strings.EqualFold(out[len(out)-1], x.name) {
			continue
		}
		out = append(out, x.name)
	}
	return out
}

// score is a name's rendezvous weight: FNV-1a of the lower-case
// datacenter and name, finished with a 64-bit mixer so that names that
// differ in one character spread over the whole range.
func score(dc, name string) uint64 {
	return catalog.RendezvousScore(strings.ToLower(dc), strings.ToLower(name))
}
