package checks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chorusdns/chorus/test/testutil"
)

// recorder collects the Results a Manager notifies.
type recorder struct {
	mu      sync.Mutex
	results []Result
}

func (r *recorder) notify(res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, res)
}

func (r *recorder) all() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Result(nil), r.results...)
}

// last returns the last Result notified for id.
func (r *recorder) last(id string) (Result, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.results) - 1; i >= 0; i-- {
		if r.results[i].CheckID == id {
			return r.results[i], true
		}
	}
	return Result{}, false
}

// statuses returns the statuses of the changes notified for id, in order:
// a result equal in status and output to the one before it is no change.
func (r *recorder) statuses(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	var prev *Result
	for i, res := range r.results {
		if res.CheckID != id {
			continue
		}
		if prev == nil || prev.Status != res.Status || prev.Output != res.Output {
			s = append(s, res.Status)
		}
		prev = &r.results[i]
	}
	return s
}

// recorders maps each test's Manager to the recorder of its results.
var recorders sync.Map // *Manager → *recorder

// lastResult is the last result m reported for id.
func lastResult(m *Manager, id string) (Result, bool) {
	rec, ok := recorders.Load(m)
	if !ok {
		return Result{}, false
	}
	return rec.(*recorder).last(id)
}

// startManager runs a Manager until the test ends and checks that Run returns.
func startManager(t *testing.T, cfg Config) (*Manager, *recorder) {
	t.Helper()
	rec := &recorder{}
	m := New(cfg, slog.New(slog.DiscardHandler), rec.notify)
	recorders.Store(m, rec)
	t.Cleanup(func() { recorders.Delete(m) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancel")
		}
	})
	return m, rec
}

// waitStatus waits until the check's reported status is want and returns that
// Result.
func waitStatus(t *testing.T, m *Manager, id, want string, within time.Duration) Result {
	t.Helper()
	var got Result
	testutil.Eventually(t, within, func() error {
		res, ok := lastResult(m, id)
		if !ok {
			return errors.New("check " + id + " has reported nothing")
		}
		got = res
		if res.Status != want {
			return errors.New("status " + res.Status + " (output " + res.Output + "), want " + want)
		}
		return nil
	})
	return got
}

// waitOutput waits until the check's status is want and its output contains
// substr: under load a first probe may fail for a different reason (a timeout).
func waitOutput(t *testing.T, m *Manager, id, want, substr string, within time.Duration) Result {
	t.Helper()
	var got Result
	testutil.Eventually(t, within, func() error {
		res, ok := lastResult(m, id)
		if !ok {
			return errors.New("check " + id + " has reported nothing")
		}
		got = res
		if res.Status != want || !strings.Contains(res.Output, substr) {
			return fmt.Errorf("%s %q, want %s with %q", res.Status, res.Output, want, substr)
		}
		return nil
	})
	return got
}

func mustAdd(t *testing.T, m *Manager, def Definition) {
	t.Helper()
	if err := m.Add(def); err != nil {
		t.Fatalf("Add(%q): %v", def.ID, err)
	}
}
