package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/agent"
	"github.com/chorusdns/chorus/agent/gossip"
	"github.com/chorusdns/chorus/catalog"
)

// cluster is a set of in-process agents on 127.0.0.1, each with its own
// data dir and free ports, joined into one gossip pool.
type cluster struct {
	o       *options
	label   string
	root    string
	rec     *recorder
	profile string
	gossip  gossip.Tuning
	live    []*agent.Agent
	seq     int
	started time.Time
}

func newCluster(o *options, label, profile string, g gossip.Tuning, out *syncWriter) (*cluster, error) {
	root, err := os.MkdirTemp("", "clusterbench-")
	if err != nil {
		return nil, err
	}
	out.printf("=== cluster %s (profile %s, gossip overrides %+v)\n", label, profile, g)
	return &cluster{o: o, label: label, root: root, rec: newRecorder(out), profile: profile, gossip: g, started: time.Now()}, nil
}

// add starts one more agent and joins it to up to three random members.
func (c *cluster) add() (*agent.Agent, error) {
	name := fmt.Sprintf("n%03d", c.seq)
	c.seq++
	cfg := agent.DefaultConfig()
	cfg.NodeName = name
	cfg.DataDir = filepath.Join(c.root, name)
	cfg.Bind, cfg.Client = "127.0.0.1", "127.0.0.1"
	cfg.HTTPPort, cfg.DNSPort, cfg.SerfPort = 0, 0, 0
	cfg.GossipProfile = c.profile
	cfg.Gossip = c.gossip
	cfg.LogLevel = "info"
	a, err := agent.New(cfg, c.rec.logger(name), prometheus.NewRegistry())
	if err != nil {
		return nil, fmt.Errorf("new agent %s: %w", name, err)
	}
	if err := a.Start(); err != nil {
		return nil, fmt.Errorf("start agent %s: %w", name, err)
	}
	if len(c.live) > 0 {
		var seeds []string
		for _, i := range rand.Perm(len(c.live))[:min(3, len(c.live))] {
			seeds = append(seeds, c.live[i].SerfAddr())
		}
		if _, err := a.Join(seeds); err != nil {
			a.Kill()
			return nil, fmt.Errorf("join %s: %w", name, err)
		}
	}
	c.live = append(c.live, a)
	return a, nil
}

// grow starts n more agents, in batches of -batch; after each batch but
// the last it waits for the cluster to converge, as a rolling start would.
func (c *cluster) grow(n int) error {
	target := len(c.live) + n
	for len(c.live) < target {
		for range min(c.o.batch, target-len(c.live)) {
			if _, err := c.add(); err != nil {
				return err
			}
		}
		if len(c.live) < target {
			d, err := c.waitConverged(c.o.convergeTimeout)
			if err != nil {
				return fmt.Errorf("at %d agents: %w", len(c.live), err)
			}
			progress("  %d/%d agents started, converged in %s", len(c.live), target, fmtDur(d))
		}
	}
	return nil
}

// convergence reports how far the live agents are from agreeing: the
// number of agents whose catalog does not show every live agent alive at
// its current version (or shows a dead one alive), and the worst view.
func (c *cluster) convergence() (lagging int, worst string) {
	want := make(map[string]uint64, len(c.live))
	for _, a := range c.live {
		want[a.NodeName()] = a.Store().Version(a.NodeName())
	}
	minSeen := len(c.live) + 1
	for _, a := range c.live {
		snap := a.Store().Snapshot()
		alive, ok := 0, 0
		for _, n := range snap.Nodes() {
			if n.Status != catalog.MemberAlive {
				continue
			}
			alive++
			if v, live := want[n.Node.Name]; live && n.Version >= v {
				ok++
			}
		}
		if alive != len(c.live) || ok != len(c.live) {
			lagging++
			if ok < minSeen {
				minSeen = ok
				worst = fmt.Sprintf("%s sees %d alive, %d of %d live agents current%s", a.NodeName(), alive, ok, len(c.live), missing(a, snap, want))
			}
		}
	}
	return lagging, worst
}

