package checks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorusdns/chorus/test/testutil"
)

// counter is an HTTP health endpoint that answers with a settable status code
// and body, and counts requests, in total and in flight.
type counter struct {
	code     atomic.Int32
	body     atomic.Value // string
	delay    atomic.Int64 // nanoseconds to wait before answering
	hits     atomic.Int64
	inFlight atomic.Int32
	srv      *httptest.Server
}

func newCounter(t *testing.T) *counter {
	t.Helper()
	c := &counter{}
	c.code.Store(http.StatusOK)
	c.body.Store("")
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.inFlight.Add(1)
		defer c.inFlight.Add(-1)
		c.hits.Add(1)
		if d := time.Duration(c.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(int(c.code.Load()))
		io.WriteString(w, c.body.Load().(string))
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// TestNotifiesEveryResult: every probe's result is reported (the owner of
// the status decides what changed); a new output is a new result.
func TestNotifiesEveryResult(t *testing.T) {
	c := newCounter(t)
	m, rec := startManager(t, Config{})
	mustAdd(t, m, Definition{ID: "web", HTTP: c.srv.URL, Interval: 100 * time.Millisecond})

	waitStatus(t, m, "web", StatusPassing, 5*time.Second)
	before := c.hits.Load()
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := c.hits.Load(); n < before+5 {
			return fmt.Errorf("%d probes since passing, want 5", n-before)
		}
		return nil
	})
	if got := rec.statuses("web"); !slices.Equal(got, []string{StatusPassing}) {
		t.Fatalf("changes %v over many identical probes, want one passing", got)
	}
	if n := len(rec.all()); n < 5 {
		t.Fatalf("%d results notified over at least 5 probes", n)
	}

	// A new output alone is a change.
	c.body.Store("v2")
	testutil.Eventually(t, 5*time.Second, func() error {
		if res, _ := rec.last("web"); res.Output != "HTTP GET "+c.srv.URL+": 200 OK Output: v2" {
			return fmt.Errorf("last notified output %q", res.Output)
		}
		return nil
	})
	if got := rec.statuses("web"); len(got) != 2 {
		t.Errorf("notified %v, want two results", got)
	}
}

// TestFlapDamping runs Consul's thresholds against a real endpoint that flips.
func TestFlapDamping(t *testing.T) {
	c := newCounter(t)
	m, rec := startManager(t, Config{})
	mustAdd(t, m, Definition{
		ID: "web", HTTP: c.srv.URL, Interval: 100 * time.Millisecond,
		SuccessBeforePassing: 3, FailuresBeforeCritical: 3,
	})
	// The first result is reported at once.
	waitStatus(t, m, "web", StatusPassing, 5*time.Second)

	// Failing: critical only after 3 failures in a row.
	c.code.Store(http.StatusInternalServerError)
	before := c.hits.Load()
	waitStatus(t, m, "web", StatusCritical, 5*time.Second)
	if n := c.hits.Load() - before; n < 3 {
		t.Errorf("critical after %d failing probes, want at least 3", n)
	}

	// Recovering: passing only after 3 successes in a row.
	c.code.Store(http.StatusOK)
	before = c.hits.Load()
	waitStatus(t, m, "web", StatusPassing, 5*time.Second)
	if n := c.hits.Load() - before; n < 3 {
		t.Errorf("passing after %d good probes, want at least 3", n)
	}
	if got := rec.statuses("web"); !slices.Equal(got, []string{StatusPassing, StatusCritical, StatusPassing}) {
		t.Errorf("notified %v", got)
	}
}

func TestReplaceKeepsStateAndStopsOld(t *testing.T) {
	old, repl := newCounter(t), newCounter(t)
	m, rec := startManager(t, Config{})
	mustAdd(t, m, Definition{ID: "web", HTTP: old.srv.URL, Interval: 100 * time.Millisecond})
	waitStatus(t, m, "web", StatusPassing, 5*time.Second)

	mustAdd(t, m, Definition{ID: "web", HTTP: repl.srv.URL, Interval: 100 * time.Millisecond})
	testutil.Eventually(t, 5*time.Second, func() error {
		if res, _ := rec.last("web"); res.Output != "HTTP GET "+repl.srv.URL+": 200 OK Output: " {
			return fmt.Errorf("last output %q", res.Output)
		}
		return nil
	})
	// The old runner is gone: its endpoint gets no more probes.
	stoppedAt := old.hits.Load()
	before := repl.hits.Load()
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := repl.hits.Load(); n < before+3 {
			return fmt.Errorf("%d probes of the replacement", n-before)
		}
		return nil
	})
	if n := old.hits.Load(); n != stoppedAt {
		t.Errorf("old endpoint probed %d more times after replacement", n-stoppedAt)
	}
	if got := rec.statuses("web"); !slices.Equal(got, []string{StatusPassing, StatusPassing}) {
		t.Errorf("notified %v, want passing then passing with the new output", got)
	}
}

