// Command clusterbench measures Chorus's leaderless catalog and health
// checks with clusters of in-process agents on 127.0.0.1 (issue 3 item 7,
// issue 4's targets):
//
//	(a) a registration on one agent → answered by DNS on every agent;
//	(b) a crash without leave (Kill) of an agent holding an instance →
//	    the instance gone from every other agent's DNS;
//	(c) the idle cost per agent: CPU, UDP and TCP bytes;
//	(d) false failures: members declared failed that nobody killed, over
//	    the whole run and in a pass with both cores kept busy by two
//	    burner processes;
//	(e) a failing HTTP check (interval 1 s) → the instance gone from every
//	    other agent's DNS.
//
// It prints Markdown tables (min/median/p90/p99/max; percentiles are
// nearest-rank, so p99 is the maximum below 100 samples).
//
// Run it with `go run ./test/bench/clusterbench` (or `make bench-cluster`).
// As root it re-executes itself in a private network namespace (unshare
// -n) so that the loopback counters count the cluster's traffic alone.
//
// Every agent's DNS is followed by a goroutine that queries it (SRV over
// UDP) at once, whenever that agent's catalog snapshot changes (answers
// are built from the snapshot, so no change is missed) and every -poll;
// -watch=false turns it into plain polling every -poll. Tight polling of
// 150 agents every few milliseconds would itself load both cores.
//
// Agents start in batches of -batch, the cluster converging after each.
// Before each cluster the program waits (up to -quiet-wait) until other
// processes use less than -quiet cores, and it reports the CPU they used
// in each phase: the machine may be shared.
//
// The agents' warnings and the scored gossip events (failure
// declarations, suspicions, refutations) go to the -log file.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chorusdns/chorus/agent/gossip"
)

func main() { os.Exit(run()) }

type options struct {
	sizes           []int
	rounds          int
	bigRounds       int
	crashes         int
	healthSizes     []int
	healthRounds    int
	settle, idle    time.Duration
	profile         string
	gossip          gossip.Tuning
	poll            time.Duration
	watch           bool
	scenarios       map[string]bool
	timeout         time.Duration
	convergeTimeout time.Duration
	loadSize        int
	loadBurners     int
	loadIdle        time.Duration
	loadRounds      int
	loadCrashes     int
	out             string
	logPath         string
	cpuProfileDir   string
	netns           bool
	privateNet      bool
	quiet           float64
	quietWait       time.Duration
	batch           int
}

