package checks

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chorusdns/chorus/test/testutil"
)

// TestCostThousandHTTPChecks measures what 1,000 HTTP checks cost the process
// that runs them (issue 4's target: under 5% of one core at a 10s interval).
// The health endpoint runs in a child process, so getrusage of this process
// counts the checks alone. It runs only with CHORUS_BENCH=1:
//
//	CHORUS_BENCH=1 go test -run TestCostThousandHTTPChecks -v ./checks
//
// CHORUS_BENCH_INTERVAL (default 1s) and CHORUS_BENCH_WINDOW (default 20s) set
// the check interval and the measured window; the figure is scaled to a 10s
// interval (the cost is proportional to the probe rate).
func TestCostThousandHTTPChecks(t *testing.T) {
	if os.Getenv("CHORUS_BENCH") != "1" {
		t.Skip("set CHORUS_BENCH=1 to measure the cost of 1,000 HTTP checks")
	}
	interval := envDuration(t, "CHORUS_BENCH_INTERVAL", time.Second)
	window := envDuration(t, "CHORUS_BENCH_WINDOW", 20*time.Second)
	const n = 1000

	addr := startCostServer(t)
	base := "http://" + addr
	var notified atomic.Int64
	m := New(Config{}, nil, func(Result) { notified.Add(1) })
	for i := range n {
		mustAdd(t, m, Definition{ID: fmt.Sprint("web-", i), HTTP: fmt.Sprintf("%s/health/%d", base, i), Interval: interval})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	// Warm up: every check has probed (and passed) at least once.
	testutil.Eventually(t, interval+10*time.Second, func() error {
		if got := notified.Load(); got < n {
			return fmt.Errorf("%d of %d checks reported", got, n)
		}
		return nil
	})
	time.Sleep(interval) // let the first-probe burst settle into the steady rate

	probes0 := costServerCount(t, base)
	cpu0, wall0 := cpuTime(t), time.Now()
	time.Sleep(window) // the measurement window itself
	cpu1, wall1 := cpuTime(t), time.Now()
	probes1 := costServerCount(t, base)

	wall := wall1.Sub(wall0)
	cpu := cpu1 - cpu0
	probes := probes1 - probes0
	core := cpu.Seconds() / wall.Seconds()
	at10s := core * interval.Seconds() / (10 * time.Second).Seconds()
	perProbe := time.Duration(0)
	if probes > 0 {
		perProbe = cpu / time.Duration(probes)
	}
	t.Logf("%d HTTP checks at %s for %s: %d probes (%.0f/s), CPU %s = %.2f%% of one core, %s per probe",
		n, interval, wall.Round(time.Millisecond), probes, float64(probes)/wall.Seconds(), cpu.Round(time.Millisecond), 100*core, perProbe.Round(time.Microsecond))
	t.Logf("scaled to a 10s interval: %.2f%% of one core (target < 5%%)", 100*at10s)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%d goroutines, heap in use %.1f MiB, %d GC cycles so far", runtime.NumGoroutine(), float64(ms.HeapInuse)/(1<<20), ms.NumGC)
	if want := float64(n) * wall.Seconds() / interval.Seconds(); float64(probes) < 0.9*want {
		t.Errorf("only %d probes in the window, want about %.0f", probes, want)
	}
	if notified.Load() != n {
		t.Errorf("%d notifications for %d steady checks, want one each", notified.Load(), n)
	}
	if at10s > 0.05 {
		t.Errorf("%.2f%% of one core at a 10s interval, over the 5%% budget", 100*at10s)
	}
}

func envDuration(t *testing.T, key string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(key)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return d
}

// cpuTime returns the user plus system CPU time of this process so far.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startCostServer runs TestCostHelperServer in a child process and returns the
// address it serves on; the child exits when the test ends.
func startCostServer(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCostHelperServer$")
	cmd.Env = append(os.Environ(), "CHORUS_BENCH_SERVER=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close() // the child exits on EOF
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("cost server: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("cost server said %q", line)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return addr
}

func costServerCount(t *testing.T, base string) int64 {
	t.Helper()
	resp, err := http.Get(base + "/count")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCostHelperServer is the health endpoint of TestCostThousandHTTPChecks, run
// in a child process; it does nothing in a normal test run.
func TestCostHelperServer(t *testing.T) {
	if os.Getenv("CHORUS_BENCH_SERVER") != "1" {
		t.Skip("the child process of TestCostThousandHTTPChecks")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/health/", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, hits.Load())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("listening on %s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
}
