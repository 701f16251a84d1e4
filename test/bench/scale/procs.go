package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Fixed ports: every agent has its own loopback address, so all agents
// use the same three.
const (
	gossipPort = 8301
	httpPort   = 8500
	dnsPort    = 8600
)

// addrOf is agent i's loopback address: 127.1.x.y with y in 1..250, so
// up to 64,000 agents (the whole 127/8 is routed to lo on Linux).
func addrOf(i int) string { return fmt.Sprintf("127.1.%d.%d", i/250, i%250+1) }

// nameOf is agent i's node name.
func nameOf(i int) string { return fmt.Sprintf("a%04d", i) }

// kind is what the harness runs: Chorus agents or bare Serf agents.
type kind string

const (
	kindChorus kind = "chorus"
	kindSerf   kind = "serf"
)

// proc is one agent process. Only the harness's main goroutine and the
// scenario that owns the process change it.
type proc struct {
	i       int
	name    string
	addr    string
	dataDir string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	dead    bool          // killed for good (a crash victim)
}

// cluster is a set of agent processes of one kind.
type cluster struct {
	kind    kind
	bin     string // the chorus or serfagent binary
	dir     string // data dirs and logs
	config  string // chorus: the shared config file
	seeds   []string
	procs   []*proc
	verbose bool
	gossip  gossipFlags
}

// gossipFlags override the lan profile's memberlist timings for both
// kinds of agent (zero: the profile's).
type gossipFlags struct {
	probeInterval, probeTimeout, gossipInterval     time.Duration
	suspicionMult, suspicionMaxMult, retransmitMult int
}