func run() int {
	if os.Getenv(envBurn) == "1" {
		burn()
		return 0
	}
	var o options
	var sizes, healthSizes, scenarios string
	flag.StringVar(&sizes, "sizes", "3,10,50,150", "cluster sizes, comma-separated")
	flag.IntVar(&o.rounds, "rounds", 20, "(a) registration rounds per cluster of up to 50 agents")
	flag.IntVar(&o.bigRounds, "big-rounds", 10, "(a) registration rounds per cluster of more than 50 agents")
	flag.IntVar(&o.crashes, "crashes", 8, "(b) crashes per cluster (each victim is replaced)")
	flag.StringVar(&healthSizes, "health-sizes", "10,50", "(e) cluster sizes that run the HTTP check scenario")
	flag.IntVar(&o.healthRounds, "health-rounds", 20, "(e) check flips per cluster")
	flag.DurationVar(&o.settle, "settle", 35*time.Second, "(c) wait after the cluster converged before the idle window (past the agents' 30 s coordinate warm-up)")
	flag.DurationVar(&o.idle, "idle", 30*time.Second, "(c) idle window")
	flag.StringVar(&o.profile, "profile", "lan", "gossip profile: lan, wan or local")
	flag.DurationVar(&o.gossip.ProbeInterval, "probe-interval", 0, "override the profile's probe interval")
	flag.DurationVar(&o.gossip.ProbeTimeout, "probe-timeout", 0, "override the profile's probe timeout")
	flag.IntVar(&o.gossip.SuspicionMult, "suspicion-mult", 0, "override the profile's suspicion multiplier")
	flag.DurationVar(&o.gossip.GossipInterval, "gossip-interval", 0, "override the profile's gossip interval")
	flag.DurationVar(&o.gossip.PushPullInterval, "push-pull-interval", 0, "override the profile's push-pull interval")
	flag.DurationVar(&o.poll, "poll", 25*time.Millisecond, "DNS poll interval of each watcher")
	flag.BoolVar(&o.watch, "watch", true, "also query an agent's DNS whenever its catalog changes")
	flag.StringVar(&scenarios, "scenarios", "idle,register,health,crash", "scenarios per cluster size: idle, register, health, crash")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "deadline of each timed event")
	flag.DurationVar(&o.convergeTimeout, "converge-timeout", time.Minute, "deadline for a cluster to converge (after each batch of starts)")
	flag.IntVar(&o.batch, "batch", 25, "agents started at once before waiting for the cluster to converge")
	flag.IntVar(&o.loadSize, "load-size", 50, "(d) agents in the pass under CPU saturation (0 skips it)")
	flag.IntVar(&o.loadBurners, "load-burners", 2, "(d) busy-loop processes during the loaded pass")
	flag.DurationVar(&o.loadIdle, "load-idle", 30*time.Second, "(d) idle window of the loaded pass")
	flag.IntVar(&o.loadRounds, "load-rounds", 10, "(d) registration rounds in the loaded pass")
	flag.IntVar(&o.loadCrashes, "load-crashes", 4, "(d) crashes in the loaded pass")
	flag.StringVar(&o.out, "out", "", "also write the Markdown report to this file")
	flag.StringVar(&o.logPath, "log", "", "agents' warnings and gossip events (default: a file in the temp dir)")
	flag.StringVar(&o.cpuProfileDir, "cpuprofile-idle", "", "write a CPU profile of each idle window to this directory")
	flag.BoolVar(&o.netns, "netns", true, "as root, run in a private network namespace")
	flag.Float64Var(&o.quiet, "quiet", 0.3, "before each cluster, wait until other processes use fewer cores than this (0: do not wait)")
	flag.DurationVar(&o.quietWait, "quiet-wait", time.Minute, "longest wait for -quiet")
	flag.Parse()

	var err error
	if o.sizes, err = parseInts(sizes); err != nil {
		return usage("-sizes: %v", err)
	}
	if o.healthSizes, err = parseInts(healthSizes); err != nil {
		return usage("-health-sizes: %v", err)
	}
	o.scenarios = map[string]bool{}
	for _, s := range strings.Split(scenarios, ",") {
		switch s = strings.TrimSpace(s); s {
		case "idle", "register", "health", "crash":
			o.scenarios[s] = true
		case "":
		default:
			return usage("-scenarios: unknown scenario %q", s)
		}
	}
	if o.poll <= 0 {
		return usage("-poll must be positive")
	}
	if o.batch < 1 {
		return usage("-batch must be at least 1")
	}

	if os.Getenv(envNetns) == "1" {
		if err := loopbackUp(); err != nil {
			fmt.Fprintln(os.Stderr, "clusterbench:", err)
			return 1
		}
		o.privateNet = true
	} else if o.netns && os.Geteuid() == 0 {
		if path, err := exec.LookPath("unshare"); err == nil {
			return reexecInNetns(path)
		}
		progress("unshare not found: running in the shared network namespace (no IP byte counts)")
	}

	if o.logPath == "" {
		o.logPath = filepath.Join(os.TempDir(), fmt.Sprintf("clusterbench-%s.log", time.Now().Format("20060102-150405")))
	}
	lf, err := os.Create(o.logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "clusterbench:", err)
		return 1
	}
	defer lf.Close()
	logOut := &syncWriter{w: lf}
	if o.cpuProfileDir != "" {
		if err := os.MkdirAll(o.cpuProfileDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "clusterbench:", err)
			return 1
		}
	}
	progress("clusterbench: %d CPUs, GOMAXPROCS %d, %s, log %s", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), o.logPath)

	start := time.Now()
	var results []*sizeResult
	for _, n := range o.sizes {
		results = append(results, runSize(&o, n, false, logOut))
	}
	if o.loadSize > 0 {
		results = append(results, runSize(&o, o.loadSize, true, logOut))
	}
	report := renderReport(&o, results, time.Since(start))
	fmt.Print(report)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "clusterbench:", err)
			return 1
		}
	}
	return 0
}

// sizeResult holds everything measured on one cluster.
type sizeResult struct {
	n          int
	loaded     bool
	grow       time.Duration // starting the n agents
	converge   time.Duration // from the last start until all agree
	convergeOK bool
	formation  falseCounts // false failures until converged
	phases     []phaseLoad // CPU used by other processes, per phase
	reg        *regResult
	crash      *crashResult
	health     *healthResult
	idle       *idleResult
	falses     falseCounts
	elapsed    time.Duration
	errs       []string
	warnings   []string
}

// phaseLoad is how many cores other processes (burners included) kept
// busy while a phase ran.
type phaseLoad struct {
	name   string
	others float64
}

func (r *sizeResult) label() string {
	if r.loaded {
		return fmt.Sprintf("%d, both cores busy", r.n)
	}
	return strconv.Itoa(r.n)
}

