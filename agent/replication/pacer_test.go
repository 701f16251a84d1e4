package replication

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRoundPacerSchedule: a round every interval for aeBusyRounds rounds
// after a change, then every 2, 4 and aeIdleGap intervals; a new root or
// a busy round brings back a round every interval.
func TestRoundPacerSchedule(t *testing.T) {
	var p roundPacer
	gaps := func(rounds int, root uint64, busyAt int) string {
		var out []string
		for i := range rounds {
			out = append(out, fmt.Sprint(p.next(root, i == busyAt)))
		}
		return strings.Join(out, " ")
	}
	if got, want := gaps(9, 1, -1), "1 1 1 1 1 2 4 8 8"; got != want {
		t.Fatalf("idle: gaps %s, want %s", got, want)
	}
	if got, want := gaps(7, 2, -1), "1 1 1 1 1 2 4"; got != want {
		t.Fatalf("after the root changed: gaps %s, want %s", got, want)
	}
	gaps(5, 2, -1) // spaced out again
	if got, want := gaps(7, 2, 0), "1 1 1 1 1 2 4"; got != want {
		t.Fatalf("after a busy round: gaps %s, want %s", got, want)
	}
}

// TestIdleDigestsBackOffAndStillRepair: an idle cluster sends far fewer
// than one digest per agent a second once nothing has changed for a
// while, and a change whose every notice is lost on the way to one agent
// (and whose version tags are hidden) still reaches that agent within a
// few seconds: every agent that received it wakes and runs a round a
// second again.
func TestIdleDigestsBackOffAndStillRepair(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the digests to back off (about 20 s)")
	}
	net := newMemNet(t)
	net.noTags.Store(true)
	nodes := net.add(4)
	rec := nodes[0].change("web")
	converged(t, nodes, "node0", rec.Version, 5*time.Second)
	digests := func() float64 {
		var sum float64
		for _, n := range nodes {
			sum += testutil.ToFloat64(n.sync.metrics.messages.WithLabelValues(kindDigest, dirSent))
		}
		return sum
	}
	// aeBusyRounds rounds plus the first gaps (2 + 4) pass, then count.
	time.Sleep(time.Duration(aeBusyRounds+6) * aeInterval * 5 / 4)
	before, start := digests(), time.Now()
	time.Sleep(8 * aeInterval)
	perAgentSecond := (digests() - before) / float64(len(nodes)) / time.Since(start).Seconds()
	// One a second before; now at most one per aeIdleGap rounds (0.75 s
	// each at the shortest) and the rounds of the last gap that began
	// before the window.
	if perAgentSecond > 0.4 {
		t.Fatalf("idle: %.2f digests per agent a second over %v, want ≤ 0.4 (one per %d rounds)", perAgentSecond, time.Since(start).Round(time.Second), aeIdleGap)
	}

	// node3 misses every notice of the next change.
	lose := func(from, to string, typ byte) bool { return typ == pktNotice && to == nodes[3].addr }
	net.lose.Store(&lose)
	changed := time.Now()
	rec = nodes[0].change("web", "api")
	converged(t, nodes[:3], "node0", rec.Version, 2*time.Second)
	converged(t, nodes, "node0", rec.Version, 6*time.Second)
	t.Logf("idle: %.2f digests per agent a second; the lost notice repaired in %v", perAgentSecond, time.Since(changed).Round(100*time.Millisecond))
	if got := nodes[3].counter("ae_repair"); got == 0 {
		t.Fatalf("%s got the change without an anti-entropy repair", nodes[3].name)
	}
}
