package cluster

import (
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

// feed builds answers: every agent in agents answers set at every 100 ms
// step in [from, to).
func feed(from, to time.Duration, set uint32, kind Kind, agents ...int) []Answer {
	var out []Answer
	for t := from; t < to; t += 100 * ms {
		for _, a := range agents {
			out = append(out, Answer{At: t, Host: uint8(a), Kind: kind, Set: set})
		}
	}
	return out
}

func merge(parts ...[]Answer) []Answer {
	var out []Answer
	for _, p := range parts {
		out = append(out, p...)
	}
	// Stable insertion sort by time: the inputs are small.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].At < out[j-1].At; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func TestAnalyzeCrash(t *testing.T) {
	const n = 3
	all := uint32(0b111)
	events := []Event{
		{At: 0, Label: "start"},
		{At: 1000 * ms, Label: "SIGKILL h2", Fault: true, State: State{Down: 0b010}},
		{At: 5000 * ms, Label: "restart h2", State: State{}},
	}
	tests := []struct {
		name    string
		answers []Answer
		check   func(t *testing.T, m Metrics)
	}{
		{
			name: "clean",
			answers: merge(
				feed(0, 1000*ms, all, KindOK, 0, 1, 2),
				feed(1000*ms, 2500*ms, all, KindOK, 0, 2), // stale within the bound
				feed(2500*ms, 5000*ms, 0b101, KindOK, 0, 2),
				feed(5000*ms, 5300*ms, 0b101, KindOK, 0, 2),
				feed(5300*ms, 8000*ms, all, KindOK, 0, 2),
				feed(5200*ms, 8000*ms, all, KindOK, 1),
			),
			check: func(t *testing.T, m Metrics) {
				if m.Wrong != 0 || m.Empty != 0 || m.Missing != 0 || len(m.Unrecovered) != 0 {
					t.Fatalf("want a clean run, got %+v", m)
				}
				if m.Detection != 1400*ms {
					t.Errorf("detection = %v, want 1.4s", m.Detection)
				}
				if m.Recovery != 300*ms {
					t.Errorf("recovery = %v, want 300ms", m.Recovery)
				}
			},
		},
		{
			name: "stale past the bound",
			answers: merge(
				feed(0, 1000*ms, all, KindOK, 0, 1, 2),
				feed(1000*ms, 7000*ms, all, KindOK, 0), // h1 keeps answering h2 for 6 s
				feed(1000*ms, 7000*ms, 0b101, KindOK, 2),
			),
			check: func(t *testing.T, m Metrics) {
				// Answers after 1 s + 5 s bound: 6.1 … 6.9 s (restart at 5 s makes h2 expected again).
				if m.Wrong != 0 {
					t.Fatalf("wrong = %d; answers after the restart are expected", m.Wrong)
				}
				if m.Detection != 3900*ms {
					t.Errorf("detection = %v, want 3.9s (last stale answer before the restart)", m.Detection)
				}
				if !strings.Contains(strings.Join(m.Unrecovered, " "), "h3->h2") {
					t.Errorf("unrecovered = %v, want h3->h2", m.Unrecovered)
				}
			},
		},
		{
			name: "empty after restart and flap",
			answers: merge(
				feed(0, 1000*ms, all, KindOK, 0, 1, 2),
				feed(1000*ms, 8000*ms, 0b101, KindOK, 0),
				feed(1000*ms, 8000*ms, 0b101, KindOK, 2),
				feed(5000*ms, 5100*ms, 0, KindNXDomain, 1),
				feed(5100*ms, 5500*ms, all, KindOK, 1),
				feed(5500*ms, 6000*ms, 0b101, KindOK, 1), // h2's own instance flaps out
				feed(6000*ms, 8000*ms, all, KindOK, 1),
			),
			check: func(t *testing.T, m Metrics) {
				if m.Empty != 1 {
					t.Errorf("empty = %d, want 1", m.Empty)
				}
				if m.Recovery != 1000*ms {
					t.Errorf("recovery = %v, want 1s (steady from 6 s)", m.Recovery)
				}
				if m.Missing != 0 {
					t.Errorf("missing = %d; flaps of a repaired instance count in its recovery", m.Missing)
				}
				if len(m.Unrecovered) != 2 { // h1 and h3 never answer h2 again
					t.Errorf("unrecovered = %v", m.Unrecovered)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := Analyze(n, events, tc.answers, nil, DefaultBounds)
			tc.check(t, m)
		})
	}
}

// TestAnalyzeNoAnswerBeforeNextFault: a restarted agent that answers
// nothing (its DNS start-up gate) before the next fault takes another
// host down has nothing to recover; one that answers without the
// instance until then has not recovered.
func TestAnalyzeNoAnswerBeforeNextFault(t *testing.T) {
	const n = 3
	events := []Event{
		{At: 0, Label: "start"},
		{At: 1000 * ms, Label: "SIGTERM h1", Fault: true, State: State{Down: 0b001}},
		{At: 2000 * ms, Label: "start h1", State: State{}},
		{At: 2500 * ms, Label: "SIGTERM h2", Fault: true, State: State{Down: 0b010}},
		{At: 4000 * ms, Label: "start h2", State: State{}},
	}
	for _, tc := range []struct {
		name   string
		h1Gate []Answer // what h1 answers from 2 s to 2.5 s
		want   int
	}{
		{"gated", feed(2000*ms, 2500*ms, 0, KindTimeout, 0), 0},
		{"answered without h2", feed(2000*ms, 2500*ms, 0b101, KindOK, 0), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answers := merge(
				feed(0, 1000*ms, 0b111, KindOK, 0, 1, 2),
				feed(1000*ms, 2000*ms, 0b110, KindOK, 1, 2),
				feed(2000*ms, 2500*ms, 0b111, KindOK, 1, 2),
				tc.h1Gate,
				feed(2500*ms, 4000*ms, 0b101, KindOK, 0, 2),
				feed(4000*ms, 6000*ms, 0b111, KindOK, 0, 1, 2),
			)
			m := Analyze(n, events, answers, nil, DefaultBounds)
			if len(m.Unrecovered) != tc.want {
				t.Errorf("unrecovered = %v, want %d", m.Unrecovered, tc.want)
			}
		})
	}
}

func TestAnalyzeWrongAfterBound(t *testing.T) {
	events := []Event{
		{At: 0, Label: "start"},
		{At: 1000 * ms, Label: "kill demo on h1", Fault: true, State: State{SvcDown: 0b01}},
	}
	answers := merge(
		feed(0, 8000*ms, 0b11, KindOK, 1), // h2 never drops h1
		feed(0, 1000*ms, 0b11, KindOK, 0),
		feed(1000*ms, 8000*ms, 0b10, KindOK, 0),
	)
	m := Analyze(2, events, answers, nil, DefaultBounds)
	// 6.1 s … 7.9 s are past the 5 s bound: 19 answers (6.0 is at the bound).
	if m.Wrong != 19 {
		t.Errorf("wrong = %d, want 19", m.Wrong)
	}
	if len(m.Violations) == 0 || !strings.Contains(m.Violations[0], `h2 still answered h1`) {
		t.Errorf("violations = %q", m.Violations)
	}
}

func TestAnalyzePartitionAndMembers(t *testing.T) {
	const n = 3
	events := []Event{
		{At: 0, Label: "start"},
		{At: 1000 * ms, Label: "cut off h3", Fault: true, State: State{Group: [MaxHosts]uint8{1, 1, 2}}},
		{At: 5000 * ms, Label: "heal"},
	}
	answers := merge(
		feed(0, 2000*ms, 0b111, KindOK, 0, 1, 2),
		feed(2000*ms, 5000*ms, 0b011, KindOK, 0, 1),
		feed(2000*ms, 5000*ms, 0b100, KindOK, 2), // the cut-off side answers only itself
		feed(5000*ms, 9000*ms, 0b111, KindOK, 0, 1, 2),
	)
	alive := []uint8{MemberAlive, MemberAlive, MemberAlive}
	views := []MemberView{
		{At: 500 * ms, Observer: 0, Status: alive},
		{At: 2200 * ms, Observer: 0, Status: []uint8{MemberAlive, MemberAlive, MemberFailed}},
		{At: 3000 * ms, Observer: 0, Status: []uint8{MemberAlive, MemberFailed, MemberFailed}}, // h2 is reachable: false failure
		{At: 6000 * ms, Observer: 0, Status: alive},
	}
	m := Analyze(n, events, answers, views, DefaultBounds)
	if m.Wrong != 0 || m.Empty != 0 || m.Missing != 0 {
		t.Fatalf("unexpected violations: %q", m.Violations)
	}
	if m.Detection != 900*ms {
		t.Errorf("detection = %v, want 900ms", m.Detection)
	}
	if m.IsolatedDetection != 900*ms {
		t.Errorf("isolated detection = %v, want 900ms (h3 alone)", m.IsolatedDetection)
	}
	if m.Recovery != 0 {
		t.Errorf("recovery = %v, want 0", m.Recovery)
	}
	if m.MemberDetection != 1200*ms {
		t.Errorf("member detection = %v, want 1.2s", m.MemberDetection)
	}
	if m.FalseFailures != 1 {
		t.Errorf("false failures = %d, want 1", m.FalseFailures)
	}
}

func TestAnalyzeIsolatedBound(t *testing.T) {
	events := []Event{
		{At: 0, Label: "start"},
		{At: 1000 * ms, Label: "cut off h2", Fault: true, State: State{Group: [MaxHosts]uint8{1, 2}}},
	}
	answers := merge(
		feed(0, 20000*ms, 0b11, KindOK, 1), // h2, alone, never drops h1
		feed(0, 1000*ms, 0b11, KindOK, 0),
		feed(1000*ms, 20000*ms, 0b01, KindOK, 0),
	)
	m := Analyze(2, events, answers, nil, DefaultBounds)
	// Past 1 s + 15 s: 16.1 … 19.9 s.
	if m.Wrong != 39 {
		t.Errorf("wrong = %d, want 39 (after the isolated bound only)", m.Wrong)
	}
	if m.Detection != -1 || m.IsolatedDetection != 18900*ms { // both sides are alone
		t.Errorf("detection %v, isolated %v; want -1 and 18.9s", m.Detection, m.IsolatedDetection)
	}
}

func TestAnalyzeMissingUnderLoss(t *testing.T) {
	events := []Event{{At: 0, Label: "start"}, {At: 1000 * ms, Label: "loss", Fault: true}, {At: 4000 * ms, Label: "clear"}}
	answers := merge(
		feed(0, 5000*ms, 0b11, KindOK, 0),
		feed(0, 2000*ms, 0b11, KindOK, 1),
		feed(2000*ms, 2300*ms, 0b10, KindOK, 1), // h1 flaps out of h2's answers
		feed(2300*ms, 5000*ms, 0b11, KindOK, 1),
		feed(3000*ms, 3100*ms, 0, KindTimeout, 1),
	)
	m := Analyze(2, events, answers, nil, DefaultBounds)
	if m.Missing != 3 || m.Timeouts != 1 {
		t.Errorf("missing = %d, timeouts = %d; want 3 and 1", m.Missing, m.Timeouts)
	}
	if m.Detection != -1 || m.Recovery != -1 {
		t.Errorf("detection %v recovery %v; want both -1 (nothing removed or added)", m.Detection, m.Recovery)
	}
}

func TestStateExpected(t *testing.T) {
	s := State{Down: 0b00010, SvcDown: 0b00100, Group: [MaxHosts]uint8{1, 1, 1, 2, 2}}
	for _, tc := range []struct {
		a    int
		want uint32
	}{
		{0, 0b00001}, // h2 down, h3's service down, h4 and h5 across the split
		{3, 0b11000},
		{1, 0}, // a down agent expects nothing
	} {
		if got := s.Expected(tc.a, 5); got != tc.want {
			t.Errorf("Expected(%d) = %05b, want %05b", tc.a, got, tc.want)
		}
	}
}
