package cluster

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Kind classifies one DNS query's outcome.
type Kind uint8

// Outcomes of a query.
const (
	KindOK       Kind = iota // NOERROR with at least one A record
	KindEmpty                // NOERROR and no A record
	KindNXDomain             // NXDOMAIN
	KindError                // any other rcode (SERVFAIL, REFUSED, …)
	KindTimeout              // no answer within the prober's timeout
)

// UnknownBit marks an answer that held an address of no host.
const UnknownBit = 1 << 31

// Answer is one query's outcome.
type Answer struct {
	At   time.Duration // when the answer arrived (for a timeout: when the query was sent), on the cluster clock
	RTT  time.Duration
	Host uint8  // the agent asked
	Kind Kind   // what it answered
	Set  uint32 // bit i: host i's demo instance was in the answer; UnknownBit: an unknown address
}

// MemberView is one agent's member list at one moment.
type MemberView struct {
	At       time.Duration
	Observer uint8
	Status   []uint8 // by host; see MemberAlive etc.
}

// Prober asks every agent for QName (type A) Rate times a second over UDP
// and records every outcome, and polls every agent's member list every
// MemberEvery. Records are kept in memory for the whole run.
type Prober struct {
	QName       string
	Rate        int // queries per second per agent
	Timeout     time.Duration
	MemberEvery time.Duration

	c       *Cluster
	mu      sync.Mutex
	answers []Answer
	members []MemberView
	lags    []Lag
	late    atomic.Int64
}

// Lag is how late a 20 ms timer fired in the harness: a measure of how
// starved of CPU the machine was (agents, prober and anything else on it).
type Lag struct {
	At  time.Duration
	Lag time.Duration
}

// NewProber returns a prober for c with the defaults: demo.service.chorus,
// 100 queries/s per agent, 1 s timeout, member lists every 250 ms.
func NewProber(c *Cluster) *Prober {
	return &Prober{QName: "demo.service.chorus.", Rate: 100, Timeout: time.Second, MemberEvery: 250 * time.Millisecond, c: c}
}

// Run probes until ctx ends and returns after its goroutines exit.
func (p *Prober) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make(chan error, 2*p.c.N())
	for i := range p.c.N() {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := p.probeDNS(ctx, i); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			p.pollMembers(ctx, i)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.measureLag(ctx)
	}()
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// Late returns how many answers arrived after their query had timed out
// (for example queries queued in a stopped agent's socket, answered when
// it resumed); they are not recorded.
func (p *Prober) Late() int64 { return p.late.Load() }

// Answers returns the recorded answers with from <= At < to, by time.
func (p *Prober) Answers(from, to time.Duration) []Answer {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Answer
	for _, a := range p.answers {
		if a.At >= from && a.At < to {
			out = append(out, a)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// MaxLag returns the largest timer lag recorded with from <= At < to.
func (p *Prober) MaxLag(from, to time.Duration) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var m time.Duration
	for _, l := range p.lags {
		if l.At >= from && l.At < to {
			m = max(m, l.Lag)
		}
	}
	return m
}

// measureLag records how late a 20 ms sleep wakes up, when it is more
// than 5 ms late.
func (p *Prober) measureLag(ctx context.Context) {
	const every = 20 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		if sleep(ctx, every) != nil {
			return
		}
		if lag := time.Since(start) - every; lag > 5*time.Millisecond {
			p.mu.Lock()
			p.lags = append(p.lags, Lag{At: p.c.Now(), Lag: lag})
			p.mu.Unlock()
		}
	}
}

// Members returns the recorded member views with from <= At < to, by time.
func (p *Prober) Members(from, to time.Duration) []MemberView {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []MemberView
	for _, m := range p.members {
		if m.At >= from && m.At < to {
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

func (p *Prober) record(a Answer) {
	p.mu.Lock()
	p.answers = append(p.answers, a)
	p.mu.Unlock()
}

// probeDNS sends queries to host i at the prober's rate from one UDP
// socket and matches the answers by ID.
func (p *Prober) probeDNS(ctx context.Context, i int) error {
	raddr, err := net.ResolveUDPAddr("udp", p.c.DNSAddr(i))
	if err != nil {
		return err
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return err
	}
	defer conn.Close()

	var mu sync.Mutex
	pending := map[uint16]time.Duration{} // ID → sent at
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 4096)
		for ctx.Err() == nil {
			_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, err := conn.Read(buf)
			if err != nil {
				continue // deadline, or ICMP unreachable while the agent is down
			}
			at := p.c.Now()
			m := new(dns.Msg)
			if m.Unpack(buf[:n]) != nil {
				continue
			}
			mu.Lock()
			sent, ok := pending[m.Id]
			delete(pending, m.Id)
			mu.Unlock()
			if !ok {
				p.late.Add(1)
				continue
			}
			p.record(Answer{At: at, RTT: at - sent, Host: uint8(i), Kind: kindOf(m), Set: p.instances(m)})
		}
	}()

	tick := time.NewTicker(time.Second / time.Duration(p.Rate))
	defer tick.Stop()
	var id uint16
	q := new(dns.Msg)
	q.SetQuestion(p.QName, dns.TypeA)
	q.RecursionDesired = false
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-tick.C:
		}
		now := p.c.Now()
		mu.Lock()
		for qid, sent := range pending {
			if now-sent >= p.Timeout {
				delete(pending, qid)
				p.record(Answer{At: sent, RTT: p.Timeout, Host: uint8(i), Kind: KindTimeout})
			}
		}
		id++
		q.Id = id
		pending[id] = now
		mu.Unlock()
		b, err := q.Pack()
		if err != nil {
			return err
		}
		_, _ = conn.Write(b) // a refused write shows up as a timeout
	}
}

func kindOf(m *dns.Msg) Kind {
	switch m.Rcode {
	case dns.RcodeSuccess:
		for _, rr := range m.Answer {
			if _, ok := rr.(*dns.A); ok {
				return KindOK
			}
		}
		return KindEmpty
	case dns.RcodeNameError:
		return KindNXDomain
	}
	return KindError
}

// instances maps the A records of m onto host bits.
func (p *Prober) instances(m *dns.Msg) uint32 {
	var set uint32
	for _, rr := range m.Answer {
		a, ok := rr.(*dns.A)
		if !ok {
			continue
		}
		addr, _ := netip.AddrFromSlice(a.A.To4())
		if j := p.c.AddrIndex(addr); j >= 0 {
			set |= 1 << j
		} else {
			set |= UnknownBit
		}
	}
	return set
}

// pollMembers records host i's member list every MemberEvery.
func (p *Prober) pollMembers(ctx context.Context, i int) {
	tick := time.NewTicker(p.MemberEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		st, err := p.c.Members(ctx, i)
		if err != nil {
			continue
		}
		at := p.c.Now()
		p.mu.Lock()
		p.members = append(p.members, MemberView{At: at, Observer: uint8(i), Status: st})
		p.mu.Unlock()
	}
}
