package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure a run of scenarios.
type Options struct {
	Hosts    int      // 5 by default
	Short    bool     // the CI set with short holds
	Only     []string // run only these scenarios (names); empty: the set
	RepoRoot string
	OutDir   string // report.md and the PNGs
	WorkDir  string // binaries, data dirs, logs; a temp dir by default
	Rate     int    // DNS queries per second per agent; 100 by default
	Bounds   Bounds // DefaultBounds when zero
	// Gossip holds gossip.* knobs for every agent's config (key → YAML
	// value), on top of the lan profile: for tuning experiments.
	Gossip map[string]string
	Logger *slog.Logger
}

// Result is one scenario's outcome.
type Result struct {
	Scenario   Scenario
	Start, End time.Duration
	Events     []Event
	Metrics    Metrics
	// Converge is the time from the last event to identical catalogs
	// everywhere; -1 if they never converged.
	Converge   time.Duration
	Registered int      // registrations that got a 200
	Lost       []string // of those, the ones missing from some agent at the end
	Err        error    // the scenario could not run as written
	PNG        string   // file name in OutDir
	Failures   []string // the assertions it failed
	// MaxLag is the harness's worst timer lag during the scenario and
	// Load the 1-minute load average at its end: how busy the machine was.
	MaxLag time.Duration
	Load   string

	acked []Registration
}

// Pass reports whether the scenario met every assertion.
func (r *Result) Pass() bool { return len(r.Failures) == 0 }

// Report is a whole run.
type Report struct {
	Started  time.Time
	Duration time.Duration
	Hosts    int
	Short    bool
	Rate     int
	Bounds   Bounds
	Profile  string
	Gossip   map[string]string
	Commit   string
	Machine  string
	Results  []*Result
	// FinalLost lists registrations (from every scenario) missing from
	// some agent at the very end of the run.
	FinalLost       []string
	FinalRegistered int
	LateAnswers     int64
	WorkDir         string
}

// Pass reports whether every scenario passed and nothing was lost.
func (r *Report) Pass() bool {
	for _, res := range r.Results {
		if !res.Pass() {
			return false
		}
	}
	return len(r.FinalLost) == 0
}

// Preflight returns nil when this machine can run the harness (root, ip,
// iptables-restore, network namespaces), else why not.
func Preflight(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("not root: network namespaces and iptables need root")
	}
	for _, tool := range []string{"ip", "iptables-restore", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found", tool)
		}
	}
	ns := fmt.Sprintf("%sprobe%d-x", nsPrefix, os.Getpid())
	if err := run(ctx, nil, "ip", "netns", "add", ns); err != nil {
		return fmt.Errorf("cannot create a network namespace: %w", err)
	}
	defer func() { _ = run(context.Background(), nil, "ip", "netns", "del", ns) }()
	if err := run(ctx, strings.NewReader("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -m statistic --mode random --probability 0.5 -j NFQUEUE --queue-num 0 --queue-bypass\nCOMMIT\n"),
		"ip", "netns", "exec", ns, "iptables-restore"); err != nil {
		return fmt.Errorf("iptables in a namespace (statistic, NFQUEUE): %w", err)
	}
	return nil
}

