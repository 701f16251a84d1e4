// Command dnsbench measures the DNS server with dnsperf against a bare
// miekg/dns server in the same run, as issue 5 asks: A and SRV for
// services of 3 and 30 healthy instances and for a catalog of 10,000
// instances, then prints a Markdown table (queries per second, ratio to the
// bare server, latency, p99 at half the maximum rate) and the process RSS.
//
// Run it with `go run ./test/bench/dnsbench` (dnsperf must be installed:
// `apt-get install -y dnsperf`). The servers run pinned to one core
// (-server-cpu, via taskset when available, and GOMAXPROCS=1) and dnsperf
// on another (-client-cpu).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chorusdns/chorus/catalog"
	dnssrv "github.com/chorusdns/chorus/dns"
	"github.com/miekg/dns"
)

func main() { os.Exit(run()) }

type options struct {
	duration    time.Duration
	clients     int
	outstanding int
	edns        bool
	total       int
	serverCPU   int
	clientCPU   int
	noPin       bool
	noLatency   bool
	rounds      int
	cpuProfile  string
	only        string
	png         string
}

func run() int {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each dnsperf run")
	flag.IntVar(&o.clients, "clients", 8, "dnsperf -c: simulated clients (source ports)")
	flag.IntVar(&o.outstanding, "outstanding", 200, "dnsperf -q: queries in flight")
	flag.BoolVar(&o.edns, "edns", false, "send EDNS0 (dnsperf -e)")
	flag.IntVar(&o.total, "instances", 10000, "instances in the catalog")
	flag.IntVar(&o.serverCPU, "server-cpu", 0, "CPU the servers are pinned to")
	flag.IntVar(&o.clientCPU, "client-cpu", 1, "CPU dnsperf is pinned to")
	flag.BoolVar(&o.noPin, "no-pin", false, "do not pin with taskset")
	flag.BoolVar(&o.noLatency, "no-latency", false, "skip the p99 runs at half the maximum rate")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of every scenario; the table shows medians")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the servers to this file")
	flag.StringVar(&o.png, "png", "", "also draw the throughput against the bare server's as a PNG to this file")
	flag.StringVar(&o.only, "only", "", "run only the scenarios whose label matches this regular expression (the bare server always runs)")
	flag.Parse()

	if _, err := exec.LookPath("dnsperf"); err != nil {
		fmt.Fprintln(os.Stderr, "dnsbench: dnsperf not found; install it with: apt-get install -y dnsperf")
		return 1
	}
	// NumCPU follows the affinity mask, so it is 1 once pinned: the
	// environment variable tells the re-executed child apart.
	pinned := os.Getenv("DNSBENCH_PINNED") == "1"
	switch {
	case pinned:
		runtime.GOMAXPROCS(1)
	case !o.noPin && runtime.NumCPU() > 1:
		if err := repin(o.serverCPU); err != nil {
			fmt.Fprintln(os.Stderr, "dnsbench: not pinned:", err)
		}
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dnsbench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "dnsbench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if err := bench(o, pinned); err != nil {
		fmt.Fprintln(os.Stderr, "dnsbench:", err)
		return 1
	}
	return 0
}

// repin re-executes this program under taskset on cpu. It returns only on
// failure.
func repin(cpu int) error {
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := append([]string{ts, "-c", strconv.Itoa(cpu), self}, os.Args[1:]...)
	return syscall.Exec(ts, args, append(os.Environ(), "DNSBENCH_PINNED=1"))
}

// scenario is one dnsperf run.
type scenario struct {
	label   string
	bare    bool
	queries []string // dnsperf data lines
}

type result struct {
	qps      float64
	cpu      time.Duration // server CPU time (user+system) per answered query
	cpuRatio float64       // bare CPU per query / this CPU per query
	ratio    float64
	minQPS   float64
	maxQPS   float64
	halfRate float64
	avg      time.Duration
	p99      time.Duration
	lost     string
	hasP99   bool
	answers  string
}

