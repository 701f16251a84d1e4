package agent

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/test/testutil"
)

// BenchmarkBlockingQueries10k parks 10,000 blocking queries
// (/v1/health/service/watched?index=…&wait=5m) on one agent, then measures
// what they cost: memory and goroutines per parked query, CPU per change of
// an unrelated service (which must wake none of them), and CPU and latency
// to answer all of them when the watched service changes.
//
// The queries come from a child process (this test binary running
// TestBlockingQueriesClient) holding one keep-alive connection per query,
// so the figures are the agent's alone and the file-descriptor limit is
// not shared. CHORUS_BQ_N overrides the number of queries. Run with
//
//	go test -run '^$' -bench BlockingQueries10k -benchtime 3x ./agent/
func BenchmarkBlockingQueries10k(b *testing.B) {
	n := 10000
	if s := os.Getenv("CHORUS_BQ_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	const flaps = 100
	cfg := testConfig(b, "bench")
	cfg.LogLevel = "info"
	a := startAgent(b, cfg)
	mustDo(b, a, "PUT", "/v1/agent/service/register", `{"Name":"watched","Port":80,"Check":{"CheckID":"watched","TTL":"1h","Status":"passing"}}`)
	mustDo(b, a, "PUT", "/v1/agent/service/register", `{"Name":"flappy","Port":81,"Check":{"CheckID":"flappy","TTL":"1h","Status":"passing"}}`)
	client := startBlockingClient(b, a.HTTPAddr(), n)

	flap := func(count int) time.Duration {
		start := cpuTime()
		for i := 0; i < count; i++ {
			st := []string{catalog.HealthCritical, catalog.HealthPassing}[i%2]
			if err := a.Local().UpdateTTL("flappy", st, fmt.Sprint(i)); err != nil {
				b.Fatal(err)
			}
		}
		return (cpuTime() - start) / time.Duration(count)
	}
	flap(flaps) // warm up
	idleFlap := flap(flaps)
	heap0, stack0, g0 := memory()

	var parkedHeap, parkedStack, parkedG float64
	var busyFlap, answerCPU, answerWall time.Duration
	woken := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, idx := getIndex(b, a, "/v1/health/service/watched")
		client.do(b, "arm /v1/health/service/watched?index="+strconv.FormatUint(idx, 10)+"&wait=5m")
		testutil.WaitBlockingQueries(b, 2*time.Minute, "http://"+a.HTTPAddr(), n)
		if i == 0 {
			heap, stack, g := memory()
			parkedHeap = float64(heap-heap0) / float64(n)
			parkedStack = float64(stack-stack0) / float64(n)
			parkedG = float64(g-g0) / float64(n)
		}
		busyFlap += flap(flaps)
		// That no query woke can only be shown over a window: 50 ms,
		// far longer than waking and answering a query takes.
		testutil.Consistently(b, 50*time.Millisecond, func() error {
			if got := client.do(b, "count"); got != "0" {
				return fmt.Errorf("%s queries woke on an unrelated change", got)
			}
			return nil
		})
		start, wall := cpuTime(), time.Now()
		st := []string{catalog.HealthWarning, catalog.HealthPassing}[i%2]
		if err := a.Local().UpdateTTL("watched", st, "change "+strconv.Itoa(i)); err != nil {
			b.Fatal(err)
		}
		got, _ := strconv.Atoi(client.do(b, "wait "+strconv.Itoa(n)+" 60000"))
		answerWall += time.Since(wall)
		answerCPU += cpuTime() - start
		if got != n {
			b.Fatalf("%d of %d queries answered the change", got, n)
		}
		woken += got
		client.do(b, "reset")
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d) / float64(b.N) / float64(time.Microsecond) }
	b.ReportMetric(float64(n), "queries")
	b.ReportMetric(parkedHeap, "heap_B/query")
	b.ReportMetric(parkedStack, "stack_B/query")
	b.ReportMetric(parkedG, "goroutines/query")
	b.ReportMetric(float64(idleFlap)/float64(time.Microsecond), "cpu_µs/unrelated_change_idle")
	b.ReportMetric(per(busyFlap), "cpu_µs/unrelated_change_parked")
	b.ReportMetric(per(answerCPU)/1000, "cpu_ms/watched_change")
	b.ReportMetric(per(answerWall)/1000, "wall_ms/watched_change")
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memory returns heap and stack bytes in use and goroutines, after a GC.
func memory() (heap, stack uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse, runtime.NumGoroutine()
}

