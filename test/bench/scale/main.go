// Command scale measures Chorus with clusters of real agent processes on
// one machine: one `chorus agent` process per loopback address
// (127.1.x.y, fixed ports), GOMAXPROCS=1 each, its own data dir, the
// `lan` gossip profile, retry_join of the first -seeds agents, started
// in waves. For each cluster size it measures, through the agents' HTTP
// API, /metrics, DNS and /proc:
//
//   - formation: first start → every agent's catalog lists every agent
//     alive and none failed, with every agent's `web` instance (each
//     agent runs one from its config file);
//   - registration → each agent's DNS and the last agent's DNS;
//   - a 10% rolling restart (SIGTERM, start again, one by one) while a
//     prober asks every agent's DNS for `web` and counts empty answers;
//   - three crashes (SIGKILL) → the victim's service gone from every
//     other agent's DNS answer;
//   - idle CPU (/proc/<pid>/stat), RSS, and IP bytes each agent sends
//     (nftables counters per source address, UDP and TCP apart, in a
//     private network namespace where only the cluster runs);
//   - false failures: member-failed events no crash explains, and live
//     members listed failed at the end.
//
// -kinds serf runs the same waves, restart and crashes with bare Serf
// agents (./cmd/serfagent: Serf with the `lan` memberlist timings and
// nothing else), to tell memberlist's behaviour at these timings from
// what Chorus adds.
//
// Run it as root (`make bench-scale`): it re-executes itself in a
// private network namespace (unshare -n). It writes report.md and one PNG
// per figure against the cluster size to -out.
package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run()) }

// Environment of the copy of this program that runs in the private
// network namespace: the binaries its parent built.
const (
	envNetns  = "SCALE_NETNS"
	envChorus = "SCALE_CHORUS_BIN"
	envSerf   = "SCALE_SERF_BIN"
	envCommit = "SCALE_COMMIT"
)

type options struct {
	sizes, serfSizes []int
	kinds            map[kind]bool
	wave             int
	waveInterval     time.Duration
	seeds            int
	formTimeout      time.Duration
	formPoll         time.Duration
	settle, idle     time.Duration
	registrations    int
	eventTimeout     time.Duration
	probeEvery       time.Duration
	logLevel         string
	out              string
	keep             bool
	seed             uint64
	gossip           gossipFlags
	// idleOnly stops each cluster after its idle window (no
	// registrations, restart or crashes).
	idleOnly bool
	// chorusBin and serfBin, when set, are prebuilt binaries to run
	// instead of building this tree's (e.g. to compare two builds).
	chorusBin, serfBin string
}

