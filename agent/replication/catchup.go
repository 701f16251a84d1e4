package replication

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/chorusdns/chorus/catalog"
)

// Catching up after a join. A joining (or restarted) agent learns every
// record it lacks through one tree exchange with one alive peer, which
// pulls them in jobs of maxPullNames nodes, rather than through one pull
// per member prompted by its member events (N − 1 pull streams per join,
// N² for a cluster forming at once). While that exchange is due, Observe
// schedules no pulls; once it has completed, CatchUp reports what it
// found newer until every such record is held, which is what the DNS
// start-up gate waits for. An exchange that fails is tried with another
// random peer every anti-entropy round; after catchUpMax the agent stops
// waiting for it and Observe pulls again (the member list and the
// regular rounds repair what is left).
const catchUpMax = 10 * time.Second

// catchUp is the state of the current catch-up; guarded by Syncer.mu.
type catchUp struct {
	active   bool      // Begin was called and the catch-up has not ended
	since    time.Time // when Begin was called
	inflight bool      // an exchange for it is queued or running
	done     bool      // an exchange completed; target is what it found
	target   map[string]uint64
}

// exchangeReq is a tree exchange to run with addr; catchUp marks the one
// a join asked for.
type exchangeReq struct {
	addr    string
	catchUp bool
}

// BeginCatchUp starts a catch-up: call it before joining, so that the
// member events the join brings schedule no pulls of their own. Kick
// (after the join succeeded) runs its exchange; EndCatchUp cancels it
// when the join reached no one.
func (s *Syncer) BeginCatchUp() {
	s.mu.Lock()
	s.catch = catchUp{active: true, since: time.Now()}
	s.mu.Unlock()
}

// EndCatchUp cancels a catch-up whose join reached no member.
func (s *Syncer) EndCatchUp() {
	s.mu.Lock()
	if !s.catch.done {
		s.catch = catchUp{}
	}
	s.mu.Unlock()
}

// CatchUp returns "" when the catch-up's exchange has completed and every
// record it found newer at the peer is held (or no catch-up was begun),
// else what is still missing.
func (s *Syncer) CatchUp() string {
	s.mu.Lock()
	c := s.catch
	s.mu.Unlock()
	switch {
	case !c.active && !c.done:
		return ""
	case !c.done:
		return "no catch-up exchange with a peer has completed yet"
	}
	var lag []string
	for n, v := range c.target {
		if s.store.Version(n) < v {
			lag = append(lag, n)
		}
	}
	if len(lag) == 0 {
		return ""
	}
	sort.Strings(lag)
	return fmt.Sprintf("%d records found newer at the catch-up exchange not applied yet (first %s)", len(lag), lag[0])
}

// catchingUp reports whether a catch-up's exchange is still due, so that
// member events need not pull.
func (s *Syncer) catchingUp() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.catch.active && !s.catch.done && time.Since(s.catch.since) < catchUpMax
}

// queueCatchUp queues the catch-up exchange with a random alive peer,
// unless none is due or one is already queued or running.
func (s *Syncer) queueCatchUp() {
	s.mu.Lock()
	c := &s.catch
	if !c.active || c.done || c.inflight {
		s.mu.Unlock()
		return
	}
	if time.Since(c.since) >= catchUpMax {
		c.active = false
		s.mu.Unlock()
		s.logger.Warn("no catch-up exchange completed; member events and anti-entropy repair the catalog instead", "after", catchUpMax)
		return
	}
	c.inflight = true
	s.mu.Unlock()
	var peers []Member
	for _, m := range s.members.Members() {
		if m.Name != s.self && m.Status == catalog.MemberAlive {
			peers = append(peers, m)
		}
	}
	if len(peers) > 0 {
		select {
		case s.exchangeCh <- exchangeReq{addr: peers[rand.N(len(peers))].Addr, catchUp: true}:
			return
		default:
		}
	}
	s.mu.Lock()
	c.inflight = false
	s.mu.Unlock()
}

// caughtUp records the outcome of a catch-up exchange: err nil with the
// entries the peer held newer, or the error (the next round tries another
// peer).
func (s *Syncer) caughtUp(newer []vecEntry, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.catch
	c.inflight = false
	if err != nil || !c.active || c.done {
		return
	}
	c.done = true
	c.target = make(map[string]uint64, len(newer))
	for _, e := range newer {
		c.target[e.Name] = e.Version
	}
}

// runExchange runs one queued tree exchange.
func (s *Syncer) runExchange(ctx context.Context, req exchangeReq) {
	newer, err := s.exchangeTree(ctx, req.addr)
	if err != nil {
		s.logger.Debug("tree exchange", "with", req.addr, "catch_up", req.catchUp, "err", err)
	}
	if req.catchUp {
		s.caughtUp(newer, err)
	}
}