// runSize builds a cluster of n agents and runs the scenarios on it; in
// the loaded pass, busy-loop processes compete for the CPU throughout.
func runSize(o *options, n int, loaded bool, logOut *syncWriter) *sizeResult {
	res := &sizeResult{n: n, loaded: loaded}
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		res.errs = append(res.errs, msg)
		progress("  error: %s", msg)
	}
	label := strconv.Itoa(n)
	if loaded {
		label += "-loaded"
	}
	if o.quiet > 0 {
		if bg := waitQuiet(o.quiet, o.quietWait); bg >= o.quiet {
			progress("other processes still use %.2f cores; going on", bg)
		}
	}
	if loaded {
		progress("cluster of %d agents under CPU load", n)
	} else {
		progress("cluster of %d agents", n)
	}
	started := time.Now()
	meter := startMeter()
	phase := func(name string) {
		res.phases = append(res.phases, phaseLoad{name, meter.others()})
		meter = startMeter()
	}
	c, err := newCluster(o, label, o.profile, o.gossip, logOut)
	if err != nil {
		fail("%v", err)
		return res
	}
	steady := c.started
	defer func() {
		res.falses = c.rec.falseBetween(steady, time.Now())
		res.warnings = c.rec.topWarnings(8)
		c.close()
		res.elapsed = time.Since(started)
		progress("  done in %s: %d false failures, %d false suspicions, %d refutations",
			res.elapsed.Round(time.Second), res.falses.failures, res.falses.suspicions, res.falses.refutes)
	}()
	growStart := time.Now()
	err = c.grow(n)
	res.grow = time.Since(growStart)
	if err == nil {
		res.converge, err = c.waitConverged(o.convergeTimeout)
		res.convergeOK = err == nil
	}
	res.formation = c.rec.falseBetween(c.started, time.Now())
	phase("formation")
	if err != nil {
		fail("%v", err)
		return res
	}
	progress("  %d agents started in %s, converged %s later (%d false failures, %d false suspicions meanwhile)",
		n, res.grow.Round(time.Millisecond), res.converge.Round(time.Millisecond), res.formation.failures, res.formation.suspicions)
	steady = time.Now()

	if loaded {
		bs, err := startBurners(o.loadBurners)
		if err != nil {
			fail("burners: %v", err)
			return res
		}
		defer stopBurners(bs)
		progress("  %d burner processes started", len(bs))
	}

	if o.scenarios["idle"] || loaded {
		settle, window := o.settle, o.idle
		if loaded {
			window = o.loadIdle
		}
		prof := ""
		if o.cpuProfileDir != "" {
			prof = filepath.Join(o.cpuProfileDir, fmt.Sprintf("idle-%s.pprof", label))
		}
		r, err := measureIdle(c, settle, window, prof)
		phase("idle")
		if err != nil {
			fail("idle: %v", err)
		} else {
			res.idle = &r
			progress("  idle: %.3f ms CPU/s, %.0f B/s UDP payload, %.0f B/s IP per agent", r.cpuMs, r.udpPayload, r.ipBytes)
		}
	}
	if o.scenarios["register"] || loaded {
		rounds := o.rounds
		if n > 50 {
			rounds = o.bigRounds
		}
		if loaded {
			rounds = o.loadRounds
		}
		r, err := measureRegister(c, rounds)
		phase("register")
		if err != nil {
			fail("register: %v", err)
		} else {
			res.reg = &r
			progress("  register → all DNS: median %s, p99 %s", fmtDur(r.last.p50), fmtDur(r.last.p99))
		}
	}
	if o.scenarios["health"] && !loaded && slices.Contains(o.healthSizes, n) {
		r, err := measureHealth(c, o.healthRounds)
		phase("health")
		if err != nil {
			fail("health: %v", err)
		} else {
			res.health = &r
			progress("  check fails → gone from other DNS: median %s, p99 %s", fmtDur(r.remote.p50), fmtDur(r.remote.p99))
		}
	}
	if o.scenarios["crash"] || loaded {
		rounds := o.crashes
		if loaded {
			rounds = o.loadCrashes
		}
		r, err := measureCrash(c, rounds)
		phase("crash")
		if err != nil {
			fail("crash: %v", err)
		} else {
			res.crash = &r
			progress("  kill → gone from all DNS: median %s, p99 %s", fmtDur(r.dns.p50), fmtDur(r.dns.p99))
		}
	}
	return res
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func usage(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "clusterbench: "+format+"\n", args...)
	flag.Usage()
	return 2
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