// waitConverged waits until every live agent sees every live agent alive
// with its current record, and no dead agent alive.
func (c *cluster) waitConverged(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		lagging, worst := c.convergence()
		if lagging == 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("not converged after %s: %d of %d agents lag; worst: %s",
				timeout, lagging, len(c.live), worst)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill crashes a (no leave) and returns how long Kill took; the agent's
// gossip socket is closed when it returns.
func (c *cluster) kill(a *agent.Agent) time.Duration {
	c.rec.markKilled(a.NodeName())
	c.live = slices.DeleteFunc(c.live, func(x *agent.Agent) bool { return x == a })
	start := time.Now()
	a.Kill()
	return time.Since(start)
}

// close stops every agent and removes the data dirs.
func (c *cluster) close() {
	c.rec.stop()
	var wg sync.WaitGroup
	for _, a := range c.live {
		wg.Go(a.Kill)
	}
	wg.Wait()
	c.live = nil
	os.RemoveAll(c.root)
}

// others returns the live agents except a.
func (c *cluster) others(a *agent.Agent) []*agent.Agent {
	return slices.DeleteFunc(slices.Clone(c.live), func(x *agent.Agent) bool { return x == a })
}

// gossipSent returns the UDP bytes the live agents have sent.
func (c *cluster) gossipSent() uint64 {
	var sum uint64
	for _, a := range c.live {
		s, _ := a.GossipBytes()
		sum += s
	}
	return sum
}

// watchSet follows the DNS answers of several agents in parallel until a
// condition holds on each.
type watchSet struct {
	times []time.Time // when each agent first met the condition; zero if never
	errs  []int       // failed queries per agent
	wg    sync.WaitGroup
}

// watch starts one goroutine per target that queries qname (SRV) on the
// target's DNS server until cond holds for the ports answered, and records
// when it first did. It queries at once, then every poll interval and, in
// watch mode, as soon as the target's catalog changes (DNS answers are
// built from the catalog snapshot, so no change can be missed). watch
// returns after every goroutine's first query has been answered, so the
// caller may then trigger the event being timed.
func (c *cluster) watch(ctx context.Context, targets []*agent.Agent, qname string, cond func(ports []uint16) bool) *watchSet {
	w := &watchSet{times: make([]time.Time, len(targets)), errs: make([]int, len(targets))}
	var ready sync.WaitGroup
	ready.Add(len(targets))
	for i, a := range targets {
		w.wg.Go(func() {
			readyOnce := sync.OnceFunc(ready.Done)
			defer readyOnce()
			w.times[i], w.errs[i] = c.watchOne(ctx, a, qname, cond, readyOnce)
		})
	}
	ready.Wait()
	return w
}

func (c *cluster) watchOne(ctx context.Context, a *agent.Agent, qname string, cond func([]uint16) bool, ready func()) (time.Time, int) {
	client := &dns.Client{Net: "udp", Timeout: time.Second}
	var conn *dns.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	ticker := time.NewTicker(c.o.poll)
	defer ticker.Stop()
	errs := 0
	for {
		var changed <-chan struct{}
		if c.o.watch {
			changed = a.Store().Snapshot().Changed()
		}
		if conn == nil {
			nc, err := net.Dial("udp", a.DNSAddr())
			if err == nil {
				conn = &dns.Conn{Conn: nc}
			}
		}
		if conn != nil {
			ports, err := srvPorts(client, conn, qname)
			if err == nil && cond(ports) {
				return time.Now(), errs
			}
			if err != nil {
				errs++
				conn.Close()
				conn = nil
			}
		}
		ready()
		select {
		case <-ctx.Done():
			return time.Time{}, errs
		case <-changed:
		case <-ticker.C:
		}
	}
}

// wait returns when every watcher has finished.
func (w *watchSet) wait() []time.Time {
	w.wg.Wait()
	return w.times
}

// latest returns the latest time, relative to t0 (negative clamps to 0),
// and how many watchers never met their condition.
func latest(times []time.Time, t0 time.Time) (time.Duration, int) {
	var last time.Duration
	missing := 0
	for _, t := range times {
		if t.IsZero() {
			missing++
			continue
		}
		last = max(last, t.Sub(t0))
	}
	return last, missing
}

var errRcode = errors.New("unexpected rcode")

// srvPorts asks for qname's SRV records and returns their ports.
func srvPorts(client *dns.Client, conn *dns.Conn, qname string) ([]uint16, error) {
	m := new(dns.Msg)
	m.SetQuestion(qname, dns.TypeSRV)
	r, _, err := client.ExchangeWithConn(m, conn)
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("%w %s", errRcode, dns.RcodeToString[r.Rcode])
	}
	var ports []uint16
	for _, rr := range r.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			ports = append(ports, srv.Port)
		}
	}
	return ports, nil
}

func hasPort(p uint16) func([]uint16) bool {
	return func(ports []uint16) bool { return slices.Contains(ports, p) }
}

func lacksPort(p uint16) func([]uint16) bool {
	return func(ports []uint16) bool { return !slices.Contains(ports, p) }
}

func serviceQname(svc string) string { return svc + ".service.chorus." }

// missing describes, for a lagging agent, the live agents its catalog does
// not show alive and current, with what its Serf says of them.
func missing(a *agent.Agent, snap *catalog.Snapshot, want map[string]uint64) string {
	serfSays := map[string]string{}
	for _, m := range a.Gossip().Members() {
		serfSays[m.Name] = fmt.Sprintf("%s, v tag %d", m.Status, m.Version)
	}
	var out []string
	for name, v := range want {
		n, ok := snap.Node(name)
		if ok && n.Status == catalog.MemberAlive && n.Version >= v {
			continue
		}
		s := serfSays[name]
		if s == "" {
			s = "unknown to Serf"
		}
		if ok {
			out = append(out, fmt.Sprintf("%s (catalog: status %d, version %d of %d; Serf: %s)", name, n.Status, n.Version, v, s))
		} else {
			out = append(out, fmt.Sprintf("%s (not in the catalog; Serf: %s)", name, s))
		}
		if len(out) == 3 {
			break
		}
	}
	if len(out) == 0 {
		return ""
	}
	return ": " + strings.Join(out, "; ")
}
