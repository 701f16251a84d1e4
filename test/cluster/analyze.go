package cluster

import (
	"fmt"
	"math/bits"
	"time"
)

// MaxHosts is the largest cluster the records can describe.
const MaxHosts = 16

// State is what the harness has done to the cluster at one moment: the
// truth every answer is judged against.
type State struct {
	Down    uint32          // bit i: host i's agent is not serving (killed, stopped, restarting)
	SvcDown uint32          // bit i: host i's demo service is down
	Group   [MaxHosts]uint8 // partition group of each host; hosts talk when equal
}

// Reach reports whether agents a and b can talk: both serving and on the
// same side of any partition.
func (s State) Reach(a, b int) bool {
	return s.Down&(1<<a) == 0 && s.Down&(1<<b) == 0 && s.Group[a] == s.Group[b]
}

// Expected returns the instances agent a should answer among n hosts:
// those of the hosts it can reach whose demo service is up.
func (s State) Expected(a, n int) uint32 {
	var e uint32
	for b := range n {
		if s.Reach(a, b) && s.SvcDown&(1<<b) == 0 {
			e |= 1 << b
		}
	}
	return e
}

// alone reports whether agent a serves but reaches no other agent.
func (s State) alone(a, n int) bool {
	if s.Down&(1<<a) != 0 {
		return false
	}
	for b := range n {
		if b != a && s.Reach(a, b) {
			return false
		}
	}
	return true
}

// Event is one action of a scenario and the state from then on.
type Event struct {
	At    time.Duration // on the cluster clock, taken just before the action
	Label string
	Fault bool // true: a fault injected; false: a repair (or the initial state)
	State State
}

// Bounds are the limits the assertions hold the agents to.
type Bounds struct {
	// Detect: an instance on a dead or cut-off host, or with a failing
	// check, must be gone from every reachable agent's answers this long
	// after the fault, and never come back until a repair.
	Detect time.Duration
	// Isolated is the same bound for an agent cut off from every other
	// agent: it must drop all the others' instances. It is looser because
	// such an agent declares its peers failed one probe at a time, and
	// Lifeguard stretches its probe interval up to 8× as every probe
	// fails (with 5 agents: 8–12 s measured).
	Isolated time.Duration
	// Recover: after a repair, every agent answers every instance again
	// within this.
	Recover time.Duration
	// Converge: after the last repair, every agent's catalog is identical
	// (digest) within this.
	Converge time.Duration
}

// DefaultBounds are the bounds for the lan gossip profile, whose failure
// detection takes about 2 s (probe 400 ms, suspicion 2× probe interval ×
// log10(N), at least 800 ms).
var DefaultBounds = Bounds{Detect: 5 * time.Second, Isolated: 15 * time.Second, Recover: 10 * time.Second, Converge: 10 * time.Second}

// EventMetrics are the figures of one event.
type EventMetrics struct {
	Event
	// Detection is the time from the event to the last answer, from any
	// agent still connected to another, that held an instance the event
	// removed; -1 when the event removed none. IsolatedDetection is the
	// same for agents the event left alone in their partition.
	Detection, IsolatedDetection time.Duration
	// MemberDetection is the time until the last agent that lost sight
	// of a host listed it as not alive; -1 when none was expected.
	MemberDetection time.Duration
	// Recovery is the time from the event until every (agent, instance)
	// pair it added was answered in every answer from then on (until the
	// next event touching the pair); -1 when it added none.
	Recovery time.Duration
	// Unrecovered lists the pairs not answered steadily again ("h1->h3":
	// h1 did not answer h3's instance) before the next event or the end.
	Unrecovered []string

	removed, isolatedRemoved, added int
}

// Metrics are the figures of one scenario, from the prober's record.
type Metrics struct {
	Queries  int // answers from agents that should be serving
	Timeouts int // unanswered queries to agents that should be serving
	Skipped  int // outcomes from agents that were down or stopped

	Detection         time.Duration // max over events; -1 when nothing was removed
	IsolatedDetection time.Duration // max over events, for agents cut off from all others; -1 when none
	MemberDetection   time.Duration // max over events; -1 when nothing was expected
	Recovery          time.Duration // max over events; -1 when nothing was added
	Unrecovered       []string

	Wrong         int // answers holding an instance that should be gone (after Detect) or an unknown address
	Missing       int // answers lacking a healthy, reachable instance that no event of the scenario touched
	Empty         int // NOERROR-without-records or NXDOMAIN while a healthy instance was reachable
	Errors        int // other rcodes (SERVFAIL, REFUSED, …)
	FalseFailures int // times an agent listed a reachable, running host as not alive

	Events     []EventMetrics
	Violations []string // the first examples of each kind
}

