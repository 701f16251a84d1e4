package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// Scenario is one fault story: faults and repairs applied from outside
// the agents through a Script.
type Scenario struct {
	Name  string // short, used in file names: "crash"
	Title string // one line for the report
	Run   func(ctx context.Context, s *Script) error
}

// Timings are how long scenarios hold their faults.
type Timings struct {
	Settle    time.Duration // steady state recorded before the first fault
	Hold      time.Duration // crash, hang, check failure
	Partition time.Duration
	Loss      time.Duration
	After     time.Duration // recorded after convergence
}

// FullTimings are the timings of `make chaos`; ShortTimings of CI.
var (
	FullTimings  = Timings{Settle: 3 * time.Second, Hold: 12 * time.Second, Partition: 15 * time.Second, Loss: 30 * time.Second, After: 3 * time.Second}
	ShortTimings = Timings{Settle: 2 * time.Second, Hold: 8 * time.Second, Partition: 10 * time.Second, Loss: 15 * time.Second, After: 2 * time.Second}
)

// Script is a scenario's handle on the cluster: it applies each fault or
// repair and records it as an Event with the state it leaves.
type Script struct {
	C       *Cluster
	T       Timings
	log     *slog.Logger
	mu      sync.Mutex
	state   State
	events  []Event
	settled func(ctx context.Context) error
}

// Fault applies act and records it as a fault that leaves the state
// change makes. The event's time is taken just before act.
func (s *Script) Fault(label string, change func(*State), act func() error) error {
	return s.step(label, true, change, act)
}

// Repair is Fault for an action that undoes a fault.
func (s *Script) Repair(label string, change func(*State), act func() error) error {
	return s.step(label, false, change, act)
}

func (s *Script) step(label string, fault bool, change func(*State), act func() error) error {
	at := s.C.Now()
	s.log.Info("event", "label", label, "fault", fault)
	err := act()
	s.mu.Lock()
	next := s.state
	change(&next)
	s.state = next
	s.events = append(s.events, Event{At: at, Label: label, Fault: fault, State: next})
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	return nil
}

// Hold waits d (or until ctx ends).
func (s *Script) Hold(ctx context.Context, d time.Duration) error { return sleep(ctx, d) }

// WaitSettled waits until the cluster has converged again (every agent
// alive in every member list, identical catalogs, every demo passing).
func (s *Script) WaitSettled(ctx context.Context) error { return s.settled(ctx) }

// Events returns the recorded events.
func (s *Script) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

func down(h int) func(*State)    { return func(s *State) { s.Down |= 1 << h } }
func up(h int) func(*State)      { return func(s *State) { s.Down &^= 1 << h } }
func svcDown(h int) func(*State) { return func(s *State) { s.SvcDown |= 1 << h } }
func svcUp(h int) func(*State)   { return func(s *State) { s.SvcDown &^= 1 << h } }
func same(*State)                {}

// split puts each group of hosts in its own partition group.
func split(groups ...[]int) func(*State) {
	return func(s *State) {
		s.Group = [MaxHosts]uint8{}
		for g, hs := range groups {
			for _, h := range hs {
				s.Group[h] = uint8(g + 1)
			}
		}
	}
}

func healed(s *State) { s.Group = [MaxHosts]uint8{} }

