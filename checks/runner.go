package checks

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// prober runs one probe of a check. ctx carries the check's Timeout and is also
// cancelled when the check stops; the probe must return promptly then.
type prober interface {
	probe(ctx context.Context) (status, output string)
}

// runner is one running instance of a Definition. Replacing a check starts a new
// runner on the same slot.
type runner struct {
	def     Definition // with defaults applied; read-only
	prober  prober     // nil for TTL and alias checks
	catalog Catalog    // alias checks: what they follow
	slot    *slot
	kick    chan struct{} // TTL checks: an UpdateTTL happened
	fresh   bool          // no earlier state: the first probe comes soon

	stopped atomic.Bool        // set once the runner must not report any more
	cancel  context.CancelFunc // guarded by Manager.mu; nil until started
}

var errUnknownType = errors.New("unknown check type")

func newRunner(d Definition, cfg Config) (*runner, error) {
	r := &runner{def: d, fresh: true}
	if d.OutputMaxSize > 0 && d.OutputMaxSize < cfg.outputMaxSize() {
		cfg.OutputMaxSize = d.OutputMaxSize
	}
	switch d.Type() {
	case TypeTTL:
		r.kick = make(chan struct{}, 1)
	case TypeHTTP:
		r.prober = newHTTPProber(d, cfg.outputMaxSize())
	case TypeTCP:
		r.prober = newTCPProber(d)
	case TypeGRPC:
		r.prober = newGRPCProber(d)
	case TypeScript:
		r.prober = &scriptProber{args: d.Args, timeout: d.Timeout, maxOutput: cfg.outputMaxSize()}
	case TypeUDP:
		r.prober = &udpProber{addr: d.UDP}
	case TypeH2Ping:
		r.prober = newH2PingProber(d)
	case TypeDocker:
		if cfg.DockerSocket == "" {
			return nil, invalid("DockerContainerID", "no docker_socket is configured")
		}
		r.prober = newDockerProber(d, cfg)
	case TypeOSService:
		r.prober = newOSServiceProber(d, cfg)
	case TypeAlias:
		if cfg.Catalog == nil {
			return nil, invalid("AliasService", "alias checks need the catalog, which this check manager was not given")
		}
		r.catalog = cfg.Catalog
	default:
		return nil, fmt.Errorf("%w %q", errUnknownType, d.Type())
	}
	return r, nil
}

// firstDelay is the random delay before the first probe. A new check probes
// within min(Interval, 1s) so a new service turns healthy quickly; a check that
// replaces one with the same ID already has a status and spreads its first probe
// over a whole Interval, as Consul does for every check, so a reload of many
// checks does not probe them all at once.
func (r *runner) firstDelay() time.Duration {
	span := r.def.Interval
	if r.fresh {
		span = min(span, firstRunJitter)
	}
	if span <= 0 {
		return 0
	}
	return rand.N(span)
}

// run probes until ctx is done. Probes start every Interval from the first one;
// a probe never overlaps the previous one of the same check (one that overruns
// the Interval is followed at once by the next).
func (r *runner) run(ctx context.Context, m *Manager) {
	if r.def.TTL > 0 {
		r.runTTL(ctx, m)
		return
	}
	if r.catalog != nil {
		r.runAlias(ctx, m, r.catalog)
		return
	}
	first := time.NewTimer(r.firstDelay())
	select {
	case <-ctx.Done():
		first.Stop()
		return
	case <-first.C:
	}
	ticker := time.NewTicker(r.def.Interval)
	defer ticker.Stop()
	damper := newStatusHandler(r.def.SuccessBeforePassing, r.def.FailuresBeforeWarning, r.def.FailuresBeforeCritical)
	for {
		r.probeOnce(ctx, m, damper)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (r *runner) probeOnce(ctx context.Context, m *Manager, damper *statusHandler) {
	pctx, cancel := context.WithTimeout(ctx, r.def.Timeout)
	status, output := r.prober.probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return // stopped mid-probe: the result means nothing
	}
	if status, ok := damper.update(status); ok {
		r.report(m, status, output)
	}
}

// report records a result of this runner unless it has been stopped.
func (r *runner) report(m *Manager, status, output string) {
	s := r.slot
	s.reportMu.Lock()
	defer s.reportMu.Unlock()
	if r.stopped.Load() {
		return
	}
	m.reportLocked(s, status, output, time.Now())
}

// runTTL turns the check critical when TTL passes without an UpdateTTL. The TTL
// runs from the later of the runner's start and the last update.
func (r *runner) runTTL(ctx context.Context, m *Manager) {
	start := time.Now()
	timer := time.NewTimer(r.def.TTL)
	defer timer.Stop()
	for {
		if wait := r.ttlDeadline(start).Sub(time.Now()); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-r.kick:
			case <-timer.C:
			}
			continue
		}
		if !r.expireTTL(m, start) {
			continue // updated meanwhile
		}
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
	}
}

func (r *runner) ttlDeadline(start time.Time) time.Time {
	r.slot.mu.Lock()
	last := r.slot.ttlUpdated
	r.slot.mu.Unlock()
	if last.Before(start) {
		last = start
	}
	return last.Add(r.def.TTL)
}

// expireTTL reports the check critical if its TTL has still passed once the
// report lock is held, and says whether it had.
func (r *runner) expireTTL(m *Manager, start time.Time) bool {
	s := r.slot
	s.reportMu.Lock()
	defer s.reportMu.Unlock()
	now := time.Now()
	if r.ttlDeadline(start).After(now) {
		return false
	}
	if r.stopped.Load() {
		return true
	}
	s.mu.Lock()
	output := "TTL expired"
	if s.ttlOutput != "" {
		output += " (last output before timeout follows): " + s.ttlOutput
	}
	s.mu.Unlock()
	m.reportLocked(s, StatusCritical, output, now)
	return true
}