// Analyze judges answers and member views against events. events[0] is
// the initial state (taken as converged: every expected pair answered);
// answers and views must be sorted by time.
func Analyze(n int, events []Event, answers []Answer, views []MemberView, b Bounds) Metrics {
	z := &analyzer{n: n, events: events, b: b, m: Metrics{Detection: -1, IsolatedDetection: -1, MemberDetection: -1, Recovery: -1}, examples: map[string]int{}}
	if len(events) == 0 || n > MaxHosts {
		return z.m
	}
	z.m.Events = make([]EventMetrics, len(events))
	for i, e := range events {
		z.m.Events[i] = EventMetrics{Event: e, Detection: -1, IsolatedDetection: -1, MemberDetection: -1, Recovery: -1}
	}
	z.st = events[0].State
	for a := range n {
		exp := z.st.Expected(a, n)
		for h := range n {
			z.ans[a][h] = pair{expected: exp&(1<<h) != 0}
			z.mem[a][h] = mpair{reach: z.st.Reach(a, h), seenOK: true}
		}
	}
	z.next = 1
	// One pass over answers and views merged by time, so the state
	// advances once.
	for i, j := 0, 0; i < len(answers) || j < len(views); {
		if j >= len(views) || (i < len(answers) && answers[i].At <= views[j].At) {
			z.answer(answers[i])
			i++
		} else {
			z.view(views[j])
			j++
		}
	}
	z.advance(1<<62 - 1)
	for a := range n {
		for h := range n {
			z.settle(a, h)
		}
	}
	return z.finish()
}

// pair is what one observer should answer about one instance.
type pair struct {
	expected bool
	since    time.Duration // when the expectation started
	event    int           // the event that set it (0: stable since the start)
	// For pairs an event made expected: whether the latest answers held
	// the instance, and since when (the recovery is the start of the
	// last such run).
	hit   bool
	hitAt time.Duration
	// answered: the observer answered (not a timeout) since the
	// expectation started; without an answer there is nothing to judge.
	answered bool
	// isolated: the event left the observer alone in its partition.
	isolated bool
}

// mpair is whether one observer should list one member alive.
type mpair struct {
	reach    bool
	since    time.Duration
	event    int
	seenOK   bool // listed alive since it became reachable
	failing  bool // in a false-failure episode
	detected bool
}

type analyzer struct {
	n        int
	events   []Event
	b        Bounds
	m        Metrics
	st       State
	next     int
	ans      [MaxHosts][MaxHosts]pair
	mem      [MaxHosts][MaxHosts]mpair
	examples map[string]int
}

func (z *analyzer) violate(kind string, at time.Duration, format string, args ...any) {
	if z.examples[kind] >= 3 {
		return
	}
	z.examples[kind]++
	z.m.Violations = append(z.m.Violations, fmt.Sprintf("%s at +%.2fs: %s", kind, (at-z.events[0].At).Seconds(), fmt.Sprintf(format, args...)))
}

// advance applies every event at or before t.
func (z *analyzer) advance(t time.Duration) {
	for z.next < len(z.events) && z.events[z.next].At <= t {
		ei := z.next
		ev := z.events[ei]
		em := &z.m.Events[ei]
		z.st = ev.State
		for a := range z.n {
			exp := z.st.Expected(a, z.n)
			serving := z.st.Down&(1<<a) == 0
			alone := z.st.alone(a, z.n)
			for h := range z.n {
				p := &z.ans[a][h]
				if e := exp&(1<<h) != 0; e != p.expected {
					z.settle(a, h)
					*p = pair{expected: e, since: ev.At, event: ei, isolated: alone}
					switch {
					case e:
						em.added++
					case serving && alone:
						em.isolatedRemoved++
					case serving:
						em.removed++
					}
				}
				q := &z.mem[a][h]
				if r := z.st.Reach(a, h); r != q.reach {
					*q = mpair{reach: r, since: ev.At, event: ei}
				}
			}
		}
		z.next++
	}
}

