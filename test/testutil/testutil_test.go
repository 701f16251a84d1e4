package testutil

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestEventually(t *testing.T) {
	calls := 0
	Eventually(t, 5*time.Second, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Fatalf("fn called %d times, want 3", calls)
	}
}

func TestConsistently(t *testing.T) {
	calls := 0
	start := time.Now()
	Consistently(t, 100*time.Millisecond, func() error { calls++; return nil })
	if took := time.Since(start); took < 100*time.Millisecond || calls < 2 {
		t.Fatalf("returned after %v and %d calls", took, calls)
	}
}

// A line logged after the test that made the logger has completed is
// dropped. Unguarded, a line written once every test is over panics
// ("Log in goroutine after TestX has completed"); before that, it lands
// in whichever test or parent is still running. The child process runs
// TestLateLine, which leaves its logger behind for TestMain to use.
func TestLoggerAfterTest(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestLateLine$", "-test.v")
	cmd.Env = append(os.Environ(), "CHORUS_TESTUTIL_LATE_LINE=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "during the test") || strings.Contains(string(out), "after the test") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// lateLine logs with TestLateLine's logger, in the child process only.
var lateLine func()

func TestLateLine(t *testing.T) {
	if os.Getenv("CHORUS_TESTUTIL_LATE_LINE") == "" {
		t.Skip("child process of TestLoggerAfterTest")
	}
	l := Logger(t)
	l.Info("during the test")
	lateLine = func() { l.Info("after the test") }
}

func TestMain(m *testing.M) {
	code := m.Run()
	if lateLine != nil {
		lateLine()
	}
	os.Exit(code)
}

// metricsServer serves page as /metrics on 127.0.0.1 and returns its base
// URL.
func metricsServer(t *testing.T, page string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, page) })
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func TestMetric(t *testing.T) {
	url := metricsServer(t, strings.Join([]string{
		"# HELP chorus_http_blocking_queries Blocking HTTP queries waiting for their answer to change.",
		"# TYPE chorus_http_blocking_queries gauge",
		"chorus_http_blocking_queries 3",
		`chorus_sync_events_total{event="ae_repair"} 2`,
		`chorus_sync_events_total{event="ae_repair_x"} 9`,
		"chorus_catalog_index 1.5e+06",
	}, "\n")+"\n")
	for _, tc := range []struct {
		series string
		want   float64
		err    string
	}{
		{series: "chorus_http_blocking_queries", want: 3},
		{series: `chorus_sync_events_total{event="ae_repair"}`, want: 2},
		{series: "chorus_catalog_index", want: 1.5e6},
		{series: "chorus_http_blocking", err: "no chorus_http_blocking in /metrics"},
	} {
		t.Run(tc.series, func(t *testing.T) {
			got, err := Metric(url, tc.series)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestWaitBlockingQueries(t *testing.T) {
	url := metricsServer(t, "chorus_http_blocking_queries "+strconv.Itoa(2)+"\n")
	WaitBlockingQueries(t, 5*time.Second, url, 2)
}