func TestRemoveStopsCheck(t *testing.T) {
	c := newCounter(t)
	m, rec := startManager(t, Config{})
	mustAdd(t, m, Definition{ID: "web", HTTP: c.srv.URL, Interval: 100 * time.Millisecond})
	waitStatus(t, m, "web", StatusPassing, 5*time.Second)

	m.Remove("web")
	m.Remove("web") // a no-op the second time
	// Any probe in flight was cancelled (its request may still reach the
	// server, once); over four more intervals nothing probes.
	n := c.hits.Load()
	c.code.Store(http.StatusInternalServerError)
	testutil.Consistently(t, 450*time.Millisecond, func() error {
		if got := c.hits.Load(); got > n+1 {
			return fmt.Errorf("%d probes after Remove", got-n)
		}
		return nil
	})
	if got := rec.statuses("web"); !slices.Equal(got, []string{StatusPassing}) {
		t.Errorf("notified %v after Remove", got)
	}
	if err := m.UpdateTTL("web", StatusPassing, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateTTL after Remove: %v, want ErrNotFound", err)
	}
}

// TestSlowCheckDoesNotDelayOthers: a check that times out on every probe does
// not slow down another check.
func TestSlowCheckDoesNotDelayOthers(t *testing.T) {
	slow, fast := newCounter(t), newCounter(t)
	slow.delay.Store(int64(time.Second)) // beyond the 200ms timeout
	m, _ := startManager(t, Config{})
	mustAdd(t, m, Definition{ID: "slow", HTTP: slow.srv.URL, Interval: 200 * time.Millisecond, Timeout: 200 * time.Millisecond})
	mustAdd(t, m, Definition{ID: "fast", HTTP: fast.srv.URL, Interval: 100 * time.Millisecond})

	waitStatus(t, m, "slow", StatusCritical, 5*time.Second)
	start, fastBefore, slowBefore := time.Now(), fast.hits.Load(), slow.hits.Load()
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := slow.hits.Load(); n < slowBefore+4 {
			return fmt.Errorf("%d slow probes", n-slowBefore)
		}
		return nil
	})
	elapsed := time.Since(start)
	// The fast check kept its 100ms pace meanwhile (allow half of it for a loaded machine).
	if want, got := int64(elapsed/(100*time.Millisecond))/2, fast.hits.Load()-fastBefore; got < want {
		t.Errorf("fast check probed %d times in %s, want at least %d", got, elapsed, want)
	}
	if res, _ := lastResult(m, "slow"); res.Output != "Get \""+slow.srv.URL+"\": context deadline exceeded" {
		t.Errorf("slow output %q", res.Output)
	}
}

// overlapProber wraps a real prober and records the most probes running at once.
type overlapProber struct {
	inner    prober
	inFlight atomic.Int32
	maxIn    atomic.Int32
	probes   atomic.Int32
}

func (p *overlapProber) probe(ctx context.Context) (string, string) {
	n := p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	p.probes.Add(1)
	for m := p.maxIn.Load(); n > m && !p.maxIn.CompareAndSwap(m, n); m = p.maxIn.Load() {
	}
	return p.inner.probe(ctx)
}

// TestNoOverlap: a check whose probes last its whole interval (a Timeout as
// long as the Interval) never runs two probes at once; the next one follows
// at once.
// It is measured around the prober, since the server may see a cancelled
// request end after the next one started.
func TestNoOverlap(t *testing.T) {
	slow := newCounter(t)
	slow.delay.Store(int64(time.Minute))
	def := Definition{ID: "slow", HTTP: slow.srv.URL, Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond}
	d := def.withDefaults()
	p := &overlapProber{inner: newHTTPProber(d, DefaultOutputMaxSize)}
	r := &runner{def: d, prober: p, slot: &slot{id: d.ID}, fresh: true}
	m := New(Config{}, nil, nil)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(ctx, m)
	}()
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := p.probes.Load(); n < 6 {
			return fmt.Errorf("%d probes", n)
		}
		return nil
	})
	cancel()
	<-done
	if got := p.maxIn.Load(); got != 1 {
		t.Errorf("%d probes ran at once, want 1", got)
	}
}

// TestFirstProbeIsPrompt: a new check with a long interval probes within about
// a second, not at a random point of its interval.
func TestFirstProbeIsPrompt(t *testing.T) {
	c := newCounter(t)
	m, _ := startManager(t, Config{})
	start := time.Now()
	for i := range 5 {
		mustAdd(t, m, Definition{ID: fmt.Sprint("web", i), HTTP: c.srv.URL, Interval: time.Hour})
	}
	for i := range 5 {
		waitStatus(t, m, fmt.Sprint("web", i), StatusPassing, 3*time.Second)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("first probes took %s", took)
	}
}

func TestFirstDelay(t *testing.T) {
	for range 100 {
		r := &runner{def: Definition{Interval: time.Hour}, fresh: true}
		if d := r.firstDelay(); d < 0 || d >= firstRunJitter {
			t.Fatalf("fresh check first delay %s, want within [0, %s)", d, firstRunJitter)
		}
		r = &runner{def: Definition{Interval: 200 * time.Millisecond}, fresh: true}
		if d := r.firstDelay(); d < 0 || d >= 200*time.Millisecond {
			t.Fatalf("fresh check first delay %s, want within its 200ms interval", d)
		}
		r = &runner{def: Definition{Interval: 5 * time.Second}}
		if d := r.firstDelay(); d < 0 || d >= 5*time.Second {
			t.Fatalf("replacement first delay %s, want within its interval", d)
		}
	}
}

