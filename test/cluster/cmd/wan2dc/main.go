// Command wan2dc runs Chorus's two-datacenter fault scenarios on 2 × 3
// agents in network namespaces, with added delay between the sites, and
// prints (and with -out writes) a Markdown report of the figures:
//
//   - failover: every dc1 instance fails → every dc1 agent answers dc2's
//     instances; dc1 recovers → local answers again;
//
//   - propagation: a change in dc2 visible at every dc1 agent;
//
//   - speakers killed: every current speaker of dc2 is killed, new
//     speakers take over and a change in dc2 still reaches dc1;
//
//   - partition: the link between the sites is cut; each site keeps
//     answering its own services, nothing empty; the other site's summary
//     turns stale and fresh again after the heal;
//
//   - idle WAN cost per speaker (bytes sent from the WAN port).
//
//     go run ./test/cluster/cmd/wan2dc                    # full run, ~3 min
//     go run ./test/cluster/cmd/wan2dc -short             # the CI run
//     go run ./test/cluster/cmd/wan2dc -encrypt           # with gossip encryption on
//
// Exit status: 0 when every assertion held, 1 when one failed, 2 when the
// run could not be made, 0 with a "SKIP:" line when this machine cannot
// run it (not root, no network namespaces).
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/chorusdns/chorus/test/cluster"
)

func main() { os.Exit(run()) }

// limits are the assertions: generous bounds, far above the targets the
// report compares with, so that a slow machine does not fail the run.
const (
	failoverLimit    = 15 * time.Second
	propagationLimit = 10 * time.Second
	speakerLimit     = 30 * time.Second
)

type report struct {
	lines  []string
	failed bool
}

func (r *report) row(what, figure, target string, ok bool) {
	mark := "ok"
	if !ok {
		mark = "**FAIL**"
		r.failed = true
	}
	r.lines = append(r.lines, fmt.Sprintf("| %s | %s | %s | %s |", what, figure, target, mark))
	fmt.Fprintf(os.Stderr, "%s: %s (target %s) %s\n", what, figure, target, mark)
}

func run() int {
	var (
		short = flag.Bool("short", false, "CI run: 3 propagation samples, 10 s partition, no idle measurement")
		delay = flag.Duration("delay", 30*time.Millisecond, "added delay each way between the sites")
		runs  = flag.Int("runs", 10, "propagation samples")
		work  = flag.String("work", "", "work directory (default: a new temp dir, kept)")
		out   = flag.String("out", "", "also write the Markdown report to this file")
		idle  = flag.Duration("idle", 60*time.Second, "idle WAN cost window")
		crypt = flag.Bool("encrypt", false, "gossip encryption on (a random key for every agent): LAN pools, WAN pool and summaries sealed")
	)
	flag.Parse()
	if *short {
		*runs = 3
		*idle = 0
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := cluster.Preflight(ctx); err != nil {
		fmt.Printf("SKIP: the two-datacenter fault tests need network namespaces: %v\n", err)
		return 0
	}
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wan2dc:", err)
		return 2
	}
	if *work == "" {
		if *work, err = os.MkdirTemp("", "chorus-wan2dc-"); err != nil {
			fmt.Fprintln(os.Stderr, "wan2dc:", err)
			return 2
		}
	}
	fmt.Fprintf(os.Stderr, "work dir (binaries, data, logs): %s\n", *work)
	key := ""
	if *crypt {
		k := make([]byte, 32)
		rand.Read(k)
		key = base64.StdEncoding.EncodeToString(k)
	}
	c, err := cluster.NewCluster(ctx, cluster.ClusterConfig{
		Hosts: 6, Datacenters: 2, WANSpeakers: 2, Failover: "nearest:1", Encrypt: key, RepoRoot: root, WorkDir: *work, Logger: logger,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "wan2dc: cluster:", err)
		return 2
	}
	defer c.Close()
	r := &report{}
	if err := scenarios(ctx, c, r, *delay, *runs, *idle, *short); err != nil {
		fmt.Fprintln(os.Stderr, "wan2dc:", err)
		r.failed = true
		r.lines = append(r.lines, fmt.Sprintf("| run stopped | %v | | **FAIL** |", err))
	}
	enc := "gossip encryption off"
	if key != "" {
		enc = "gossip encryption on (one key: LAN pools, WAN pool and summaries sealed)"
	}
	md := fmt.Sprintf("Two datacenters × 3 agents (wan_speakers 2, failover nearest:1), %v added each way between the sites, lan gossip profile, %s, demo HTTP check every 1 s.\n\n| what | measured | target | |\n|---|---|---|---|\n%s\n",
		*delay, enc, strings.Join(r.lines, "\n"))
	fmt.Print(md)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "wan2dc:", err)
		}
	}
	if r.failed {
		return 1
	}
	return 0
}

