package checks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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

// Manager runs health checks, each in its own goroutine, and reports every change
// of a check's status or output through the notify callback given to New.
//
// All methods are safe for concurrent use. Checks may be added before Run starts
// (they start with it) and while it runs.
type Manager struct {
	cfg    Config
	logger *slog.Logger
	notify func(Result)

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
// notify is called whenever a check's status or output changes (not on every
// probe), with the new Result. It is called from the check's goroutine, or from
// the caller's goroutine inside UpdateTTL, and calls for one check never overlap
// and arrive in order. notify must not block for long (it holds up that check
// only) and must not call UpdateTTL for the same check, which would wait for
// notify to return; it may call any other method. Add does not call notify: the
// initial Result is available from Status as soon as Add returns.
func New(cfg Config, logger *slog.Logger, notify func(Result)) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if notify == nil {
		notify = func(Result) {}
	}
	return &Manager{
		cfg:    cfg,
		logger: logger.With("component", "checks"),
		notify: notify,
		checks: make(map[string]*runner),
	}
}

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
	if err := def.Validate(m.cfg); err != nil {
		return fmt.Errorf("check %q: %w", def.ID, err)
	}
	d := def.withDefaults()
	r, err := newRunner(d, m.cfg)
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
		r.slot = newSlot(d.ID, d.Status, time.Now())
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
	m.reportLocked(s, status, output, now, true)
	select {
	case r.kick <- struct{}{}:
	default:
	}
	return nil
}

// Status returns the current Result of the check with that ID.
func (m *Manager) Status(id string) (Result, bool) {
	m.mu.RLock()
	r := m.checks[id]
	m.mu.RUnlock()
	if r == nil {
		return Result{}, false
	}
	r.slot.mu.Lock()
	defer r.slot.mu.Unlock()
	return r.slot.result, true
}

// CriticalSince returns when the check with that ID became critical (its Add
// time when it started critical), and false when the check is unknown or not
// critical. The agent compares it with DeregisterCriticalServiceAfter.
func (m *Manager) CriticalSince(id string) (time.Time, bool) {
	m.mu.RLock()
	r := m.checks[id]
	m.mu.RUnlock()
	if r == nil {
		return time.Time{}, false
	}
	r.slot.mu.Lock()
	defer r.slot.mu.Unlock()
	return r.slot.criticalSince, !r.slot.criticalSince.IsZero()
}

// slot is the state of one check ID. It outlives the runner that fills it when a
// definition is replaced, so a replacement keeps the state and its reports stay
// in order with the old runner's last one.
type slot struct {
	// reportMu serialises changes and notify calls for this check; it is held
	// while notify runs.
	reportMu   sync.Mutex
	lastNotify time.Time // guarded by reportMu

	// mu guards the fields below, which Status and CriticalSince read while a
	// notify may be running; writers hold reportMu too.
	mu            sync.Mutex
	result        Result
	criticalSince time.Time
	ttlUpdated    time.Time // last UpdateTTL
	ttlOutput     string    // output of the last UpdateTTL
}

func newSlot(id, status string, now time.Time) *slot {
	s := &slot{result: Result{CheckID: id, Status: status, At: now}}
	if status == StatusCritical {
		s.criticalSince = now
	}
	return s
}

// reportLocked records status and output for s and calls notify when either
// changed. A change of output alone is dropped when the last report is younger
// than Config.CheckUpdateInterval, unless force. s.reportMu must be held.
func (m *Manager) reportLocked(s *slot, status, output string, now time.Time, force bool) {
	s.mu.Lock()
	prev := s.result
	if status == prev.Status && output == prev.Output {
		s.mu.Unlock()
		return
	}
	if status == prev.Status && !force && m.cfg.CheckUpdateInterval > 0 && now.Sub(s.lastNotify) < m.cfg.CheckUpdateInterval {
		s.mu.Unlock()
		return
	}
	s.result = Result{CheckID: prev.CheckID, Status: status, Output: output, At: now}
	switch {
	case status != StatusCritical:
		s.criticalSince = time.Time{}
	case s.criticalSince.IsZero():
		s.criticalSince = now
	}
	res := s.result
	s.mu.Unlock()

	s.lastNotify = now
	if status != prev.Status {
		log := m.logger.Info
		if status == StatusCritical {
			log = m.logger.Warn
		}
		log("check status changed", "check_id", res.CheckID, "status", status, "previous", prev.Status)
	}
	m.notify(res)
}
