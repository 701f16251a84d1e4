package checks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Result is the reported state of one check. At is when this status and output
// were reported (the last change).
type Result struct {
	CheckID string
	Status  string
	Output  string
	At      time.Time
}

// Manager runs health checks, each in its own goroutine, and reports every
// result through the notify callback given to New. It keeps no status: the
// caller owns each check's status, output and critical-since time, and
// decides what a result changes.
//
// All methods are safe for concurrent use. Checks may be added before Run starts
// (they start with it) and while it runs.
type Manager struct {
	cfg    Config
	logger *slog.Logger
	notify func(Result)
	// scripts is Config.EnableScriptChecks as SetEnableScriptChecks last
	// set it.
	scripts atomic.Bool

	mu     sync.RWMutex
	checks map[string]*runner // by check ID
	state  int                // idle, running or stopped
	runCtx context.Context    // Run's ctx while running
	wg     sync.WaitGroup     // check goroutines, waited for by Run
}

const (
	idle = iota
	running
	stopped
)

// New returns a Manager that starts no goroutine until Run.
//
// notify is called with every result: each probe's (after flap damping), each
// UpdateTTL and each TTL expiry, most of them unchanged from the last. It is
// called from the check's goroutine, or from the caller's goroutine inside
// UpdateTTL, and calls for one check ID never overlap and arrive in order,
// also across a replacement of the check by Add. notify must not block for
// long (it holds up that check only) and must not call UpdateTTL for the same
// check, which would wait for notify to return; it may call any other method.
// Add does not call notify: a check starts from the status its owner gives it.
func New(cfg Config, logger *slog.Logger, notify func(Result)) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if notify == nil {
		notify = func(Result) {}
	}
	m := &Manager{
		cfg:    cfg,
		logger: logger.With("component", "checks"),
		notify: notify,
		checks: make(map[string]*runner),
	}
	m.scripts.Store(cfg.EnableScriptChecks)
	return m
}

// SetEnableScriptChecks changes whether later Adds accept script and
// Docker checks (a configuration reload); running checks are not touched.
// It is safe to call at any time.
func (m *Manager) SetEnableScriptChecks(on bool) { m.scripts.Store(on) }

// Run starts every added check and runs until ctx is done; it then stops all
// checks and returns nil once every check goroutine has exited. Run may be
// called once: a later call returns an error (wrapping ErrStopped once the first
// Run has returned).
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	switch m.state {
	case running:
		m.mu.Unlock()
		return errors.New("run: the check manager is already running")
	case stopped:
		m.mu.Unlock()
		return fmt.Errorf("run: %w", ErrStopped)
	}
	m.state = running
	m.runCtx = ctx
	for _, r := range m.checks {
		m.startLocked(r)
	}
	m.mu.Unlock()

	<-ctx.Done()

	m.mu.Lock()
	m.state = stopped
	m.runCtx = nil
	for _, r := range m.checks {
		r.stopped.Store(true)
	}
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}

// startLocked starts r's goroutine under Run's ctx. m.mu must be held for writing.
func (m *Manager) startLocked(r *runner) {
	ctx, cancel := context.WithCancel(m.runCtx)
	r.cancel = cancel
	m.wg.Go(func() {
		defer cancel()
		r.run(ctx, m)
	})
}

// Add validates def and starts running it (at once if Run is running, else when
// Run starts). A check with the same ID is replaced atomically: the old one stops
// (its in-flight probe is cancelled and never reported) and the new one keeps the
// old one's status, output and critical-since time instead of def.Status, as
// Consul does to avoid flapping on re-registration. Add returns an error
// wrapping ErrInvalid for a bad definition and ErrStopped once Run has returned.
// The caller may reuse def after Add returns.
func (m *Manager) Add(def Definition) error {
	if def.ID == "" {
		return invalid("ID", "required")
	}
	cfg := m.cfg
	cfg.EnableScriptChecks = m.scripts.Load()
	if err := def.Validate(cfg); err != nil {
		return fmt.Errorf("check %q: %w", def.ID, err)
	}
	d := def.withDefaults()
	r, err := newRunner(d, cfg)
	if err != nil {
		return fmt.Errorf("check %q: %w", def.ID, err)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == stopped {
		return fmt.Errorf("add %q: %w", def.ID, ErrStopped)
	}
	if old := m.checks[d.ID]; old != nil {
		m.stopLocked(old)
		r.slot = old.slot
		r.fresh = false
	} else {
		r.slot = &slot{id: d.ID}
	}
	m.checks[d.ID] = r
	if m.state == running {
		m.startLocked(r)
	}
	return nil
}

// stopLocked cancels r and keeps it from reporting again. It does not wait: a
// notify of r already in progress may still complete.
func (m *Manager) stopLocked(r *runner) {
	r.stopped.Store(true)
	if r.cancel != nil {
		r.cancel()
	}
}

// Remove stops and forgets the check with that ID; it is a no-op for an unknown
// ID. Remove does not wait for the check's goroutine (Run does): a notify for
// that check already in progress may still complete after Remove returns, so
// notify should ignore IDs its caller no longer holds.
func (m *Manager) Remove(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.checks[id]; r != nil {
		m.stopLocked(r)
		delete(m.checks, id)
	}
}

// UpdateTTL sets the status and output of a TTL check and restarts its TTL. The
// output is truncated to Config.OutputMaxSize. A change is reported through
// notify in the caller's goroutine before UpdateTTL returns, so the caller must
// not hold a lock that notify takes. It returns an error wrapping ErrNotFound for
// an unknown ID, ErrNotTTL for a check that is not a TTL check, ErrInvalid for a
// status other than passing, warning or critical, and ErrStopped once Run has
// returned.
func (m *Manager) UpdateTTL(id, status, output string) error {
	switch status {
	case StatusPassing, StatusWarning, StatusCritical:
	default:
		return fmt.Errorf("update %q: %w", id, invalid("Status", "%q is not one of passing, warning, critical", status))
	}
	m.mu.RLock()
	r, state := m.checks[id], m.state
	m.mu.RUnlock()
	switch {
	case r == nil:
		return fmt.Errorf("update %q: %w", id, ErrNotFound)
	case r.def.TTL == 0:
		return fmt.Errorf("update %q (a %s check): %w", id, r.def.Type(), ErrNotTTL)
	case state == stopped:
		return fmt.Errorf("update %q: %w", id, ErrStopped)
	}
	output = truncateOutput(output, m.cfg.outputMaxSize())

	s := r.slot
	s.reportMu.Lock()
	defer s.reportMu.Unlock()
	now := time.Now()
	s.mu.Lock()
	s.ttlUpdated = now
	s.ttlOutput = output
	s.mu.Unlock()
	m.reportLocked(s, status, output, now)
	select {
	case r.kick <- struct{}{}:
	default:
	}
	return nil
}

// slot is what outlives one runner of a check ID when the definition is
// replaced: the report lock, so a replacement's reports stay in order with
// the old runner's last one, and the TTL clock.
type slot struct {
	id string
	// reportMu serialises reports for this check; it is held while notify
	// runs.
	reportMu sync.Mutex

	// mu guards the TTL clock, which the TTL runner reads while an
	// UpdateTTL may run; writers hold reportMu too.
	mu         sync.Mutex
	ttlUpdated time.Time // last UpdateTTL
	ttlOutput  string    // output of the last UpdateTTL
}

// reportLocked hands a result of s to notify. s.reportMu must be held.
func (m *Manager) reportLocked(s *slot, status, output string, now time.Time) {
	m.notify(Result{CheckID: s.id, Status: status, Output: output, At: now})
}