// Run brings a cluster up, runs the scenarios, writes report.md and the
// PNGs to opt.OutDir and tears everything down (also when ctx is
// cancelled). It returns an error only when the run could not be made;
// failed assertions are in the Report.
func Run(ctx context.Context, opt Options) (rep *Report, err error) {
	if opt.Hosts == 0 {
		opt.Hosts = 5
	}
	if opt.Rate == 0 {
		opt.Rate = 100
	}
	if opt.Bounds == (Bounds{}) {
		opt.Bounds = DefaultBounds
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	log := opt.Logger
	timings := FullTimings
	if opt.Short {
		timings = ShortTimings
	}
	all := Scenarios(opt.Hosts)
	want := opt.Only
	if len(want) == 0 && opt.Short {
		want = ShortSet
	}
	var scenarios []Scenario
	for _, s := range all {
		if len(want) == 0 || slices.Contains(want, s.Name) {
			scenarios = append(scenarios, s)
		}
	}
	for _, w := range want {
		if !slices.ContainsFunc(all, func(s Scenario) bool { return s.Name == w }) {
			return nil, fmt.Errorf("unknown scenario %q", w)
		}
	}
	if opt.WorkDir == "" {
		opt.WorkDir, err = os.MkdirTemp("", "chorus-chaos-")
		if err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(opt.OutDir, 0o755); err != nil {
		return nil, err
	}

	rep = &Report{
		Started: time.Now(), Hosts: opt.Hosts, Short: opt.Short, Rate: opt.Rate, Bounds: opt.Bounds,
		Profile: "lan", Gossip: opt.Gossip, Commit: gitCommit(opt.RepoRoot), Machine: machine(), WorkDir: opt.WorkDir,
	}
	log.Info("building and starting the cluster", "hosts", opt.Hosts, "work_dir", opt.WorkDir)
	c, err := NewCluster(ctx, ClusterConfig{Hosts: opt.Hosts, RepoRoot: opt.RepoRoot, WorkDir: opt.WorkDir, Gossip: opt.Gossip, Logger: log})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := waitConverged(ctx, c, 60*time.Second); err != nil {
		return nil, fmt.Errorf("the cluster did not converge after start: %w", err)
	}
	prober := NewProber(c)
	prober.Rate = opt.Rate
	pctx, stopProber := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		if err := prober.Run(pctx); err != nil {
			log.Error("prober", "err", err)
		}
	}()
	defer func() {
		stopProber()
		pwg.Wait()
	}()

	var acked []Registration
	for _, sc := range scenarios {
		if ctx.Err() != nil {
			break
		}
		res := runScenario(ctx, c, prober, sc, timings, opt, log)
		rep.Results = append(rep.Results, res)
		acked = append(acked, res.acked...)
		log.Info("scenario done", "name", sc.Name, "pass", res.Pass(), "failures", res.Failures)
		if res.Err != nil && errors.Is(res.Err, errCluster) {
			break
		}
	}
	stopProber()
	pwg.Wait()
	rep.LateAnswers = prober.Late()

	// Every registration acknowledged during the run, on every agent.
	rep.FinalRegistered = len(acked)
	if ctx.Err() != nil {
		rep.FinalLost = append(rep.FinalLost, "not checked: the run was interrupted")
	} else if views, err := waitConverged(ctx, c, 30*time.Second); err != nil {
		rep.FinalLost = append(rep.FinalLost, "final catalog read failed: "+err.Error())
	} else {
		rep.FinalLost = lostRegistrations(c, views, acked)
	}
	rep.Duration = time.Since(rep.Started)
	if err := rep.Write(opt.OutDir); err != nil {
		return rep, err
	}
	return rep, ctx.Err()
}

// errCluster marks a scenario error after which the cluster is unusable.
var errCluster = errors.New("cluster unusable")

// Registration is a service registration that got a 200.
type Registration struct {
	ID   string
	Host int
	At   time.Duration
}

// runScenario runs one scenario with the registrar, waits for the cluster
// to converge, checks registrations, then judges the prober's record.
func runScenario(ctx context.Context, c *Cluster, p *Prober, sc Scenario, t Timings, opt Options, log *slog.Logger) *Result {
	log = log.With("scenario", sc.Name)
	res := &Result{Scenario: sc, Converge: -1}
	script := &Script{C: c, T: t, log: log}
	script.settled = func(ctx context.Context) error {
		_, err := waitConverged(ctx, c, 60*time.Second)
		return err
	}
	res.Start = c.Now()
	script.events = []Event{{At: res.Start, Label: "start"}}

	// Registrations run for the whole scenario, one every 500 ms,
	// round-robin over the agents (faulted ones included).
	rctx, stopReg := context.WithCancel(ctx)
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-rctx.Done():
				return
			case <-tick.C:
			}
			h := seq % c.N()
			id := fmt.Sprintf("reg-%s-%03d", sc.Name, seq)
			body := fmt.Sprintf(`{"Name":"reg","ID":%q,"Port":%d,"Tags":[%q]}`, id, 10000+seq, sc.Name)
			code, err := c.Put(rctx, h, "/v1/agent/service/register", body, 2*time.Second)
			if err == nil && code == 200 {
				res.acked = append(res.acked, Registration{ID: id, Host: h, At: c.Now()})
			}
		}
	}()

	err := script.Hold(ctx, t.Settle)
	if err == nil {
		err = sc.Run(ctx, script)
	}
	stopReg()
	rwg.Wait()
	res.Events = script.Events()
	last := res.Events[len(res.Events)-1].At
	res.Registered = len(res.acked)

	views, cerr := waitConverged(ctx, c, 60*time.Second)
	if cerr == nil {
		res.Converge = c.Now() - last
		res.Lost = lostRegistrations(c, views, res.acked)
	} else {
		log.Error("no convergence; resetting the cluster", "err", cerr)
		if rerr := reset(ctx, c); rerr != nil {
			err = errors.Join(err, fmt.Errorf("%w: %v", errCluster, rerr))
		}
		if views, cerr2 := waitConverged(ctx, c, 60*time.Second); cerr2 == nil {
			res.Lost = lostRegistrations(c, views, res.acked)
		} else {
			err = errors.Join(err, fmt.Errorf("%w: no convergence after reset: %v", errCluster, cerr2))
		}
	}
	_ = sleep(ctx, t.After)
	res.End = c.Now()
	res.Err = err

	answers := p.Answers(res.Start, res.End)
	res.MaxLag = p.MaxLag(res.Start, res.End)
	res.Load = loadAverage()
	res.Metrics = Analyze(c.N(), res.Events, answers, p.Members(res.Start, res.End), opt.Bounds)
	res.judge(opt.Bounds, cerr)
	recDir := filepath.Join(opt.WorkDir, "records")
	if err := os.MkdirAll(recDir, 0o755); err == nil {
		if err := writeRecords(recDir, res, answers); err != nil {
			log.Error("records", "err", err)
		}
	}

	res.PNG = sc.Name + ".png"
	tl := &Timeline{
		Title:    fmt.Sprintf("%s: %s", sc.Name, sc.Title),
		Subtitle: res.subtitle(),
		N:        c.N(), Start: res.Start, End: res.End, Events: res.Events,
		Answers: answers, Detect: opt.Bounds.Detect,
	}
	if f, ferr := os.Create(filepath.Join(opt.OutDir, res.PNG)); ferr == nil {
		if werr := tl.WritePNG(f); werr != nil {
			log.Error("png", "err", werr)
		}
		f.Close()
	}
	return res
}