func bench(o options, pinned bool) error {
	st, fillers := buildCatalog(o.total)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	cfg := dnssrv.DefaultConfig()
	cfg.NodeName = "bench"
	cfg.NodeAddress = "127.0.0.1"
	srv, err := dnssrv.New(cfg, st, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return err
	}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()

	bareAddr, stopBare, err := startBare()
	if err != nil {
		return err
	}
	defer stopBare()

	var many []string
	for i := 0; i < 1000; i++ {
		many = append(many, fillers[rand.IntN(len(fillers))])
	}
	line := func(names []string, qtype string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = n + " " + qtype
		}
		return out
	}
	scenarios := []scenario{
		{label: "bare miekg/dns, fixed 3-A reply", bare: true, queries: []string{"svc3.service.chorus. A"}},
		{label: "A, 3 instances", queries: []string{"svc3.service.chorus. A"}},
		{label: "SRV, 3 instances", queries: []string{"svc3.service.chorus. SRV"}},
		{label: "A, 30 instances", queries: []string{"svc30.service.chorus. A"}},
		{label: "SRV, 30 instances", queries: []string{"svc30.service.chorus. SRV"}},
		{label: fmt.Sprintf("A, 1,000 names of a %d-instance catalog", o.total), queries: line(many, "A")},
		{label: fmt.Sprintf("SRV, 1,000 names of a %d-instance catalog", o.total), queries: line(many, "SRV")},
	}

	if o.only != "" {
		re, err := regexp.Compile(o.only)
		if err != nil {
			return fmt.Errorf("-only: %w", err)
		}
		scenarios = slices.DeleteFunc(scenarios, func(sc scenario) bool { return !sc.bare && !re.MatchString(sc.label) })
	}

	dir, err := os.MkdirTemp("", "dnsbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Fprintf(os.Stderr, "dnsbench: chorus on %s, bare on %s, pinned=%v, %d rounds of %d runs of %s\n", srv.Addr(), bareAddr, pinned, o.rounds, len(scenarios), o.duration)
	addrOf := func(sc scenario) string {
		if sc.bare {
			return bareAddr
		}
		return srv.Addr()
	}
	files := make([]string, len(scenarios))
	for i, sc := range scenarios {
		files[i] = filepath.Join(dir, fmt.Sprintf("q%d.txt", i))
		if err := os.WriteFile(files[i], []byte(strings.Join(sc.queries, "\n")+"\n"), 0o644); err != nil {
			return err
		}
		// Warm the answer cache: the measurement is of the steady state.
		if err := warm(addrOf(sc), sc.queries); err != nil {
			return fmt.Errorf("%s: %w", sc.label, err)
		}
	}
	// Rounds interleave the bare server with ours, so that a machine that
	// slows down (other work, thermal limits) affects both alike; each
	// ratio compares runs of the same round.
	runs := make([][]result, len(scenarios))
	ratios := make([][]float64, len(scenarios))
	cpuRatios := make([][]float64, len(scenarios))
	for round := 0; round < max(o.rounds, 1); round++ {
		var bare float64
		var bareCPU time.Duration
		for i, sc := range scenarios {
			r, err := dnsperf(o, pinned, addrOf(sc), files[i], 0)
			if err != nil {
				return fmt.Errorf("%s: %w", sc.label, err)
			}
			if sc.bare {
				bare, bareCPU = r.qps, r.cpu
			}
			runs[i] = append(runs[i], r)
			ratios[i] = append(ratios[i], r.qps/bare)
			cpuRatios[i] = append(cpuRatios[i], float64(bareCPU)/float64(r.cpu))
			fmt.Fprintf(os.Stderr, "dnsbench: round %d %-50s %9.0f qps %5.2f  %5.2f µs CPU/query %5.2f\n",
				round+1, sc.label, r.qps, r.qps/bare, float64(r.cpu)/1e3, float64(bareCPU)/float64(r.cpu))
		}
	}
	results := make([]result, len(scenarios))
	for i, sc := range scenarios {
		r := medianRun(runs[i])
		r.ratio = median(ratios[i])
		r.cpuRatio = median(cpuRatios[i])
		var cpus []float64
		for _, x := range runs[i] {
			cpus = append(cpus, float64(x.cpu))
		}
		r.cpu = time.Duration(median(cpus))
		r.minQPS, r.maxQPS = runs[i][0].qps, runs[i][0].qps
		for _, x := range runs[i] {
			r.minQPS, r.maxQPS = min(r.minQPS, x.qps), max(r.maxQPS, x.qps)
		}
		if !o.noLatency {
			half, err := dnsperf(o, pinned, addrOf(sc), files[i], r.qps/2)
			if err != nil {
				return fmt.Errorf("%s at half rate: %w", sc.label, err)
			}
			r.p99, r.hasP99, r.halfRate = half.p99, half.hasP99, half.qps
		}
		results[i] = r
	}
	rss, hwm := memStatus()
	printTable(os.Stdout, o, pinned, scenarios, results, rss, hwm, st)
	if o.png != "" {
		if err := savePlot(o.png, o, scenarios, results); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
	}
	return nil
}

