package wan

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node-%d", i)
	}
	return out
}

// Every agent computes the same set from the same members, whatever order
// its member list is in.
func TestSpeakersSameSetEverywhere(t *testing.T) {
	all := names(50)
	want := Speakers("dc1", all, 3)
	if len(want) != 3 {
		t.Fatalf("got %d speakers, want 3: %v", len(want), want)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100; i++ {
		view := slices.Clone(all)
		r.Shuffle(len(view), func(i, j int) { view[i], view[j] = view[j], view[i] })
		if got := Speakers("dc1", view, 3); !slices.Equal(got, want) {
			t.Fatalf("shuffled view %d chose %v, want %v", i, got, want)
		}
	}
}

// A dead speaker's place goes to the next name in the order; the other
// speakers stay.
func TestSpeakersDeathReplaced(t *testing.T) {
	all := names(20)
	order := Speakers("dc1", all, len(all))
	before := Speakers("dc1", all, 3)
	if !slices.Equal(before, order[:3]) {
		t.Fatalf("top 3 %v is not the head of the order %v", before, order)
	}
	alive := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return n == before[1] })
	after := Speakers("dc1", alive, 3)
	want := []string{before[0], before[2], order[3]}
	if !slices.Equal(after, want) {
		t.Fatalf("after %s died: %v, want %v", before[1], after, want)
	}
	// A newcomer displaces a speaker only by outscoring it.
	grown := append(slices.Clone(all), "newcomer")
	if got := Speakers("dc1", grown, 3); !slices.Contains(got, "newcomer") && !slices.Equal(got, before) {
		t.Fatalf("a newcomer that is not chosen changed the set: %v → %v", before, got)
	}
}

func TestSpeakersEdges(t *testing.T) {
	for _, tc := range []struct {
		name  string
		alive []string
		k     int
		want  int
	}{
		{"none alive", nil, 3, 0},
		{"fewer than k", names(2), 3, 2},
		{"k zero", names(5), 0, 0},
		{"exactly k", names(3), 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Speakers("dc1", tc.alive, tc.k); len(got) != tc.want {
				t.Fatalf("got %v, want %d speakers", got, tc.want)
			}
		})
	}
	// Different datacenters rank the same names differently.
	if slices.Equal(Speakers("dc1", names(50), 3), Speakers("dc2", names(50), 3)) {
		t.Fatal("dc1 and dc2 chose the same speakers from 50 names")
	}
}