func TestAddBeforeRun(t *testing.T) {
	c := newCounter(t)
	rec := &recorder{}
	m := New(Config{}, slog.New(slog.DiscardHandler), rec.notify)
	recorders.Store(m, rec)
	defer recorders.Delete(m)
	mustAdd(t, m, Definition{ID: "web", HTTP: c.srv.URL, Interval: 100 * time.Millisecond})
	if res, ok := rec.last("web"); ok {
		t.Fatalf("a result before Run: %+v", res)
	}
	if n := c.hits.Load(); n != 0 {
		t.Fatalf("%d probes before Run", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	waitStatus(t, m, "web", StatusPassing, 5*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := m.Run(context.Background()); !errors.Is(err, ErrStopped) {
		t.Errorf("second Run: %v, want ErrStopped", err)
	}
	if err := m.Add(Definition{ID: "late", TTL: time.Second}); !errors.Is(err, ErrStopped) {
		t.Errorf("Add after Run: %v, want ErrStopped", err)
	}
}

func TestAddRejectsInvalid(t *testing.T) {
	m := New(Config{}, nil, nil)
	tests := []struct {
		def  Definition
		want error
	}{
		{Definition{TTL: time.Second}, ErrInvalid}, // no ID
		{Definition{ID: "x"}, ErrInvalid},
		{Definition{ID: "x", Args: []string{"true"}, Interval: time.Second}, ErrScriptDisabled},
	}
	for _, tc := range tests {
		if err := m.Add(tc.def); !errors.Is(err, tc.want) {
			t.Errorf("Add(%+v) = %v, want %v", tc.def, err, tc.want)
		}
	}
	if _, ok := lastResult(m, "x"); ok {
		t.Error("an invalid check was registered")
	}
}

// TestRunWaitsForChecks: Run returns only after every check goroutine has
// exited, promptly even with probes in flight.
func TestRunWaitsForChecks(t *testing.T) {
	c := newCounter(t)
	c.delay.Store(int64(time.Minute))
	m := New(Config{}, nil, nil)
	for i := range 50 {
		mustAdd(t, m, Definition{ID: fmt.Sprint("c", i), HTTP: c.srv.URL, Interval: 200 * time.Millisecond})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := c.inFlight.Load(); n < 10 {
			return fmt.Errorf("%d probes in flight", n)
		}
		return nil
	})
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Run took %s to return", took)
	}
	m.wg.Wait() // returns at once: Run already waited
}

// TestConcurrentUse hammers the Manager from several goroutines under -race.
func TestConcurrentUse(t *testing.T) {
	c := newCounter(t)
	m, _ := startManager(t, Config{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 30 {
				id := fmt.Sprint("c", i%5)
				switch (g + i) % 4 {
				case 0:
					_ = m.Add(Definition{ID: id, HTTP: c.srv.URL, Interval: 100 * time.Millisecond})
				case 1:
					_ = m.Add(Definition{ID: id, TTL: 100 * time.Millisecond})
					_ = m.UpdateTTL(id, StatusPassing, "ok")
				case 2:
					_ = m.UpdateTTL(id, StatusCritical, "down")
				case 3:
					m.Remove(id)
				}
			}
		})
	}
	wg.Wait()
}

// TestNotifyMayCallManager: notify may call Add and Remove (here it
// deregisters a check once it turns critical, as the agent does for
// DeregisterCriticalServiceAfter) without deadlocking.
func TestNotifyMayCallManager(t *testing.T) {
	c := newCounter(t)
	var m *Manager
	removed := make(chan string, 1)
	rec := &recorder{}
	m = New(Config{}, nil, func(res Result) {
		rec.notify(res)
		if res.Status == StatusCritical && res.CheckID == "web" {
			m.Remove(res.CheckID)
			_ = m.Add(Definition{ID: res.CheckID + "-replacement", TTL: time.Minute})
			removed <- res.CheckID
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	recorders.Store(m, rec)
	defer func() {
		cancel()
		<-done
		recorders.Delete(m)
	}()
	mustAdd(t, m, Definition{ID: "web", HTTP: c.srv.URL, Interval: 100 * time.Millisecond})
	waitStatus(t, m, "web", StatusPassing, 5*time.Second)
	c.code.Store(http.StatusInternalServerError)
	select {
	case id := <-removed:
		if id != "web" {
			t.Fatalf("removed %q", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("notify did not see the check turn critical")
	}
	if err := m.UpdateTTL("web", StatusPassing, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("web still registered: UpdateTTL = %v", err)
	}
	if err := m.UpdateTTL("web-replacement", StatusPassing, ""); err != nil {
		t.Errorf("replacement added from notify: UpdateTTL = %v", err)
	}
	if _, ok := lastResult(m, "web-replacement"); !ok {
		t.Error("the check added from notify is missing")
	}
}