// buildCatalog holds svc3 (3 instances), svc30 (30) and filler services of
// 3 instances up to total instances, 10 instances per node. It returns
// the filler service names.
func buildCatalog(total int) (*catalog.Store, []string) {
	st := catalog.NewStore()
	var recs []*catalog.NodeRecord
	addr := func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i/65536%256, i/256%256, i%256+0) }
	nodeNo := 0
	newNode := func() *catalog.NodeRecord {
		nodeNo++
		return &catalog.NodeRecord{Node: catalog.Node{Name: fmt.Sprintf("node%05d", nodeNo), Address: addr(nodeNo), Datacenter: "dc1"}, Version: 1}
	}
	add := func(rec *catalog.NodeRecord, name, id string, port int) {
		s := catalog.Service{ID: id, Name: name, Port: port}
		if err := s.Validate(); err != nil {
			panic(err)
		}
		rec.Services = rec.Services.Append(s)
	}
	for i := 0; i < 33; i++ {
		rec := newNode()
		if i < 3 {
			add(rec, "svc3", "svc3", 8080)
		}
		add(rec, "svc30", "svc30", 8081)
		recs = append(recs, rec)
	}
	var fillers []string
	left := total - 33
	for left > 0 {
		rec := newNode()
		for j := 0; j < 10 && left > 0; j++ {
			k := total - 33 - left
			name := fmt.Sprintf("filler%04d", k/3)
			if k%3 == 0 {
				fillers = append(fillers, name+".service.chorus.")
			}
			add(rec, name, fmt.Sprintf("%s-%d", name, k%3), 9000+j)
			left--
		}
		recs = append(recs, rec)
	}
	st.Update(func(tx *catalog.Tx) {
		for _, r := range recs {
			r.Sort()
			tx.ApplyRecord(r)
			tx.SetMember(r.Node.Name, r.Node.Address, catalog.MemberAlive)
		}
	})
	return st, fillers
}

// startBare serves the reference: a fixed three-A reply built per query,
// no lookup.
func startBare() (string, func(), error) {
	ips := []net.IP{net.IPv4(10, 0, 0, 1).To4(), net.IPv4(10, 0, 0, 2).To4(), net.IPv4(10, 0, 0, 3).To4()}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		for _, ip := range ips {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: ip})
		}
		_ = w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	started := make(chan struct{})
	s := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(started) }}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.ActivateAndServe() }()
	<-started
	return pc.LocalAddr().String(), func() { _ = s.Shutdown(); <-done }, nil
}

// warm asks every distinct query once and checks it is answered.
func warm(addr string, lines []string) error {
	c := &dns.Client{Timeout: 2 * time.Second}
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l] {
			continue
		}
		seen[l] = true
		f := strings.Fields(l)
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(f[0]), dns.StringToType[f[1]])
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			return err
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
			return fmt.Errorf("%s: %s with %d answers", l, dns.RcodeToString[r.Rcode], len(r.Answer))
		}
	}
	return nil
}

var (
	reQPS  = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	reLost = regexp.MustCompile(`Queries lost:\s+(\d+ \([0-9.]+%\))`)
	reAvg  = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
	reRC   = regexp.MustCompile(`Response codes:\s+(.*)`)
	reDone = regexp.MustCompile(`Queries completed:\s+(\d+)`)
)

