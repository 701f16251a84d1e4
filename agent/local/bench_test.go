package local

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chorusdns/chorus/catalog"
)

// benchService is the i-th service of the benchmarks' states: a typical
// registration with tags, meta and a TTL check.
func benchService(i, port int) ServiceDefinition {
	return ServiceDefinition{
		ID: fmt.Sprintf("web-%05d", i), Name: "web", Port: port, Address: "10.0.0.1",
		Tags: []string{"primary", "v2"}, Meta: map[string]string{"version": "1.2.3", "team": "edge"},
		Check: &CheckDefinition{TTL: Duration(30 * time.Second), Status: catalog.HealthPassing},
	}
}

// writeLegacyState writes a local.json as the whole-file store wrote it,
// with n API services: it is how the benchmarks (and the migration tests)
// get a large state without n registrations.
func writeLegacyState(t testing.TB, dataDir string, n int) {
	t.Helper()
	p := persistedState{Version: uint64(time.Now().UnixMilli()), CheckStates: map[string]persistedStatus{}}
	for i := 0; i < n; i++ {
		d := benchService(i, 1000)
		p.Services = append(p.Services, persistedService{Source: sourceAPI, Definition: d})
		p.CheckStates["service:"+d.ID] = persistedStatus{Status: catalog.HealthPassing}
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "local.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRegister re-registers existing services with a new port (a
// real change each time) from 1, 8 and 32 concurrent callers, with 300
// and 10,000 services registered, and reports registrations per second
// and the process's CPU time (user + system) per registration. The data
// dir is the test's temporary directory: run it on a real disk ($TMPDIR),
// not tmpfs, since the fsyncs dominate.
func BenchmarkRegister(b *testing.B) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, n := range []int{300, 10000} {
		for _, conc := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("services=%d/conc=%d", n, conc), func(b *testing.B) {
				dir := b.TempDir()
				writeLegacyState(b, dir, n)
				l := New(Config{Node: catalog.Node{Name: "bench", Address: "127.0.0.1"}, DataDir: dir}, logger, func(*catalog.NodeRecord) {})
				if err := l.Restore(); err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				var port [32]int
				b.ResetTimer()
				t0, c0 := time.Now(), cpuTime()
				var wg sync.WaitGroup
				for w := 0; w < conc; w++ {
					k := b.N / conc
					if w < b.N%conc {
						k++
					}
					wg.Go(func() {
						for i := 0; i < k; i++ {
							// Each caller owns the services ≡ w (mod conc).
							svc := (w + conc*i) % n
							port[w]++
							if err := l.RegisterService(benchService(svc, 2000+port[w]%60000)); err != nil {
								b.Error(err)
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
			})
		}
	}
}
