// Command writes measures registrations per second and agent CPU time per
// registration against a real agent process: Chorus, and a Consul agent
// in server mode when -consul names a binary. For each number of local
// instances (-n) it starts a fresh agent with its data dir under -dir
// (use a real disk: every answer waits for an fsync), registers that many
// instances, then, for each number of concurrent clients (-clients),
// re-registers them for -duration, each registration a real change (a
// new port), and reads the agent's CPU time from /proc before and after.
// It prints one Markdown table, with the machine's 1-minute load average
// at the end of each cell.
//
//	go run ./test/bench/writes -chorus ./chorus -consul /path/to/consul
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "writes:", err)
		os.Exit(1)
	}
}

type config struct {
	chorus, consul string
	dir            string
	sizes, clients []int
	duration       time.Duration
}

func run() error {
	var c config
	var sizes, clients string
	flag.StringVar(&c.chorus, "chorus", "", "chorus binary (required)")
	flag.StringVar(&c.consul, "consul", "", "consul binary; empty: Chorus only")
	flag.StringVar(&c.dir, "dir", "", "parent of the agents' data dirs (default: a new directory under the working directory, on its disk)")
	flag.StringVar(&sizes, "n", "300,10000", "local instances registered before measuring")
	flag.StringVar(&clients, "clients", "1,8,32", "concurrent clients")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "measuring time per cell")
	flag.Parse()
	if c.chorus == "" {
		return errors.New("-chorus is required")
	}
	var err error
	if c.sizes, err = ints(sizes); err != nil {
		return err
	}
	if c.clients, err = ints(clients); err != nil {
		return err
	}
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp(".", "bench-writes-"); err != nil {
			return err
		}
		defer os.RemoveAll(c.dir)
	}
	kinds := []string{"chorus"}
	if c.consul != "" {
		kinds = append(kinds, "consul")
	}
	fmt.Println("| agent | local instances | clients | registrations/s | CPU ms/registration | net of idle | p50 ms | p99 ms | errors | load avg |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, kind := range kinds {
		for _, n := range c.sizes {
			if err := c.measure(kind, n); err != nil {
				return fmt.Errorf("%s with %d instances: %w", kind, n, err)
			}
		}
	}
	return nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// agent is a started agent process.