// dnsperf runs dnsperf against addr; rate > 0 limits the rate and records
// every latency for the p99.
func dnsperf(o options, pinned bool, addr, data string, rate float64) (result, error) {
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"-s", host, "-p", port, "-d", data, "-l", strconv.Itoa(int(o.duration.Seconds())),
		"-c", strconv.Itoa(o.clients), "-q", strconv.Itoa(o.outstanding), "-t", "2"}
	if o.edns {
		args = append(args, "-e")
	}
	if rate > 0 {
		args = append(args, "-Q", strconv.Itoa(int(rate)), "-v")
	}
	name := "dnsperf"
	if pinned {
		if ts, err := exec.LookPath("taskset"); err == nil {
			args = append([]string{"-c", strconv.Itoa(o.clientCPU), "dnsperf"}, args...)
			name = ts
		}
	}
	// dnsperf's output goes to a file and is read after the run: reading a
	// line per query while it runs would take CPU from the servers.
	outFile, err := os.CreateTemp("", "dnsperf-out")
	if err != nil {
		return result{}, err
	}
	defer os.Remove(outFile.Name())
	defer outFile.Close()
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	cmd.Stdout = outFile
	cpu0 := cpuTime()
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("dnsperf: %w", err)
	}
	cpu := cpuTime() - cpu0
	if _, err := outFile.Seek(0, io.SeekStart); err != nil {
		return result{}, err
	}
	var lat []float64
	var summary strings.Builder
	sc := bufio.NewScanner(outFile)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "> ") {
			f := strings.Fields(l)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				lat = append(lat, v)
			}
			continue
		}
		summary.WriteString(l)
		summary.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return result{}, err
	}
	s := summary.String()
	var r result
	m := reQPS.FindStringSubmatch(s)
	if m == nil {
		return result{}, fmt.Errorf("no qps in dnsperf output:\n%s", s)
	}
	r.qps, _ = strconv.ParseFloat(m[1], 64)
	if m := reLost.FindStringSubmatch(s); m != nil {
		r.lost = m[1]
	}
	if m := reAvg.FindStringSubmatch(s); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		r.avg = time.Duration(v * float64(time.Second))
	}
	if m := reRC.FindStringSubmatch(s); m != nil {
		r.answers = strings.TrimSpace(m[1])
	}
	if m := reDone.FindStringSubmatch(s); m != nil {
		if n, _ := strconv.Atoi(m[1]); n > 0 {
			r.cpu = cpu / time.Duration(n)
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		i := int(math.Ceil(0.99*float64(len(lat)))) - 1
		r.p99 = time.Duration(lat[max(i, 0)] * float64(time.Second))
		r.hasP99 = true
	}
	return r, nil
}

// medianRun returns the run with the median qps.
func medianRun(rs []result) result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int { return int(math.Copysign(1, a.qps-b.qps)) })
	return s[len(s)/2]
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cpuTime is the CPU time this process has used, user and system. Only one
// server is queried at a time, so its difference over a run is that
// server's cost; unlike the query rate it hardly depends on what else the
// machine is doing.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memStatus returns VmRSS and VmHWM of this process in MiB.
func memStatus() (rss, hwm float64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = v / 1024
		case "VmHWM:":
			hwm = v / 1024
		}
	}
	return rss, hwm
}

func printTable(w io.Writer, o options, pinned bool, scs []scenario, rs []result, rss, hwm float64, st *catalog.Store) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	snap := st.Snapshot()
	inst := 0
	for _, s := range snap.Services() {
		inst += s.Instances.Len()
	}
	fmt.Fprintf(w, "dnsperf, %d rounds of %s per query kind, -c %d -q %d, EDNS0 %v; servers pinned to CPU %d with GOMAXPROCS=1: %v, dnsperf on CPU %d; %s/%s, Go %s\n\n",
		max(o.rounds, 1), o.duration, o.clients, o.outstanding, o.edns, o.serverCPU, pinned, o.clientCPU, runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintln(w, "| query | qps (median) | range | vs bare | CPU per query | capacity vs bare | avg latency at max | p99 at half rate | lost | rcodes |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for i, sc := range scs {
		r := rs[i]
		p99 := "–"
		if r.hasP99 {
			p99 = fmt.Sprintf("%.0f µs (at %.0f qps)", float64(r.p99)/1e3, r.halfRate)
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f–%.0f | %.2f | %.2f µs | %.2f | %.0f µs | %s | %s | %s |\n",
			sc.label, r.qps, r.minQPS, r.maxQPS, r.ratio, float64(r.cpu)/1e3, r.cpuRatio, float64(r.avg)/1e3, p99, r.lost, r.answers)
	}
	fmt.Fprintf(w, "\nCatalog: %d instances of %d services on %d nodes. Process RSS after the runs: %.1f MiB (peak %.1f MiB); Go heap in use %.1f MiB.\n",
		inst, len(snap.Services()), len(snap.Nodes()), rss, hwm, float64(ms.HeapInuse)/(1<<20))
	fmt.Fprintln(w, "vs bare = median over rounds of (qps / qps of the bare server in the same round).")
	fmt.Fprintln(w, "CPU per query = server process CPU time (user+system, syscalls included) / queries answered, median over rounds;")
	fmt.Fprintln(w, "capacity vs bare = median over rounds of (bare CPU per query / this CPU per query): the rate one core sustains, relative to the bare server, robust to other load on the machine.")
}