// chorusJSON is the agent config's gossip object.
func (g gossipFlags) chorusJSON() string {
	var parts []string
	if g.probeInterval > 0 {
		parts = append(parts, fmt.Sprintf(`"probe_interval": %q`, g.probeInterval))
	}
	if g.probeTimeout > 0 {
		parts = append(parts, fmt.Sprintf(`"probe_timeout": %q`, g.probeTimeout))
	}
	if g.gossipInterval > 0 {
		parts = append(parts, fmt.Sprintf(`"gossip_interval": %q`, g.gossipInterval))
	}
	for _, kv := range []struct {
		key string
		v   int
	}{{"suspicion_mult", g.suspicionMult}, {"suspicion_max_timeout_mult", g.suspicionMaxMult}, {"retransmit_mult", g.retransmitMult}} {
		if kv.v > 0 {
			parts = append(parts, fmt.Sprintf(`%q: %d`, kv.key, kv.v))
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// serfArgs are serfagent's flags for the same overrides.
func (g gossipFlags) serfArgs() []string {
	var a []string
	if g.probeInterval > 0 {
		a = append(a, "-probe-interval", g.probeInterval.String())
	}
	if g.probeTimeout > 0 {
		a = append(a, "-probe-timeout", g.probeTimeout.String())
	}
	if g.gossipInterval > 0 {
		a = append(a, "-gossip-interval", g.gossipInterval.String())
	}
	for _, kv := range []struct {
		flag string
		v    int
	}{{"-suspicion-mult", g.suspicionMult}, {"-suspicion-max-timeout-mult", g.suspicionMaxMult}, {"-retransmit-mult", g.retransmitMult}} {
		if kv.v > 0 {
			a = append(a, kv.flag, strconv.Itoa(kv.v))
		}
	}
	return a
}

// newCluster prepares (but does not start) n agents in dir.
func newCluster(k kind, bin, dir string, n, seeds int, logLevel string, g gossipFlags) (*cluster, error) {
	c := &cluster{kind: k, bin: bin, dir: dir, gossip: g}
	for i := range min(seeds, n) {
		c.seeds = append(c.seeds, net.JoinHostPort(addrOf(i), strconv.Itoa(gossipPort)))
	}
	if k == kindChorus {
		// Every agent runs one instance of "web" from its config file,
		// so a healthy cluster answers web.service.chorus everywhere.
		c.config = filepath.Join(dir, "agent.json")
		cfg := fmt.Sprintf(`{"gossip_profile": "lan", "log_level": %q, "retry_interval": "1s",
  "gossip": %s, "service": {"name": "web", "port": 80}}`, logLevel, g.chorusJSON())
		if err := os.WriteFile(c.config, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
	}
	for i := range n {
		p := &proc{i: i, name: nameOf(i), addr: addrOf(i), dataDir: filepath.Join(dir, nameOf(i))}
		if err := os.MkdirAll(p.dataDir, 0o755); err != nil {
			return nil, err
		}
		c.procs = append(c.procs, p)
	}
	return c, nil
}

// start starts p's process (again, after a stop: same data dir).
func (c *cluster) start(p *proc) error {
	var joins []string
	for _, s := range c.seeds {
		if !strings.HasPrefix(s, p.addr+":") {
			joins = append(joins, s)
		}
	}
	var args []string
	switch c.kind {
	case kindChorus:
		args = []string{"agent", "--config-file", c.config, "--data-dir", p.dataDir, "--node", p.name,
			"--bind", p.addr, "--client", p.addr}
		for _, j := range joins {
			args = append(args, "--retry-join", j)
		}
	case kindSerf:
		args = []string{"-name", p.name, "-bind", p.addr, "-join", strings.Join(joins, ","),
			"-log", filepath.Join(p.dataDir, "serf.log")}
		args = append(args, c.gossip.serfArgs()...)
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	logf, err := os.OpenFile(filepath.Join(p.dataDir, "stderr.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.exited, p.dead = cmd, make(chan struct{}), false
	go func() {
		cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return nil
}

// startWaves starts every agent, wave agents every interval.
func (c *cluster) startWaves(wave int, interval time.Duration) error {
	for i, p := range c.procs {
		if i > 0 && i%wave == 0 {
			time.Sleep(interval)
		}
		if err := c.start(p); err != nil {
			return err
		}
	}
	return nil
}

// kill sends SIGKILL to p (a crash: no leave) and waits for it to exit.
func (c *cluster) kill(p *proc) {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.exited
	p.dead = true
}

// stop sends SIGTERM (a graceful leave) and waits up to grace before
// killing; it reports how p ended.
func (c *cluster) stop(p *proc, grace time.Duration) error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not exit within %v of SIGTERM", p.name, grace)
	}
}

// shutdown kills every process that still runs.
func (c *cluster) shutdown() {
	for _, p := range c.procs {
		if p.cmd != nil && p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
		}
	}
	for _, p := range c.procs {
		if p.cmd != nil {
			<-p.exited
		}
	}
}

// live returns the processes that run (not killed for good).
func (c *cluster) live() []*proc {
	var out []*proc
	for _, p := range c.procs {
		if !p.dead {
			out = append(out, p)
		}
	}
	return out
}

// procStat is what /proc/<pid>/stat says of a process.
type procStat struct {
	cpu time.Duration // user + system
	rss int64         // bytes
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat
// (100 on every Linux architecture Go supports).
const clockTick = 100

var errStat = errors.New("malformed /proc/<pid>/stat")

// parseStat reads utime, stime and rss from the text of /proc/<pid>/stat.
// The command name (field 2) is in parentheses and may hold spaces and
// parentheses itself, so fields are counted from the last ')'.
func parseStat(b []byte, pageSize int64) (procStat, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return procStat{}, errStat
	}
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state): utime is field 14, stime 15, rss 24.
	if len(f) < 22 {
		return procStat{}, errStat
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	rss, err3 := strconv.ParseInt(f[21], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || rss < 0 {
		return procStat{}, errStat
	}
	ticks := ut + st
	if ticks > uint64(1<<62)/uint64(time.Second/clockTick) {
		return procStat{}, errStat
	}
	return procStat{cpu: time.Duration(ticks) * (time.Second / clockTick), rss: rss * pageSize}, nil
}

// statOf reads p's /proc/<pid>/stat.
func statOf(p *proc) (procStat, error) {
	if p.cmd == nil || p.cmd.Process == nil {
		return procStat{}, fmt.Errorf("%s: not started", p.name)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b, int64(os.Getpagesize()))
}

// loadAvg returns the 1-minute load average, or -1.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}