type agent struct {
	cmd  *exec.Cmd
	http string
	done chan error
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *config) start(kind, dataDir string) (*agent, error) {
	ports := make([]int, 5)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	var cmd *exec.Cmd
	switch kind {
	case "chorus":
		cmd = exec.Command(c.chorus, "agent", "--data-dir", dataDir, "--node", "bench", "--bind", "127.0.0.1", "--client", "127.0.0.1",
			"--http-port", strconv.Itoa(ports[0]), "--dns-port", strconv.Itoa(ports[1]), "--serf-port", strconv.Itoa(ports[2]), "--log-level", "warn")
	case "consul":
		// Server mode, one server that elects itself: registrations go
		// through Raft, as on a Consul server.
		cmd = exec.Command(c.consul, "agent", "-server", "-bootstrap-expect", "1", "-data-dir", dataDir, "-node", "bench",
			"-bind", "127.0.0.1", "-client", "127.0.0.1", "-http-port", strconv.Itoa(ports[0]), "-dns-port", "-1",
			"-serf-lan-port", strconv.Itoa(ports[2]), "-serf-wan-port", strconv.Itoa(ports[3]), "-server-port", strconv.Itoa(ports[4]),
			"-grpc-port", "-1", "-grpc-tls-port", "-1", "-log-level", "warn")
	}
	logf, err := os.Create(filepath.Join(filepath.Dir(dataDir), kind+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	a := &agent{cmd: cmd, http: "http://127.0.0.1:" + strconv.Itoa(ports[0]), done: make(chan error, 1)}
	go func() { a.done <- cmd.Wait(); logf.Close() }()
	// Ready: the agent answers and (Consul) has a leader.
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(a.http + "/v1/status/leader")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && len(bytes.Trim(b, `" `+"\n")) > 0 {
				return a, nil
			}
		}
		select {
		case err := <-a.done:
			return nil, fmt.Errorf("%s exited: %v (see %s.log)", kind, err, kind)
		default:
		}
		if time.Now().After(deadline) {
			a.stop()
			return nil, fmt.Errorf("%s not ready within 60 s", kind)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (a *agent) stop() {
	a.cmd.Process.Signal(os.Interrupt)
	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
	}
}

// cpu returns the process's user + system CPU time.
func (a *agent) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil // USER_HZ = 100
}

// idleCPU returns the agent's CPU seconds per second over d without load.
func (a *agent) idleCPU(d time.Duration) (float64, error) {
	c0, err := a.cpu()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	time.Sleep(d)
	c1, err := a.cpu()
	if err != nil {
		return 0, err
	}
	return (c1 - c0).Seconds() / time.Since(t0).Seconds(), nil
}

// body is instance i's registration: a typical one, with tags, meta and
// a TTL check (long enough not to expire while measuring).
func body(i, port int) []byte {
	return fmt.Appendf(nil, `{"ID":"bench-%05d","Name":"bench","Port":%d,"Address":"10.0.0.1","Tags":["primary","v2"],`+
		`"Meta":{"version":"1.2.3","team":"edge"},"Check":{"TTL":"10m","Status":"passing"}}`, i, port)
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}

func register(url string, b []byte) error {
	req, _ := http.NewRequest(http.MethodPut, url+"/v1/agent/service/register", bytes.NewReader(b))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

func (c *config) measure(kind string, n int) error {
	dir, err := os.MkdirTemp(c.dir, fmt.Sprintf("%s-%d-", kind, n))
	if err != nil {
		return err
	}
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	a, err := c.start(kind, dataDir)
	if err != nil {
		return err
	}
	defer a.stop()
	// Register the n instances, 32 at a time.
	t0 := time.Now()
	ports := make([]int, n)
	if _, _, err := load(a.http, ports, 32, func(w, k int) (int, bool) { return k*32 + w, k*32+w < n }); err != nil {
		return fmt.Errorf("registering %d instances: %w", n, err)
	}
	fmt.Fprintf(os.Stderr, "%s: registered %d instances in %.1f s\n", kind, n, time.Since(t0).Seconds())
	// The agent's own background work (gossip, anti-entropy, timers),
	// measured idle, is reported apart: "net of idle" subtracts it.
	idle, err := a.idleCPU(3 * time.Second)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s: idle CPU %.1f ms/s\n", kind, idle*1000)
	for _, conc := range c.clients {
		cpu0, err := a.cpu()
		if err != nil {
			return err
		}
		stop := time.Now().Add(c.duration)
		start := time.Now()
		count, lat, err := load(a.http, ports, conc, func(w, k int) (int, bool) {
			// Client w owns the instances ≡ w (mod conc), in turn.
			per := (n - w + conc - 1) / conc
			return w + conc*(k%per), time.Now().Before(stop)
		})
		elapsed := time.Since(start)
		cpu1, cerr := a.cpu()
		if cerr != nil {
			return cerr
		}
		errs := 0
		if err != nil {
			errs = 1
			fmt.Fprintf(os.Stderr, "%s n=%d clients=%d: %v\n", kind, n, conc, err)
		}
		rate := float64(count) / elapsed.Seconds()
		cpuPer := float64((cpu1 - cpu0).Microseconds()) / 1000 / float64(max(count, 1))
		netPer := max(0, float64((cpu1-cpu0).Microseconds())/1000-idle*1000*elapsed.Seconds()) / float64(max(count, 1))
		fmt.Printf("| %s | %d | %d | %.0f | %.3f | %.3f | %.1f | %.1f | %d | %s |\n", kind, n, conc, rate, cpuPer, netPer,
			lat.quantile(0.5), lat.quantile(0.99), errs, loadAvg())
	}
	return nil
}

// latencies collects request times (ms).
type latencies struct {
	mu sync.Mutex
	v  []float64
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.v = append(l.v, float64(d.Microseconds())/1000)
	l.mu.Unlock()
}

func (l *latencies) quantile(q float64) float64 {
	if len(l.v) == 0 {
		return 0
	}
	s := append([]float64(nil), l.v...)
	sort.Float64s(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// load runs conc clients; client w's k-th request registers the instance
// next(w, k) names, until next says stop, each with another port than the
// instance's previous registration (ports[i]; each instance belongs to
// one client), so that every registration is a real change. It returns
// the registrations acknowledged and their latencies; the first error
// stops every client.
func load(url string, ports []int, conc int, next func(w, k int) (int, bool)) (int, *latencies, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var count atomic.Int64
	lat := &latencies{}
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			for k := 0; ctx.Err() == nil; k++ {
				i, ok := next(w, k)
				if !ok {
					return
				}
				ports[i]++
				t := time.Now()
				if err := register(url, body(i, 1024+ports[i]%60000)); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
				lat.add(time.Since(t))
				count.Add(1)
			}
		})
	}
	wg.Wait()
	return int(count.Load()), lat, first
}

// loadAvg returns the machine's 1-minute load average at the end of a
// cell (other work on the machine moves the rates), or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}