func run() int {
	var o options
	var sizes, serfSizes, kinds string
	flag.StringVar(&sizes, "n", "50,150,300", "cluster sizes of Chorus agents, comma-separated")
	flag.StringVar(&serfSizes, "serf-n", "150,300", "cluster sizes of bare Serf agents")
	flag.StringVar(&kinds, "kinds", "chorus,serf", "what to run: chorus, serf or both")
	flag.IntVar(&o.wave, "wave", 25, "agents started per wave")
	flag.DurationVar(&o.waveInterval, "wave-interval", 500*time.Millisecond, "time between waves")
	flag.IntVar(&o.seeds, "seeds", 3, "agents every agent retry-joins")
	flag.DurationVar(&o.formTimeout, "form-timeout", 3*time.Minute, "longest wait for the cluster to form")
	flag.DurationVar(&o.formPoll, "form-poll", time.Second, "how often every agent's /metrics is read while forming")
	flag.DurationVar(&o.settle, "settle", 35*time.Second, "wait after formation before the idle window (past Chorus's 30 s coordinate warm-up)")
	flag.DurationVar(&o.idle, "idle", 30*time.Second, "idle window")
	flag.IntVar(&o.registrations, "registrations", 10, "registrations measured (the first three owners are then the crash victims)")
	flag.DurationVar(&o.eventTimeout, "event-timeout", 30*time.Second, "deadline of each timed event")
	flag.DurationVar(&o.probeEvery, "probe-every", time.Second, "rolling restart: each agent's DNS is asked about once per this")
	flag.StringVar(&o.logLevel, "log-level", "warn", "agents' log level (logs stay in the temp data dirs; see -keep)")
	flag.StringVar(&o.out, "out", "test/bench/scale/results", "directory for report.md and the PNG plots")
	flag.BoolVar(&o.keep, "keep", false, "keep the agents' data dirs and logs")
	flag.Uint64Var(&o.seed, "seed", 1, "random seed (owners of registrations, victims)")
	flag.BoolVar(&o.idleOnly, "idle-only", false, "measure formation and the idle window only (no registrations, restart or crashes)")
	flag.StringVar(&o.chorusBin, "chorus-bin", "", "prebuilt chorus binary to run (default: build ./cmd/chorus)")
	flag.StringVar(&o.serfBin, "serf-bin", "", "prebuilt serfagent binary to run (default: build it)")
	flag.DurationVar(&o.gossip.probeInterval, "probe-interval", 0, "memberlist ProbeInterval for both kinds (0: the lan profile's)")
	flag.DurationVar(&o.gossip.probeTimeout, "probe-timeout", 0, "memberlist ProbeTimeout (0: the lan profile's)")
	flag.DurationVar(&o.gossip.gossipInterval, "gossip-interval", 0, "memberlist GossipInterval (0: the lan profile's)")
	flag.IntVar(&o.gossip.suspicionMult, "suspicion-mult", 0, "memberlist SuspicionMult (0: the lan profile's)")
	flag.IntVar(&o.gossip.suspicionMaxMult, "suspicion-max-timeout-mult", 0, "memberlist SuspicionMaxTimeoutMult (0: the lan profile's)")
	flag.IntVar(&o.gossip.retransmitMult, "retransmit-mult", 0, "memberlist RetransmitMult (0: the lan profile's)")
	flag.Parse()
	var err error
	if o.sizes, err = parseSizes(sizes); err != nil {
		fmt.Fprintln(os.Stderr, "scale: -n:", err)
		return 2
	}
	if o.serfSizes, err = parseSizes(serfSizes); err != nil {
		fmt.Fprintln(os.Stderr, "scale: -serf-n:", err)
		return 2
	}
	o.kinds = map[kind]bool{}
	for _, k := range strings.Split(kinds, ",") {
		switch kind(strings.TrimSpace(k)) {
		case kindChorus, kindSerf:
			o.kinds[kind(strings.TrimSpace(k))] = true
		default:
			fmt.Fprintf(os.Stderr, "scale: -kinds: %q is not chorus or serf\n", k)
			return 2
		}
	}
	if os.Getenv(envNetns) == "1" {
		return measure(&o)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "scale: run as root: the harness needs its own network namespace and nftables counters")
		return 2
	}
	return buildAndReexec(o.chorusBin, o.serfBin)
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 2 || n > 64000 {
			return nil, fmt.Errorf("%q: want a number of agents from 2 to 64000", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// buildAndReexec builds the chorus and serfagent binaries once (those not
// given prebuilt), then runs this program again in a new network
// namespace.
func buildAndReexec(chorusBin, serfBin string) int {
	bin, err := os.MkdirTemp("", "chorus-scale-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		return 1
	}
	defer os.RemoveAll(bin)
	chorus, serfagent := filepath.Join(bin, "chorus"), filepath.Join(bin, "serfagent")
	for _, b := range []struct{ out, pkg, prebuilt string }{{chorus, "./cmd/chorus", chorusBin}, {serfagent, "./test/bench/scale/cmd/serfagent", serfBin}} {
		if b.prebuilt != "" {
			if err := copyFile(b.prebuilt, b.out); err != nil {
				fmt.Fprintf(os.Stderr, "scale: %v\n", err)
				return 1
			}
			continue
		}
		cmd := exec.Command("go", "build", "-trimpath", "-o", b.out, b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "scale: go build %s: %v\n", b.pkg, err)
			return 1
		}
	}
	commit, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		return 1
	}
	cmd := exec.Command("unshare", append([]string{"-n", "--", exe}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envNetns+"=1", envChorus+"="+chorus, envSerf+"="+serfagent,
		envCommit+"="+strings.TrimSpace(string(commit)))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "scale:", err)
		return 1
	}
	return 0
}

