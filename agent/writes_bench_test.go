package agent

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/catalog"
)

// BenchmarkRegisterHTTP measures the whole write path in one process:
// 32 clients (CHORUS_WRITES_CLIENTS) re-register (a new port each time) the agent's own services
// over HTTP, with CHORUS_WRITES_N (default 10,000) services registered,
// every answer after the journal's fsync. It reports registrations per
// second and the process's CPU time per registration; run it with
// -cpuprofile / -memprofile to see where a registration's cost goes
// (`make bench-writes` measures the real binary).
//
//	go test -run '^$' -bench RegisterHTTP -benchtime 20000x ./agent/
func BenchmarkRegisterHTTP(b *testing.B) {
	n := 10000
	if s := os.Getenv("CHORUS_WRITES_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	clients := 32
	if s := os.Getenv("CHORUS_WRITES_CLIENTS"); s != "" {
		clients, _ = strconv.Atoi(s)
	}
	cfg := testConfig(b, "bench")
	cfg.LogLevel = "warn"
	a := startAgent(b, cfg)
	def := func(i, port int) local.ServiceDefinition {
		return local.ServiceDefinition{
			ID: fmt.Sprintf("web-%05d", i), Name: "web", Port: port, Address: "10.0.0.1",
			Tags: []string{"primary", "v2"}, Meta: map[string]string{"version": "1.2.3", "team": "edge"},
			Check: &local.CheckDefinition{TTL: local.Duration(30 * time.Second), Status: catalog.HealthPassing},
		}
	}
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Go(func() {
			for i := w; i < n; i += clients {
				if err := a.Local().RegisterService(def(i, 1000)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	url := "http://" + a.HTTPAddr() + "/v1/agent/service/register"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var next atomic.Int64
	b.ResetTimer()
	t0, c0 := time.Now(), cpuTime()
	for w := 0; w < clients; w++ {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= b.N {
					return
				}
				body := fmt.Sprintf(`{"ID":"web-%05d","Name":"web","Port":%d,"Address":"10.0.0.1","Tags":["primary","v2"],"Meta":{"version":"1.2.3","team":"edge"},"Check":{"TTL":"30s","Status":"passing"}}`,
					(w+clients*k)%n, 2000+k%60000)
				req, _ := http.NewRequest("PUT", url, bytes.NewReader([]byte(body)))
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("register: %s", resp.Status)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(t0), cpuTime()-c0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "regs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/reg")
}