// Scenarios returns every scenario for a cluster of n hosts (n ≥ 5 keeps
// the host choices below distinct; smaller clusters reuse hosts).
func Scenarios(n int) []Scenario {
	h := func(i int) int { return i % n }
	name := func(i int) string { return hostName(h(i)) }
	minority := []int{h(0), h(1)}
	var majority []int
	for i := 2; i < n; i++ {
		majority = append(majority, i)
	}
	var others []int
	for i := range n - 1 {
		others = append(others, i)
	}
	impairment := Impairment{Loss: 0.2, Delay: 50 * time.Millisecond}

	return []Scenario{
		{
			Name:  "crash",
			Title: fmt.Sprintf("SIGKILL the agent on %s; restart it with the same data dir after the hold", name(1)),
			Run: func(ctx context.Context, s *Script) error {
				if err := s.Fault("SIGKILL "+name(1), down(h(1)), func() error { return s.C.KillAgent(h(1)) }); err != nil {
					return err
				}
				if err := s.Hold(ctx, s.T.Hold); err != nil {
					return err
				}
				return s.Repair("restart "+name(1), up(h(1)), func() error { return s.C.StartAgent(h(1)) })
			},
		},
		{
			Name:  "hang",
			Title: fmt.Sprintf("SIGSTOP the agent on %s; SIGCONT after the hold", name(2)),
			Run: func(ctx context.Context, s *Script) error {
				if err := s.Fault("SIGSTOP "+name(2), down(h(2)), func() error { return s.C.SignalAgent(h(2), syscall.SIGSTOP) }); err != nil {
					return err
				}
				if err := s.Hold(ctx, s.T.Hold); err != nil {
					return err
				}
				return s.Repair("SIGCONT "+name(2), up(h(2)), func() error { return s.C.SignalAgent(h(2), syscall.SIGCONT) })
			},
		},
		{
			Name:  "restart",
			Title: fmt.Sprintf("SIGTERM the agent on %s (graceful leave), start it again at once with the same data dir", name(3)),
			Run: func(ctx context.Context, s *Script) error {
				if err := s.Fault("SIGTERM "+name(3), down(h(3)), func() error { return s.C.TerminateAgent(h(3)) }); err != nil {
					return err
				}
				return s.Repair("start "+name(3), up(h(3)), func() error { return s.C.StartAgent(h(3)) })
			},
		},
		{
			Name:  "rolling-restart",
			Title: "SIGTERM and restart every agent in turn, waiting for the cluster to converge before the next",
			Run: func(ctx context.Context, s *Script) error {
				for i := range n {
					if err := s.Fault("SIGTERM "+hostName(i), down(i), func() error { return s.C.TerminateAgent(i) }); err != nil {
						return err
					}
					if err := s.Repair("start "+hostName(i), up(i), func() error { return s.C.StartAgent(i) }); err != nil {
						return err
					}
					if err := s.WaitSettled(ctx); err != nil {
						return fmt.Errorf("after restarting %s: %w", hostName(i), err)
					}
				}
				return nil
			},
		},
		{
			Name:  "partition-one",
			Title: fmt.Sprintf("cut %s off from every other agent (iptables DROP both ways), heal after the hold", name(n-1)),
			Run: func(ctx context.Context, s *Script) error {
				cut := []int{h(n - 1)}
				if err := s.Fault("cut off "+name(n-1), split(cut, others), func() error { return s.C.Net().Partition(ctx, cut, others) }); err != nil {
					return err
				}
				if err := s.Hold(ctx, s.T.Partition); err != nil {
					return err
				}
				return s.Repair("heal", healed, func() error { return s.C.Net().Heal(ctx) })
			},
		},
		{
			Name:  "partition-2-3",
			Title: fmt.Sprintf("split the cluster %s | %s, heal after the hold", setNames(bitsOf(minority), n), setNames(bitsOf(majority), n)),
			Run: func(ctx context.Context, s *Script) error {
				label := fmt.Sprintf("split %s|%s", setNames(bitsOf(minority), n), setNames(bitsOf(majority), n))
				if err := s.Fault(label, split(minority, majority), func() error { return s.C.Net().Partition(ctx, minority, majority) }); err != nil {
					return err
				}
				if err := s.Hold(ctx, s.T.Partition); err != nil {
					return err
				}
				return s.Repair("heal", healed, func() error { return s.C.Net().Heal(ctx) })
			},
		},
		{
			Name:  "loss-delay",
			Title: fmt.Sprintf("20%% loss and 50 ms delay on everything %s sends to other agents, for the hold", name(2)),
			Run: func(ctx context.Context, s *Script) error {
				if err := s.Fault(name(2)+" 20% loss 50ms delay", same, func() error { return s.C.Net().Impair(ctx, h(2), impairment) }); err != nil {
					return err
				}
				if err := s.Hold(ctx, s.T.Loss); err != nil {
					return err
				}
				return s.Repair("clear "+name(2), same, func() error { return s.C.Net().Impair(ctx, h(2), Impairment{}) })
			},
		},
		{
			Name:  "loss-delay-all",
			Title: "20% loss and 50 ms delay on everything every agent sends to the others, for the hold",
			Run: func(ctx context.Context, s *Script) error {
				err := s.Fault("all 20% loss 50ms delay", same, func() error {
					for i := range n {
						if err := s.C.Net().Impair(ctx, i, impairment); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					return err
				}
				if err := s.Hold(ctx, s.T.Loss); err != nil {
					return err
				}
				return s.Repair("clear all", same, func() error {
					for i := range n {
						if err := s.C.Net().Impair(ctx, i, Impairment{}); err != nil {
							return err
						}
					}
					return nil
				})
			},
		},
		{
			Name:  "check-fail",
			Title: fmt.Sprintf("SIGKILL the demo service on %s (its HTTP check fails; the agent runs on); restart it after the hold", name(0)),
			Run: func(ctx context.Context, s *Script) error {
				if err := s.Fault("kill demo on "+name(0), svcDown(h(0)), func() error { return s.C.KillDemo(h(0)) }); err != nil {
					return err
				}
				if err := s.Hold(ctx, s.T.Hold); err != nil {
					return err
				}
				return s.Repair("restart demo on "+name(0), svcUp(h(0)), func() error { return s.C.StartDemo(h(0)) })
			},
		},
	}
}

// ShortSet names the scenarios CI runs.
var ShortSet = []string{"crash", "partition-2-3", "loss-delay"}

func bitsOf(hs []int) uint32 {
	var b uint32
	for _, h := range hs {
		b |= 1 << h
	}
	return b
}