// measure runs every cluster (inside the private network namespace).
func measure(o *options) int {
	if err := loopbackUp(); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		return 1
	}
	if err := setupCounters(); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		return 1
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		return 1
	}
	logf, err := os.Create(filepath.Join(o.out, "run.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		return 1
	}
	defer logf.Close()
	logw := io.MultiWriter(os.Stdout, logf)
	logAt := func(format string, args ...any) {
		fmt.Fprintf(logw, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
	head := fmt.Sprintf("%s, %d cores, %s, Linux, %s, at %s.", time.Now().UTC().Format("2006-01-02 15:04 MST"),
		runtime.NumCPU(), memTotal(), runtime.Version(), os.Getenv(envCommit))
	logAt("%s", head)

	type job struct {
		k kind
		n int
	}
	var jobs []job
	if o.kinds[kindChorus] {
		for _, n := range o.sizes {
			jobs = append(jobs, job{kindChorus, n})
		}
	}
	if o.kinds[kindSerf] {
		for _, n := range o.serfSizes {
			jobs = append(jobs, job{kindSerf, n})
		}
	}
	var results []*result
	for _, j := range jobs {
		bin := os.Getenv(envChorus)
		if j.k == kindSerf {
			bin = os.Getenv(envSerf)
		}
		res := runCluster(o, j.k, j.n, bin, logAt)
		results = append(results, res)
		writeAll(o, head, results, logAt)
	}
	return 0
}

func writeAll(o *options, head string, results []*result, logAt func(string, ...any)) {
	f, err := os.Create(filepath.Join(o.out, "report.md"))
	if err != nil {
		logAt("report: %v", err)
		return
	}
	writeReport(f, o, head, results)
	f.Close()
	files, err := writePlots(o.out, results)
	if err != nil {
		logAt("plots: %v", err)
	}
	logAt("wrote %s and %d plots", filepath.Join(o.out, "report.md"), len(files))
}

// runCluster starts, measures and stops one cluster.
func runCluster(o *options, k kind, n int, bin string, logAt func(string, ...any)) *result {
	res := &result{kind: k, n: n}
	dir, err := os.MkdirTemp("", fmt.Sprintf("chorus-scale-%s-%d-", k, n))
	if err != nil {
		res.errors = append(res.errors, err.Error())
		return res
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	c, err := newCluster(k, bin, dir, n, o.seeds, o.logLevel, o.gossip)
	if err != nil {
		res.errors = append(res.errors, err.Error())
		return res
	}
	defer c.shutdown()
	prefix := fmt.Sprintf("[%s %d] ", k, n)
	r := &runner{o: o, c: c, cl: newClient(), res: res, log: func(f string, a ...any) { logAt(prefix+f, a...) }}
	r.log("load average %.1f; data in %s", loadAvg(), dir)
	rng := rand.New(rand.NewPCG(o.seed, uint64(n)))

	r.form()
	if !res.formed {
		// Measure what the storm costs, then stop: the timed scenarios
		// need a formed cluster.
		saved := o.settle
		o.settle = 0
		r.idle()
		o.settle = saved
		res.endLoad = loadAvg()
		res.formNotes = append(res.formNotes, "after the idle window: "+r.memberView())
		return res
	}
	r.idle()
	if o.idleOnly {
		res.endLoad = loadAvg()
		r.log("end (idle only): %s; load %.1f", r.memberView(), res.endLoad)
		return res
	}
	var victims []*proc
	var svcs []string
	if k == kindChorus {
		var owners []*proc
		res.syncReg, res.netReg = r.syncPhase(c.live(), o.registrations, func() { owners = r.register(rng) })
		for i := 0; i < 3 && i < len(owners); i++ {
			victims = append(victims, owners[i])
			svcs = append(svcs, "reg"+strconv.Itoa(i))
		}
	} else {
		cands := c.procs[min(o.seeds, n):]
		for _, i := range rng.Perm(len(cands))[:min(3, len(cands))] {
			victims = append(victims, cands[i])
		}
	}
	exclude := map[*proc]bool{}
	for _, v := range victims {
		exclude[v] = true
	}
	r.rollingRestart(exclude)
	if k == kindChorus {
		// Per crash, over the agents that survive them all.
		dying := map[*proc]bool{}
		for _, v := range victims {
			dying[v] = true
		}
		var survivors []*proc
		for _, p := range c.live() {
			if !dying[p] {
				survivors = append(survivors, p)
			}
		}
		res.syncCrash, res.netCrash = r.syncPhase(survivors, len(victims), func() { r.crash(victims, svcs) })
	} else {
		r.crash(victims, svcs)
	}
	res.endLoad = loadAvg()
	r.log("end: %s; load %.1f", r.memberView(), res.endLoad)
	return res
}

// copyFile copies the executable src to dst.
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("prebuilt binary: %w", err)
	}
	return os.WriteFile(dst, b, 0o755)
}

// memTotal is the machine's memory, e.g. "24 GiB".
func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "? GiB"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return fmt.Sprintf("%.0f GiB", kb/(1<<20))
		}
	}
	return "? GiB"
}