func (z *analyzer) answer(x Answer) {
	z.advance(x.At)
	a := int(x.Host)
	if a >= z.n {
		return
	}
	if z.st.Down&(1<<a) != 0 {
		z.m.Skipped++
		return
	}
	if x.Kind == KindTimeout {
		z.m.Timeouts++
		return
	}
	z.m.Queries++
	exp := z.st.Expected(a, z.n)
	switch x.Kind {
	case KindError:
		z.m.Errors++
		z.violate("error", x.At, "%s answered an error rcode", hostName(a))
	case KindEmpty, KindNXDomain:
		if exp != 0 {
			z.m.Empty++
			what := "NOERROR with no records"
			if x.Kind == KindNXDomain {
				what = "NXDOMAIN"
			}
			z.violate("empty", x.At, "%s answered %s while %s were healthy and reachable", hostName(a), what, setNames(exp, z.n))
		}
	}
	if x.Set&UnknownBit != 0 {
		z.m.Wrong++
		z.violate("wrong", x.At, "%s answered an address of no host", hostName(a))
	}
	for h := range z.n {
		p := &z.ans[a][h]
		p.answered = true
		in := x.Set&(1<<h) != 0
		switch {
		case p.expected && p.event > 0 && in:
			if !p.hit {
				p.hit, p.hitAt = true, x.At
			}
		case p.expected && p.event > 0 && !in:
			p.hit = false
		case p.expected && !in && x.Kind == KindOK:
			z.m.Missing++
			z.violate("missing", x.At, "%s left out %s, which is healthy and reachable", hostName(a), hostName(h))
		case !p.expected && in:
			if p.event == 0 { // unexpected from the start: wrong at once
				z.m.Wrong++
				z.violate("wrong", x.At, "%s answered %s, which was never expected", hostName(a), hostName(h))
				continue
			}
			em := &z.m.Events[p.event]
			bound := z.b.Detect
			if p.isolated {
				em.IsolatedDetection = max(em.IsolatedDetection, x.At-p.since)
				bound = z.b.Isolated
			} else {
				em.Detection = max(em.Detection, x.At-p.since)
			}
			if x.At > p.since+bound {
				z.m.Wrong++
				z.violate("wrong", x.At, "%s still answered %s %.1fs after %q", hostName(a), hostName(h), (x.At - p.since).Seconds(), z.events[p.event].Label)
			}
		}
	}
}

func (z *analyzer) view(v MemberView) {
	z.advance(v.At)
	a := int(v.Observer)
	if a >= z.n || z.st.Down&(1<<a) != 0 {
		return
	}
	for h := range min(z.n, len(v.Status)) {
		if h == a {
			continue
		}
		q := &z.mem[a][h]
		alive := v.Status[h] == MemberAlive
		switch {
		case q.reach && alive:
			q.seenOK, q.failing = true, false
		case q.reach && !alive && q.seenOK && !q.failing:
			q.failing = true
			z.m.FalseFailures++
			z.violate("false failure", v.At, "%s listed %s as %s though it runs and is reachable", hostName(a), hostName(h), MemberName(v.Status[h]))
		case !q.reach && !alive && !q.detected && q.event > 0:
			q.detected = true
			em := &z.m.Events[q.event]
			em.MemberDetection = max(em.MemberDetection, v.At-q.since)
		}
	}
}

func (z *analyzer) finish() Metrics {
	m := &z.m
	for i := range m.Events {
		em := &m.Events[i]
		if i == 0 {
			continue
		}
		if em.removed == 0 {
			em.Detection = -1
		} else if em.Detection < 0 {
			em.Detection = 0 // no answer held a removed instance after the fault
		}
		if em.isolatedRemoved == 0 {
			em.IsolatedDetection = -1
		} else if em.IsolatedDetection < 0 {
			em.IsolatedDetection = 0
		}
		if em.added == 0 {
			em.Recovery = -1
		}
		m.Detection = max(m.Detection, em.Detection)
		m.IsolatedDetection = max(m.IsolatedDetection, em.IsolatedDetection)
		m.MemberDetection = max(m.MemberDetection, em.MemberDetection)
		m.Recovery = max(m.Recovery, em.Recovery)
	}
	return *m
}

// settle closes the recovery of pair (a, h) before an event changes it
// or at the end: the recovery lasted until the start of the last run of
// answers holding the instance; with no such run it never recovered.
func (z *analyzer) settle(a, h int) {
	p := z.ans[a][h]
	if !p.expected || p.event == 0 {
		return
	}
	em := &z.m.Events[p.event]
	if p.hit {
		em.Recovery = max(em.Recovery, p.hitAt-p.since)
		return
	}
	if !p.answered {
		// The observer answered nothing before the next event changed
		// the pair (a restarted agent still in its DNS start-up gate
		// when the next fault came): nothing wrong was answered.
		return
	}
	s := hostName(a) + "->" + hostName(h)
	em.Unrecovered = append(em.Unrecovered, s)
	z.m.Unrecovered = append(z.m.Unrecovered, s)
}

func hostName(i int) string { return fmt.Sprintf("h%d", i+1) }

// setNames lists the hosts in set.
func setNames(set uint32, n int) string {
	s := ""
	for h := range n {
		if set&(1<<h) != 0 {
			if s != "" {
				s += ","
			}
			s += hostName(h)
		}
	}
	if s == "" {
		return "none"
	}
	return s
}

// count returns the number of instances in set (unknown addresses excluded).
func count(set uint32) int { return bits.OnesCount32(set &^ UnknownBit) }