func getIndex(t testing.TB, a *Agent, path string) ([]byte, uint64) {
	t.Helper()
	resp, err := http.Get("http://" + a.HTTPAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	idx, err := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	if err != nil {
		t.Fatalf("X-Consul-Index %q", resp.Header.Get("X-Consul-Index"))
	}
	return body, idx
}

// blockingClient drives the child process that holds the queries.
type blockingClient struct {
	in  io.Writer
	out *bufio.Scanner
}

func startBlockingClient(t testing.TB, addr string, n int) *blockingClient {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBlockingQueriesClient$")
	cmd.Env = append(os.Environ(), "CHORUS_BQ_CLIENT=1", "CHORUS_BQ_ADDR="+addr, "CHORUS_BQ_N="+strconv.Itoa(n))
	cmd.Stderr = t.Output()
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &blockingClient{in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() {
		fmt.Fprintln(in, "quit")
		in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	if got := c.do(t, "dial"); got != "ok" {
		t.Fatalf("client: %s", got)
	}
	return c
}

// do sends one command and returns the reply line.
func (c *blockingClient) do(t testing.TB, cmd string) string {
	t.Helper()
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		t.Fatal(err)
	}
	for c.out.Scan() {
		line := c.out.Text()
		if reply, ok := strings.CutPrefix(line, "reply "); ok {
			return reply
		}
	}
	t.Fatalf("client exited during %q: %v", cmd, c.out.Err())
	return ""
}

// TestBlockingQueriesClient is the child process of
// BenchmarkBlockingQueries10k; it does nothing in a normal test run.
// Commands on stdin: dial, arm <path>, count, wait <n> <ms>, reset, quit.
func TestBlockingQueriesClient(t *testing.T) {
	if os.Getenv("CHORUS_BQ_CLIENT") == "" {
		t.Skip("child process of BenchmarkBlockingQueries10k")
	}
	addr := os.Getenv("CHORUS_BQ_ADDR")
	n, _ := strconv.Atoi(os.Getenv("CHORUS_BQ_N"))
	var conns []net.Conn
	var answered counter
	reply := func(s string) { fmt.Printf("reply %s\n", s) }
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "dial":
			for i := 0; i < n; i++ {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					reply(fmt.Sprintf("dial %d: %v", i, err))
					return
				}
				conns = append(conns, c)
				go func() {
					br := bufio.NewReader(c)
					for {
						resp, err := http.ReadResponse(br, nil)
						if err != nil {
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						answered.add()
					}
				}()
			}
			reply("ok")
		case "arm":
			req := "GET " + f[1] + " HTTP/1.1\r\nHost: chorus\r\n\r\n"
			for _, c := range conns {
				if _, err := io.WriteString(c, req); err != nil {
					reply(err.Error())
					return
				}
			}
			reply("ok")
		case "count":
			reply(strconv.FormatInt(answered.get(), 10))
		case "wait":
			want, _ := strconv.ParseInt(f[1], 10, 64)
			ms, _ := strconv.Atoi(f[2])
			reply(strconv.FormatInt(answered.wait(want, time.Duration(ms)*time.Millisecond), 10))
		case "reset":
			answered.reset()
			reply("ok")
		case "quit":
			for _, c := range conns {
				c.Close()
			}
			return
		}
	}
}

// counter counts answers; wait returns as soon as the count reaches a
// target. Safe for concurrent use.
type counter struct {
	mu      sync.Mutex
	n       int64
	want    int64
	reached chan struct{} // closed when n reaches want; nil when no one waits
}

func (c *counter) add() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if c.reached != nil && c.n >= c.want {
		close(c.reached)
		c.reached = nil
	}
}

func (c *counter) get() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *counter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = 0
}

// wait waits until the count reaches want or timeout passes, and returns
// the count then. One caller at a time.
func (c *counter) wait(want int64, timeout time.Duration) int64 {
	c.mu.Lock()
	if n := c.n; n >= want {
		c.mu.Unlock()
		return n
	}
	reached := make(chan struct{})
	c.want, c.reached = want, reached
	c.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-reached:
	case <-timer.C:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reached = nil
	return c.n
}
