package agent

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/chorusdns/chorus/test/testutil"
)

// templateView follows consul-template's watch loop for
// {{ service "name" }} (watch/view.go, dependency/health_service.go): a
// blocking health query with ?passing and ?stale, retried consistent when
// the answer is older than max_stale, an index that resets to 0 when it
// goes backwards, and at least 100 ms between updates.
type templateView struct {
	name     string
	maxStale time.Duration
	wait     time.Duration

	mu        sync.Mutex
	client    *api.Client
	lastIndex uint64
	addrs     []string
	fetches   atomic.Int64
	resets    atomic.Int64
	retries   atomic.Int64
	updates   atomic.Int64
}

func (v *templateView) setClient(c *api.Client) {
	v.mu.Lock()
	v.client = c
	v.mu.Unlock()
}

func (v *templateView) state() (uint64, []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lastIndex, slices.Clone(v.addrs)
}

func (v *templateView) fetch(ctx context.Context) error {
	v.mu.Lock()
	c, idx := v.client, v.lastIndex
	v.mu.Unlock()
	q := (&api.QueryOptions{AllowStale: true, WaitIndex: idx, WaitTime: v.wait}).WithContext(ctx)
	v.fetches.Add(1)
	es, meta, err := c.Health().Service(v.name, "", true, q)
	if err != nil {
		return err
	}
	if meta.LastContact > v.maxStale {
		v.retries.Add(1)
		q.AllowStale = false
		if es, meta, err = c.Health().Service(v.name, "", true, q); err != nil {
			return err
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case meta.LastIndex == v.lastIndex:
		return nil // no new data
	case meta.LastIndex < v.lastIndex:
		v.resets.Add(1)
		v.lastIndex = 0 // the index went backwards: start over
		return nil
	}
	v.lastIndex = meta.LastIndex
	var addrs []string
	for _, e := range es {
		addrs = append(addrs, fmt.Sprintf("%s:%d", e.Service.Address, e.Service.Port))
	}
	slices.Sort(addrs)
	v.addrs = addrs
	v.updates.Add(1)
	return nil
}

func (v *templateView) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			start := time.Now()
			if err := v.fetch(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("fetch: %v", err)
				return
			}
			if d := 100*time.Millisecond - time.Since(start); d > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func (v *templateView) waitFor(t *testing.T, want ...string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		if _, got := v.state(); !slices.Equal(got, want) {
			return fmt.Errorf("view %v, want %v", got, want)
		}
		return nil
	})
}

