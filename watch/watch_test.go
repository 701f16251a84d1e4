package watch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/agent"
	"github.com/chorusdns/chorus/test/testutil"
	"github.com/chorusdns/chorus/watch"
)

// startAgent starts an in-process agent on 127.0.0.1 (HTTP on httpPort, 0
// for any) and returns it with an API client for it; the agent is killed at
// cleanup.
func startAgent(t *testing.T, httpPort int) (*agent.Agent, *api.Client) {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.NodeName = "alpha"
	cfg.DataDir = t.TempDir()
	cfg.Bind, cfg.Client = "127.0.0.1", "127.0.0.1"
	cfg.HTTPPort, cfg.DNSPort, cfg.SerfPort = httpPort, 0, 0
	cfg.GossipProfile = "local"
	a, err := agent.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Kill)
	c, err := api.NewClient(&api.Config{Address: a.HTTPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	return a, c
}

// recorder collects the results a watch reports.
type recorder struct {
	mu      sync.Mutex
	results [][]byte
}

func (r *recorder) add(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, b)
}

func (r *recorder) get() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.results...)
}

// wait waits until exactly n results were reported.
func (r *recorder) wait(t *testing.T, n int) [][]byte {
	t.Helper()
	var got [][]byte
	testutil.Eventually(t, 10*time.Second, func() error {
		if got = r.get(); len(got) != n {
			return fmt.Errorf("%d results, want %d", len(got), n)
		}
		return nil
	})
	return got
}

// run runs p until the test ends.
func run(t *testing.T, p watch.Plan, c *api.Client) *recorder {
	t.Helper()
	r := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, c, r.add) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

func register(t *testing.T, c *api.Client, name string, port int) {
	t.Helper()
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: name, Port: port, Check: &api.AgentServiceCheck{TTL: "10m"}}); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		plan watch.Plan
		ok   bool
	}{
		{watch.Plan{Type: "service", Service: "web"}, true},
		{watch.Plan{Type: "service", Service: "web", Passing: true}, true},
		{watch.Plan{Type: "service"}, false},
		{watch.Plan{Type: "service", Service: "web", State: "critical"}, false},
		{watch.Plan{Type: "services"}, true},
		{watch.Plan{Type: "services", Service: "web"}, false},
		{watch.Plan{Type: "nodes"}, true},
		{watch.Plan{Type: "nodes", Passing: true}, false},
		{watch.Plan{Type: "checks"}, true},
		{watch.Plan{Type: "checks", State: "critical"}, true},
		{watch.Plan{Type: "checks", Service: "web"}, true},
		{watch.Plan{Type: "checks", Service: "web", State: "passing"}, false},
		{watch.Plan{Type: "checks", State: "bad"}, false},
		{watch.Plan{Type: "checks", Passing: true}, false},
		{watch.Plan{Type: "key"}, false},
		{watch.Plan{}, false},
	} {
		err := tc.plan.Validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, watch.ErrInvalidPlan)) {
			t.Errorf("%+v: Validate() = %v, want ok=%v", tc.plan, err, tc.ok)
		}
	}
}