var (
	dc1 = []int{0, 1, 2}
	dc2 = []int{3, 4, 5}
)

func mask(hosts []int) uint64 {
	var m uint64
	for _, h := range hosts {
		m |= 1 << h
	}
	return m
}

func scenarios(ctx context.Context, c *cluster.Cluster, r *report, delay time.Duration, runs int, idle time.Duration, short bool) error {
	for _, h := range dc1 {
		if err := c.Net().Impair(ctx, h, cluster.Impairment{Delay: delay, To: mask(dc2)}); err != nil {
			return err
		}
	}
	for _, h := range dc2 {
		if err := c.Net().Impair(ctx, h, cluster.Impairment{Delay: delay, To: mask(dc1)}); err != nil {
			return err
		}
	}
	addrs := func(hosts []int) []string {
		var out []string
		for _, h := range hosts {
			out = append(out, c.Host(h).Addr.String())
		}
		sort.Strings(out)
		return out
	}
	local1, local2 := addrs(dc1), addrs(dc2)

	// Formation: each site answers for the other.
	start := time.Now()
	if _, err := waitAnswers(ctx, c, dc1, "demo.service.dc2.chorus.", 90*time.Second, exactly(local2)); err != nil {
		return fmt.Errorf("dc1 never answered for dc2: %w", err)
	}
	if _, err := waitAnswers(ctx, c, dc2, "demo.service.dc1.chorus.", 90*time.Second, exactly(local1)); err != nil {
		return fmt.Errorf("dc2 never answered for dc1: %w", err)
	}
	r.row("sites formed: each site answers the other's demo", time.Since(start).Round(10*time.Millisecond).String(), "—", true)
	var info []struct {
		Name      string
		RTTMillis float64
		Stale     bool
	}
	// Every dc1 instance fails.
	for _, h := range dc1 {
		if err := c.KillDemo(h); err != nil {
			return err
		}
	}
	t, err := waitAnswers(ctx, c, dc1, "demo.service.chorus.", failoverLimit, exactly(local2))
	r.row("every dc1 instance down → every dc1 agent answers dc2's (from the kill; includes the 1 s check)", dur(t, err), "≤ 3 s", err == nil)
	// dc1 recovers.
	for _, h := range dc1 {
		if err := c.StartDemo(h); err != nil {
			return err
		}
	}
	t, err = waitAnswers(ctx, c, dc1, "demo.service.chorus.", failoverLimit, within(local1))
	r.row("dc1 demo restarted → every dc1 agent answers locally again", dur(t, err), "—", err == nil)

	// A change in dc2 reaching every dc1 agent.
	var samples []time.Duration
	for k := 1; k <= runs; k++ {
		want := fmt.Sprintf("10.99.%d.1", k)
		t, err := change(ctx, c, dc2[k%3], want, dc1)
		if err != nil {
			r.row(fmt.Sprintf("change in dc2 #%d", k), dur(t, err), "", false)
			continue
		}
		samples = append(samples, t)
	}
	if len(samples) > 0 {
		slices.Sort(samples)
		r.row(fmt.Sprintf("a change in dc2 visible at every dc1 agent (%d samples: median / max)", len(samples)),
			fmt.Sprintf("%v / %v", samples[len(samples)/2].Round(time.Millisecond), samples[len(samples)-1].Round(time.Millisecond)),
			fmt.Sprintf("≤ 1 s + RTT (%v)", time.Second+2*delay), samples[len(samples)-1] < propagationLimit)
	}

	// Kill every current speaker of dc2.
	var speakers, rest []int
	for _, h := range dc2 {
		var ms []struct{ Status int }
		if err := c.Get(ctx, h, "/v1/agent/members?wan=1", &ms, 5*time.Second); err != nil {
			return err
		}
		if len(ms) > 0 {
			speakers = append(speakers, h)
		} else {
			rest = append(rest, h)
		}
	}
	if len(rest) == 0 {
		return fmt.Errorf("every dc2 agent is a speaker (%v): nobody would be left", speakers)
	}
	start = time.Now()
	for _, h := range speakers {
		if err := c.KillAgent(h); err != nil {
			return err
		}
	}
	_, err = change(ctx, c, rest[0], "10.98.0.1", dc1)
	t = time.Since(start)
	r.row(fmt.Sprintf("every dc2 speaker killed (%d) → a change in dc2 reaches every dc1 agent (from the kill)", len(speakers)), dur(t, err), "≤ 10 s", err == nil && t < speakerLimit)
	for _, h := range speakers {
		if err := c.StartAgent(h); err != nil {
			return err
		}
	}
	if _, err := waitAnswers(ctx, c, dc1, "demo.service.dc2.chorus.", 60*time.Second, exactly(local2)); err != nil {
		return fmt.Errorf("after the restart of dc2's speakers: %w", err)
	}

	// Cut the link between the sites.
	hold := 40 * time.Second // past the 30 s after which a summary is stale
	if short {
		hold = 10 * time.Second
	}
	if err := c.Net().Partition(ctx, dc1, dc2); err != nil {
		return err
	}
	bad, total := 0, 0
	var firstBad string // the first wrong answer, for the report
	deadline := time.Now().Add(hold)
	for time.Now().Before(deadline) {
		for _, site := range []struct {
			hosts []int
			want  []string
		}{{dc1, local1}, {dc2, local2}} {
			for _, h := range site.hosts {
				total++
				if got, err := answer(c, h, "demo.service.chorus."); err != nil || !slices.Equal(got, site.want) {
					bad++
					if firstBad == "" {
						firstBad = fmt.Sprintf("h%d at %v into the cut: %v %v, want %v", h, hold-time.Until(deadline).Round(time.Millisecond), got, err, site.want)
					}
				}
			}
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	measured := fmt.Sprintf("%d of %d", bad, total)
	if firstBad != "" {
		measured += " (first: " + firstBad + ")"
	}
	r.row(fmt.Sprintf("sites cut apart %v: each site answers its own demo (answers wrong or empty)", hold), measured, "0", bad == 0)
	if !short {
		stale := false
		if err := c.Get(ctx, dc1[0], "/v1/chorus/datacenters", &info, 5*time.Second); err == nil && len(info) == 2 {
			stale = info[1].Stale
		}
		r.row("dc2's summary at dc1 after the cut", map[bool]string{true: "stale, still served", false: "not marked stale"}[stale], "stale", stale)
	}
	if err := c.Net().Heal(ctx); err != nil {
		return err
	}
	start = time.Now()
	_, err = change(ctx, c, dc2[0], "10.97.0.1", dc1)
	r.row("healed → a change in dc2 reaches every dc1 agent (from the heal)", dur(time.Since(start), err), "—", err == nil)

	if err := c.Get(ctx, dc1[0], "/v1/chorus/datacenters", &info, 5*time.Second); err == nil && len(info) == 2 {
		// Datacenters are ordered by this figure: it must be near the
		// added delay (0.8–1.5 × the RTT the delay makes).
		want := float64(2*delay) / float64(time.Millisecond)
		r.row("WAN RTT dc1 → dc2 as dc1 holds it (speakers' direct pings)", fmt.Sprintf("%.1f ms", info[1].RTTMillis), fmt.Sprintf("≈ %v", 2*delay),
			info[1].RTTMillis >= 0.8*want && info[1].RTTMillis <= 1.5*want)
	}
	if idle > 0 {
		b, most, err := idleWAN(ctx, c, idle)
		if err != nil {
			return err
		}
		r.row(fmt.Sprintf("idle WAN bytes sent per speaker (over %v; UDP+TCP from the WAN port)", idle), b, "≤ 2 KB/s", most <= 2048)
	}
	return nil
}

// change registers the service wanprobe with address want on host h
// (each host keeps its own instance) and returns how long until every
// agent of sites answers wanprobe.service.dc2 with that address.
func change(ctx context.Context, c *cluster.Cluster, h int, want string, sites []int) (time.Duration, error) {
	body := fmt.Sprintf(`{"Name":"wanprobe","ID":"wanprobe","Address":%q,"Port":1}`, want)
	start := time.Now()
	if code, err := c.Put(ctx, h, "/v1/agent/service/register", body, 5*time.Second); err != nil || code != 200 {
		return 0, fmt.Errorf("register on host %d: %d %v", h, code, err)
	}
	_, err := waitAnswers(ctx, c, sites, "wanprobe.service.dc2.chorus.", propagationLimit*3, func(got []string) bool {
		return slices.Contains(got, want)
	})
	return time.Since(start), err
}

func exactly(want []string) func([]string) bool {
	return func(got []string) bool { return slices.Equal(got, want) }
}

// within: a non-empty answer drawn only from want.
func within(want []string) func([]string) bool {
	return func(got []string) bool {
		if len(got) == 0 {
			return false
		}
		for _, a := range got {
			if !slices.Contains(want, a) {
				return false
			}
		}
		return true
	}
}

// waitAnswers polls every host's DNS for name (A) every 20 ms until ok
// holds for all of them, and returns how long that took.
func waitAnswers(ctx context.Context, c *cluster.Cluster, hosts []int, name string, limit time.Duration, ok func([]string) bool) (time.Duration, error) {
	start := time.Now()
	var last string
	for time.Since(start) < limit {
		all := true
		for _, h := range hosts {
			got, err := answer(c, h, name)
			if err != nil || !ok(got) {
				all = false
				last = fmt.Sprintf("host %d answers %v (%v)", h, got, err)
				break
			}
		}
		if all {
			return time.Since(start), nil
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return time.Since(start), fmt.Errorf("%s: not within %v: %s", name, limit, last)
}

// answer asks host h's DNS for name's A records, sorted.
func answer(c *cluster.Cluster, h int, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	cl := &dns.Client{Timeout: 500 * time.Millisecond}
	resp, _, err := cl.Exchange(m, c.DNSAddr(h))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	sort.Strings(out)
	return out, nil
}

// idleWAN counts, in each host's namespace, the bytes sent from the WAN
// port over window (mangle-table counters, which the partition and delay
// rules in the filter table leave alone), and reports bytes/s per speaker.
func idleWAN(ctx context.Context, c *cluster.Cluster, window time.Duration) (string, float64, error) {
	port := "8302"
	read := func(h int) (int64, error) {
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", c.Host(h).NS, "iptables", "-t", "mangle", "-nvxL", "OUTPUT").Output()
		if err != nil {
			return 0, err
		}
		var total int64
		for _, line := range strings.Split(string(out), "\n") {
			if !strings.Contains(line, "spt:"+port) {
				continue
			}
			f := strings.Fields(line)
			if len(f) > 1 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				total += n
			}
		}
		return total, nil
	}
	for h := 0; h < c.N(); h++ {
		for _, proto := range []string{"udp", "tcp"} {
			if err := exec.CommandContext(ctx, "ip", "netns", "exec", c.Host(h).NS, "iptables", "-t", "mangle", "-A", "OUTPUT", "-p", proto, "--sport", port).Run(); err != nil {
				return "", 0, fmt.Errorf("mangle counter on host %d: %w", h, err)
			}
		}
	}
	before := make([]int64, c.N())
	for h := range before {
		before[h], _ = read(h)
	}
	if err := sleepCtx(ctx, window); err != nil {
		return "", 0, err
	}
	var rates []string
	most := 0.0
	for h := range before {
		after, err := read(h)
		if err != nil {
			return "", 0, err
		}
		if d := after - before[h]; d > 0 {
			rate := float64(d) / window.Seconds()
			most = max(most, rate)
			rates = append(rates, fmt.Sprintf("%s %.0f B/s", c.Host(h).Name, rate))
		}
	}
	if len(rates) == 0 {
		return "", 0, errors.New("no WAN traffic counted")
	}
	return strings.Join(rates, ", "), most, nil
}

func dur(t time.Duration, err error) string {
	if err != nil {
		return "not reached: " + err.Error()
	}
	return t.Round(time.Millisecond).String()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/chorusdns/chorus\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run from inside the chorus module (no go.mod found)")
		}
		dir = parent
	}
}