// judge fills Failures from the metrics and bounds.
func (r *Result) judge(b Bounds, convergeErr error) {
	m := r.Metrics
	add := func(cond bool, format string, args ...any) {
		if cond {
			r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
		}
	}
	add(r.Err != nil, "could not run: %v", r.Err)
	add(m.Empty > 0, "(a) %d empty/NXDOMAIN answers while a healthy instance was reachable", m.Empty)
	add(m.Errors > 0, "(a) %d error answers", m.Errors)
	add(m.Wrong > 0, "(b) %d answers held an instance after it should be gone (bound %v, %v for an agent cut off from all others)", m.Wrong, b.Detect, b.Isolated)
	add(m.Missing > 0, "%d answers left out a healthy, reachable instance", m.Missing)
	add(len(m.Unrecovered) > 0, "instances never answered again after the repair: %s", strings.Join(m.Unrecovered, " "))
	add(m.Recovery > b.Recover, "recovery took %.1fs (bound %v)", m.Recovery.Seconds(), b.Recover)
	add(convergeErr != nil, "(c) catalogs did not converge within 60 s: %v", convergeErr)
	add(r.Converge > b.Converge, "(c) catalogs converged %.1fs after the last repair (bound %v)", r.Converge.Seconds(), b.Converge)
	add(len(r.Lost) > 0, "(d) %d acknowledged registrations missing: %s", len(r.Lost), strings.Join(first(r.Lost, 5), " "))
	add(m.FalseFailures > 0, "(e) %d false failures of running, reachable agents", m.FalseFailures)
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

func (r *Result) subtitle() string {
	m := r.Metrics
	det := secs(m.Detection)
	if m.IsolatedDetection >= 0 {
		det += " (cut-off agent " + secs(m.IsolatedDetection) + ")"
	}
	return fmt.Sprintf("detection %s  recovery %s  catalogs %s  wrong %d  empty %d  missing %d  lost %d/%d  false failures %d",
		det, secs(m.Recovery), secs(r.Converge), m.Wrong, m.Empty, m.Missing, len(r.Lost), r.Registered, m.FalseFailures)
}

// secs formats a duration in seconds, "-" for a negative (n/a) one.
func secs(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// waitConverged polls Converged until it succeeds or timeout passes.
func waitConverged(ctx context.Context, c *Cluster, timeout time.Duration) ([]*CatalogView, error) {
	deadline := time.Now().Add(timeout)
	for {
		views, err := c.Converged(ctx)
		if err == nil {
			return views, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// reset undoes every fault: heal, clear impairments, resume or restart
// agents, restart demo services.
func reset(ctx context.Context, c *Cluster) error {
	var errs []error
	errs = append(errs, c.Net().Heal(ctx))
	for i := range c.N() {
		errs = append(errs, c.Net().Impair(ctx, i, Impairment{}))
		h := c.Host(i)
		h.mu.Lock()
		agentDown := h.agent == nil || h.agent.Exited()
		demoDown := h.demo == nil || h.demo.Exited()
		if !agentDown {
			_ = h.agent.Signal(syscall.SIGCONT) // in case it is stopped
		}
		h.mu.Unlock()
		if agentDown {
			errs = append(errs, c.StartAgent(i))
		}
		if demoDown {
			errs = append(errs, c.StartDemo(i))
		}
	}
	return errors.Join(errs...)
}

// lostRegistrations returns the acknowledged registrations that some view
// does not list on the node that acknowledged them.
func lostRegistrations(c *Cluster, views []*CatalogView, acked []Registration) []string {
	var lost []string
	for _, r := range acked {
		for i, v := range views {
			if !v.Has("reg", c.Host(r.Host).Name, r.ID) {
				lost = append(lost, fmt.Sprintf("%s (on %s, missing from %s)", r.ID, c.Host(r.Host).Name, c.Host(i).Name))
				break
			}
		}
	}
	return lost
}

// loadAverage returns the 1-minute load average, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func gitCommit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	s := strings.TrimSpace(string(out))
	if st, _ := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); len(st) > 0 {
		s += " (with uncommitted changes)"
	}
	return s
}

func machine() string {
	host, _ := os.Hostname()
	var kernel string
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d CPUs, linux %s, %s", host, runtime.NumCPU(), kernel, runtime.Version())
}

// writeRecords writes a scenario's raw record as CSV files to dir:
// <name>-answers.csv (ms since the scenario start, agent, outcome,
// instances answered) and <name>-events.csv.
func writeRecords(dir string, res *Result, answers []Answer) error {
	var b strings.Builder
	b.WriteString("ms,agent,outcome,instances,rtt_us\n")
	kinds := []string{"ok", "empty", "nxdomain", "error", "timeout"}
	for _, a := range answers {
		fmt.Fprintf(&b, "%d,h%d,%s,%s,%d\n", (a.At - res.Start).Milliseconds(), a.Host+1, kinds[a.Kind],
			strings.ReplaceAll(setNames(a.Set&^UnknownBit, MaxHosts), ",", " "), a.RTT.Microseconds())
	}
	if err := os.WriteFile(filepath.Join(dir, res.Scenario.Name+"-answers.csv"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	b.Reset()
	b.WriteString("ms,kind,label\n")
	for _, e := range res.Events {
		kind := "repair"
		if e.Fault {
			kind = "fault"
		}
		fmt.Fprintf(&b, "%d,%s,%q\n", (e.At - res.Start).Milliseconds(), kind, e.Label)
	}
	return os.WriteFile(filepath.Join(dir, res.Scenario.Name+"-events.csv"), []byte(b.String()), 0o644)
}