// TestRunReportsChangesOnly: every type reports its first result, then
// exactly one result per change of its own answer, and nothing for
// changes elsewhere in the catalog.
func TestRunReportsChangesOnly(t *testing.T) {
	_, c := startAgent(t, 0)
	register(t, c, "web", 1)
	service := run(t, watch.Plan{Type: "service", Service: "web"}, c)
	passing := run(t, watch.Plan{Type: "service", Service: "web", Passing: true}, c)
	services := run(t, watch.Plan{Type: "services"}, c)
	nodes := run(t, watch.Plan{Type: "nodes"}, c)
	critical := run(t, watch.Plan{Type: "checks", State: "critical"}, c)
	webChecks := run(t, watch.Plan{Type: "checks", Service: "web"}, c)
	for _, r := range []*recorder{service, passing, services, nodes, critical, webChecks} {
		r.wait(t, 1)
	}
	if got := string(passing.get()[0]); got != "[]" {
		t.Fatalf("passing instances of web with a critical TTL check: %s", got)
	}

	// web's check passes: web's instance, its passing view, the critical
	// checks and web's checks change; the service list and nodes do not.
	if err := c.Agent().PassTTL("service:web", "ok"); err != nil {
		t.Fatal(err)
	}
	service.wait(t, 2)
	passing.wait(t, 2)
	critical.wait(t, 2)
	webChecks.wait(t, 2)

	// A new service changes the service list and the critical checks
	// (its TTL check starts critical), not web's views.
	register(t, c, "api", 2)
	services.wait(t, 2)
	critical.wait(t, 3)

	// The same registration again changes nothing; a port change of web
	// is one change of web's instance view.
	register(t, c, "api", 2)
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "web", Port: 3}); err != nil {
		t.Fatal(err)
	}
	got := service.wait(t, 3)
	var entries []api.ServiceEntry
	if err := json.Unmarshal(got[2], &entries); err != nil || len(entries) != 1 || entries[0].Service.Port != 3 {
		t.Fatalf("web after its port change: %s (%v)", got[2], err)
	}
	// Re-registering without a check dropped web's check: its checks
	// view changed, its passing view kept the one instance but on port 3.
	webChecks.wait(t, 3)
	passing.wait(t, 3)

	want := map[string]struct {
		r    *recorder
		want int
	}{"service": {service, 3}, "passing": {passing, 3}, "services": {services, 2}, "nodes": {nodes, 1}, "critical": {critical, 3}, "checks": {webChecks, 3}}
	// Over several debounce windows, no watch reports more than its
	// changes (what is still in flight arrives meanwhile).
	testutil.Consistently(t, 500*time.Millisecond, func() error {
		for name, tc := range want {
			if n := len(tc.r.get()); n > tc.want {
				return fmt.Errorf("%s: %d results, want %d", name, n, tc.want)
			}
		}
		return nil
	})
	for name, tc := range want {
		res := tc.r.get()
		if len(res) != tc.want {
			t.Errorf("%s: %d results, want %d", name, len(res), tc.want)
		}
		for i := 1; i < len(res); i++ {
			if bytes.Equal(res[i], res[i-1]) {
				t.Errorf("%s: result %d repeats the one before: %s", name, i, res[i])
			}
		}
	}
}

// TestRunDebounces: changes inside one debounce window are reported once,
// with the last state.
func TestRunDebounces(t *testing.T) {
	_, c := startAgent(t, 0)
	register(t, c, "web", 1)
	r := run(t, watch.Plan{Type: "service", Service: "web", Debounce: 2 * time.Second}, c)
	r.wait(t, 1)
	start := time.Now()
	for port := 2; port <= 6; port++ {
		register(t, c, "web", port)
	}
	burst := time.Since(start)
	got := r.wait(t, 2)
	if burst > time.Second {
		t.Skipf("the 5 registrations took %v, longer than half the debounce window", burst)
	}
	var entries []api.ServiceEntry
	if err := json.Unmarshal(got[1], &entries); err != nil || len(entries) != 1 || entries[0].Service.Port != 6 {
		t.Fatalf("result after the burst: %s", got[1])
	}
	// The same registration again: no new result, even after the window.
	register(t, c, "web", 6)
	testutil.Consistently(t, 3*time.Second, func() error {
		if n := len(r.get()); n != 2 {
			return fmt.Errorf("%d results after an unchanged registration, want 2", n)
		}
		return nil
	})
}

func TestRunFirstQueryError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	p := watch.Plan{Type: "nodes"}
	called := false
	err = p.Run(context.Background(), c, func([]byte) { called = true })
	var oe *net.OpError
	if err == nil || !errors.As(err, &oe) || called {
		t.Fatalf("Run against a closed port = %v (called %v), want a dial error", err, called)
	}
	if err := (&watch.Plan{Type: "nope"}).Run(context.Background(), c, nil); !errors.Is(err, watch.ErrInvalidPlan) {
		t.Fatalf("Run of an invalid plan = %v", err)
	}
}

// TestRunRetriesAfterFirstResult: after a first result, failed queries
// are logged and retried, and the watch reports the result of the agent
// that comes back on the same address.
func TestRunRetriesAfterFirstResult(t *testing.T) {
	port := testutil.FreePort(t)
	first, c := startAgent(t, port)
	var logs testutil.SyncBuffer
	p := watch.Plan{Type: "services", WaitTime: 200 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	r := run(t, p, c)
	r.wait(t, 1)
	first.Kill()
	testutil.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(logs.String(), "watch query failed; retrying") {
			return errors.New("no retry logged")
		}
		return nil
	})
	_, c2 := startAgent(t, port)
	register(t, c2, "web", 1)
	got := r.wait(t, 2)
	if !strings.Contains(string(got[1]), `"web"`) {
		t.Fatalf("result after the agent came back: %s", got[1])
	}
}