func TestConsulTemplateWatchPattern(t *testing.T) {
	agents := startCluster(t, 2, nil)
	a := agents[0]
	c := consulClient(t, a)
	reg := func(id, addr string, port int) {
		mustNil(t, "register", c.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: id, Name: "app", Address: addr, Port: port,
			Check: &api.AgentServiceCheck{CheckID: id + "-ttl", TTL: "10m", Status: api.HealthPassing},
		}))
	}
	reg("app1", "10.0.0.1", 80)
	reg("app2", "10.0.0.2", 80)
	mustNil(t, "register", c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "noise", Name: "noise", Port: 1, Check: &api.AgentServiceCheck{CheckID: "noise-ttl", TTL: "10m"},
	}))

	v := &templateView{name: "app", maxStale: 2 * time.Second, wait: 60 * time.Second, client: c}
	v.run(t)
	v.waitFor(t, "10.0.0.1:80", "10.0.0.2:80")

	// Health changes reach the template; a failing instance leaves it.
	mustNil(t, "fail", c.Agent().FailTTL("app2-ttl", "down"))
	v.waitFor(t, "10.0.0.1:80")
	mustNil(t, "pass", c.Agent().PassTTL("app2-ttl", "up"))
	v.waitFor(t, "10.0.0.1:80", "10.0.0.2:80")

	// Another service flapping costs the template nothing: its blocking
	// query stays parked. Once the query is parked no fetch may start;
	// that none does can only be shown over a window: 300 ms, far longer
	// than a wake and a fetch take.
	waitParked(t, a, 1)
	before := v.fetches.Load()
	for i := 0; i < 20; i++ {
		mustNil(t, "flap", c.Agent().UpdateTTL("noise-ttl", fmt.Sprint(i), []string{"pass", "fail"}[i%2]))
	}
	testutil.Consistently(t, 300*time.Millisecond, func() error {
		if n := v.fetches.Load() - before; n != 0 {
			return fmt.Errorf("%d fetches while an unrelated service flapped", n)
		}
		return nil
	})
	// Local reads: never older than max_stale, never a consistent retry.
	if v.retries.Load() != 0 {
		t.Fatalf("%d consistent retries", v.retries.Load())
	}

	// The template switches to another agent (its agent went away): the
	// index it holds is this agent's. Whether the new agent's index is
	// higher or lower, the view ends up with the right data, resetting
	// when the index went backwards.
	reg("app3", "10.0.0.3", 80)
	testutil.Eventually(t, 10*time.Second, func() error {
		es, _, err := consulClient(t, agents[1]).Health().Service("app", "", true, nil)
		if err != nil || len(es) != 3 {
			return fmt.Errorf("node1 sees %d instances (%v)", len(es), err)
		}
		return nil
	})
	v.setClient(consulClient(t, agents[1]))
	v.waitFor(t, "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")

	mustNil(t, "fail", c.Agent().FailTTL("app1-ttl", "down"))
	v.waitFor(t, "10.0.0.2:80", "10.0.0.3:80")

	// An index from the future (e.g. a much higher one from the previous
	// agent) answers at once, and the view resets and refetches. (Taken
	// from agents[1] itself: the view's own index is 0 for a moment
	// whenever the view resets.)
	_, meta, err := consulClient(t, agents[1]).Health().Service("app", "", true, &api.QueryOptions{AllowStale: true})
	mustNil(t, "health", err)
	idx := meta.LastIndex
	w := &templateView{name: "app", maxStale: 2 * time.Second, wait: 30 * time.Second, client: consulClient(t, agents[1]), lastIndex: idx + 1<<40}
	start := time.Now()
	mustNil(t, "fetch", w.fetch(context.Background()))
	if w.resets.Load() != 1 || w.lastIndex != 0 || time.Since(start) > 2*time.Second {
		t.Fatalf("index ahead: resets %d, index %d, after %v", w.resets.Load(), w.lastIndex, time.Since(start))
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		// (Through agents[1], which may still be replicating app1's
		// failure.)
		w.lastIndex = 0
		if err := w.fetch(context.Background()); err != nil {
			return err
		}
		if _, got := w.state(); !slices.Equal(got, []string{"10.0.0.2:80", "10.0.0.3:80"}) || w.lastIndex == 0 {
			return fmt.Errorf("after reset: %v at %d", got, w.lastIndex)
		}
		return nil
	})
}

// An agent that restarts never hands out a lower index for the same
// question, so templates do not have to refetch from scratch.
func TestConsulTemplateIndexSurvivesRestart(t *testing.T) {
	cfg := testConfig(t, "alpha")
	a := startAgent(t, cfg)
	c := consulClient(t, a)
	mustNil(t, "register", c.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "app", Port: 80}))
	_, meta, err := c.Health().Service("app", "", true, &api.QueryOptions{AllowStale: true})
	mustNil(t, "health", err)
	a.Kill()

	b := startAgent(t, cfg)
	cb := consulClient(t, b)
	start := time.Now()
	es, meta2, err := cb.Health().Service("app", "", true, &api.QueryOptions{AllowStale: true, WaitIndex: meta.LastIndex, WaitTime: time.Second})
	mustNil(t, "health after restart", err)
	if meta2.LastIndex < meta.LastIndex || len(es) != 1 {
		t.Fatalf("index %d after restart, was %d (%d entries, %v)", meta2.LastIndex, meta.LastIndex, len(es), time.Since(start))
	}
}
