package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/checks"
)

// How long a change that needs no immediate propagation may wait before
// it is published: a check's output alone (unless Config says otherwise),
// the output of a check's first result, and an instance's load figure.
// Status changes are published at once. A check's first result is waited
// for a second only: a check that starts critical and stays critical
// would otherwise show no output (why it fails) anywhere but on its own
// agent for minutes.
const (
	defaultOutputDelay = 5 * time.Minute
	firstOutputDelay   = time.Second
	loadPublishDelay   = time.Second
)

// RegisterService adds or replaces a service owned by this agent, with its
// checks. It returns after the registration is on disk and published; a
// registration identical to the current one (same definition, same
// source, its checks in place) writes and publishes nothing. A service ID
// used by an external service, or a definition over the per-service limits
// (MaxServiceMetaKeys…), is refused with ErrInvalid; one that would make
// this node's record larger than peers accept with ErrTooLarge.
func (l *State) RegisterService(def ServiceDefinition) error {
	if err := l.refuseExternalID(def); err != nil {
		return err
	}
	return l.registerService(def, sourceAPI)
}

func (l *State) registerService(def ServiceDefinition, source string) error {
	if err := checkServiceLimits(def.Meta, def.Tags); err != nil {
		return err
	}
	svc, defs, err := def.Build(l.scriptsAllowed(source))
	if err != nil {
		return err
	}
	raw := serviceRawChecks(def)
	l.mu.Lock()
	t, err := l.beginLocked(func() []string { return l.serviceKeysLocked(svc.ID, defs) })
	if err != nil {
		l.mu.Unlock()
		return fmt.Errorf("register service %q: %w", svc.ID, err)
	}
	if l.sameServiceLocked(def, svc.ID, raw, source) {
		t.finishLocked()
		l.mu.Unlock()
		return nil
	}
	t.saveServiceAndChecks(svc.ID, defs)
	removed := l.addServiceLocked(def, svc, defs, raw, source)
	if err := t.commitLocked(true); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("register service %q: %w", svc.ID, err)
	}
	l.mu.Unlock()
	err = t.wait(func() {
		for _, id := range removed {
			l.runner.Remove(id)
		}
		for _, d := range defs {
			if err := l.runner.Add(d); err != nil {
				l.logger.Error("start check", "check", d.ID, "err", err)
			}
		}
		l.publish()
	})
	if err != nil {
		return fmt.Errorf("register service %q: %w", svc.ID, err)
	}
	l.logger.Debug("service registered", "service", svc.ID, "source", source)
	return nil
}

// serviceKeysLocked returns the keys a registration or removal of service
// id touches: the service, its checks, the checks it will have and the
// services those check IDs belong to now.
func (l *State) serviceKeysLocked(id string, defs []checks.Definition) []string {
	keys := []string{serviceLockKey(id)}
	for cid := range l.bySvc[id] {
		keys = append(keys, checkLockKey(cid))
	}
	for _, d := range defs {
		keys = append(keys, checkLockKey(d.ID))
		if c := l.checks[d.ID]; c != nil && c.Def.ServiceID != "" && c.Def.ServiceID != id {
			keys = append(keys, serviceLockKey(c.Def.ServiceID))
		}
	}
	return keys
}

// saveServiceAndChecks remembers service id, the checks bound to it and
// the checks defs will replace.
func (t *txn) saveServiceAndChecks(id string, defs []checks.Definition) {
	t.saveService(id)
	t.saveChecksOf(id)
	for _, d := range defs {
		t.saveCheck(d.ID)
	}
}

// sameServiceLocked reports whether registering def from source would
// change nothing: the service is registered with that very definition
// from that source and each of its checks is still the one the definition
// made.
func (l *State) sameServiceLocked(def ServiceDefinition, id string, raw []CheckDefinition, source string) bool {
	cur := l.services[id]
	if cur == nil || cur.Source != source || !reflect.DeepEqual(cur.Def, def) || len(cur.CheckIDs) != len(raw) {
		return false
	}
	for i, cid := range cur.CheckIDs {
		c := l.checks[cid]
		if c == nil || c.Source != source || c.Def.ServiceID != id || !reflect.DeepEqual(c.Raw, raw[i]) {
			return false
		}
	}
	return true
}

// serviceRawChecks lists a definition's checks in Build's order.
func serviceRawChecks(def ServiceDefinition) []CheckDefinition {
	var raw []CheckDefinition
	if def.Check != nil {
		raw = append(raw, *def.Check)
	}
	return append(raw, def.Checks...)
}

// DeregisterService removes a service owned by this agent and its checks.
func (l *State) DeregisterService(id string) error {
	l.mu.Lock()
	t, err := l.beginLocked(func() []string { return l.serviceKeysLocked(id, nil) })
	if err != nil {
		l.mu.Unlock()
		return fmt.Errorf("deregister service %q: %w", id, err)
	}
	t.saveServiceAndChecks(id, nil)
	removed, err := l.removeServiceLocked(id)
	if err != nil {
		t.finishLocked()
		l.mu.Unlock()
		return err
	}
	if err := t.commitLocked(false); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("deregister service %q: %w", id, err)
	}
	l.mu.Unlock()
	err = t.wait(func() {
		for _, cid := range removed {
			l.runner.Remove(cid)
		}
		l.publish()
	})
	if err != nil {
		return fmt.Errorf("deregister service %q: %w", id, err)
	}
	l.logger.Debug("service deregistered", "service", id)
	return nil
}

// checkKeysLocked returns the keys a change of check id bound to service
// serviceID touches: the check, that service and the service the check is
// bound to now.
func (l *State) checkKeysLocked(id, serviceID string) []string {
	keys := []string{checkLockKey(id)}
	if serviceID != "" {
		keys = append(keys, serviceLockKey(serviceID))
	}
	if c := l.checks[id]; c != nil && c.Def.ServiceID != "" && c.Def.ServiceID != serviceID {
		keys = append(keys, serviceLockKey(c.Def.ServiceID))
	}
	return keys
}

// RegisterCheck adds or replaces a standalone check, bound to a service
// when ServiceID is set. Registering the check exactly as it is writes and
// publishes nothing.
func (l *State) RegisterCheck(def CheckDefinition) error {
	id := def.checkID()
	if id == "" {
		id = def.Name
	}
	l.mu.Lock()
	if def.ServiceID != "" && l.services[def.ServiceID] == nil {
		l.mu.Unlock()
		return fmt.Errorf("ServiceID %q is not a service registered on this agent: %w", def.ServiceID, ErrInvalid)
	}
	l.mu.Unlock()
	cd, err := def.build(id, l.scriptChecks.Load())
	if err != nil {
		return err
	}
	l.mu.Lock()
	t, err := l.beginLocked(func() []string { return l.checkKeysLocked(id, def.ServiceID) })
	if err != nil {
		l.mu.Unlock()
		return fmt.Errorf("register check %q: %w", id, err)
	}
	prev := l.checks[id]
	switch {
	case def.ServiceID != "" && l.services[def.ServiceID] == nil:
		t.finishLocked()
		l.mu.Unlock()
		return fmt.Errorf("ServiceID %q is not a service registered on this agent: %w", def.ServiceID, ErrInvalid)
	case prev != nil && prev.Source != sourceAPI:
		t.finishLocked()
		l.mu.Unlock()
		return fmt.Errorf("check %q is defined in a config file: %w", id, ErrInvalid)
	case prev != nil && reflect.DeepEqual(prev.Raw, def) && reflect.DeepEqual(prev.Def, cd):
		t.finishLocked()
		l.mu.Unlock()
		return nil
	}
	t.saveCheck(id)
	l.putCheckLocked(id, l.newCheckLocked(cd, def, sourceAPI))
	l.bumpLocked()
	if err := t.commitLocked(true); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("register check %q: %w", id, err)
	}
	l.mu.Unlock()
	err = t.wait(func() {
		if err := l.runner.Add(cd); err != nil {
			l.logger.Error("start check", "check", id, "err", err)
		}
		l.publish()
	})
	if err != nil {
		return fmt.Errorf("register check %q: %w", id, err)
	}
	return nil
}

// DeregisterCheck removes a check.
func (l *State) DeregisterCheck(id string) error {
	l.mu.Lock()
	t, err := l.beginLocked(func() []string { return l.checkKeysLocked(id, "") })
	if err != nil {
		l.mu.Unlock()
		return fmt.Errorf("deregister check %q: %w", id, err)
	}
	prev := l.checks[id]
	if prev == nil {
		t.finishLocked()
		l.mu.Unlock()
		return fmt.Errorf("check %q: %w", id, ErrNotFound)
	}
	t.saveCheck(id)
	l.dropCheckLocked(id)
	if s := l.services[prev.Def.ServiceID]; s != nil && slices.Contains(s.CheckIDs, id) {
		t.saveService(s.Service.ID)
		ns := *s
		ns.CheckIDs = slices.DeleteFunc(slices.Clone(s.CheckIDs), func(cid string) bool { return cid == id })
		l.putServiceLocked(s.Service.ID, &ns)
	}
	l.bumpLocked()
	if err := t.commitLocked(false); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("deregister check %q: %w", id, err)
	}
	l.mu.Unlock()
	err = t.wait(func() {
		l.runner.Remove(id)
		l.publish()
	})
	if err != nil {
		return fmt.Errorf("deregister check %q: %w", id, err)
	}
	return nil
}

// UpdateTTL sets a TTL check's status and output (the pass/warn/fail/update
// endpoints) and restarts its TTL. The new status is on disk before the
// State and the runner take it, so a failed write changes nothing; an
// update that repeats the current status and output writes nothing.
func (l *State) UpdateTTL(id, status, output string) error {
	if !catalog.ValidStatus(status) {
		return fmt.Errorf("status %q: want passing, warning or critical: %w", status, ErrInvalid)
	}
	l.mu.Lock()
	t, err := l.beginLocked(func() []string {
		sid := ""
		if c := l.checks[id]; c != nil {
			sid = c.Def.ServiceID
		}
		return l.checkKeysLocked(id, sid)
	})
	if err != nil {
		l.mu.Unlock()
		return fmt.Errorf("update check %q: %w", id, err)
	}
	c := l.checks[id]
	switch {
	case c == nil:
		t.finishLocked()
		l.mu.Unlock()
		return fmt.Errorf("check %q: %w", id, ErrNotFound)
	case c.Def.TTL <= 0:
		t.finishLocked()
		l.mu.Unlock()
		return fmt.Errorf("check %q is a %s check: %w", id, c.Def.Type(), ErrNotTTL)
	case c.Status == status && c.Output == output:
		// Nothing to write; the TTL still restarts.
		t.finishLocked()
		l.mu.Unlock()
		return l.runnerUpdateTTL(id, status, output)
	}
	// The entry is made from the check as it will be; the check itself
	// changes once the entry is durable.
	t.saveCheck(id)
	next := *c
	next.Status, next.Output = status, output
	l.putCheckLocked(id, &next)
	err = t.commitLocked(true)
	if err == nil {
		l.putCheckLocked(id, c)
	}
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("update check %q: %w", id, err)
	}
	var rerr error
	err = t.wait(func() {
		rerr = l.runnerUpdateTTL(id, status, output)
		// The runner reports the change through applyResult; make sure
		// it is recorded before the caller hears back.
		l.applyResult(checks.Result{CheckID: id, Status: status, Output: output, At: time.Now()})
	})
	if err != nil {
		return fmt.Errorf("update check %q: %w", id, err)
	}
	return rerr
}

// runnerUpdateTTL hands a TTL update to the runner (which restarts the
// TTL and reports the result through applyResult). A runner that has
// stopped (shutdown) is not an error.
func (l *State) runnerUpdateTTL(id, status, output string) error {
	err := l.runner.UpdateTTL(id, status, output)
	switch {
	case err == nil, errors.Is(err, checks.ErrStopped):
		return nil
	case errors.Is(err, checks.ErrNotFound):
		return fmt.Errorf("check %q: %w", id, ErrNotFound)
	}
	return err
}

// applyResult records a result the check runner reported. Results come
// on every probe; only a change of status or output changes the state.
// A changed status is published at once, the output of the check's first
// result within firstOutputDelay, a later output alone within outputDelay.
func (l *State) applyResult(r checks.Result) {
	l.mu.Lock()
	c := l.checks[r.CheckID]
	if c == nil {
		l.mu.Unlock()
		return
	}
	first := !c.reported
	c.reported = true
	if c.Status == r.Status && c.Output == r.Output {
		l.mu.Unlock()
		return
	}
	prev := c.Status
	statusChanged := prev != r.Status
	if d := len(r.Output) - len(c.Output); d > 0 {
		// JSON escaping at most sextuples a byte (checkGrowthLocked).
		l.sizeDrift += 6 * d
	}
	c.Status, c.Output = r.Status, r.Output
	l.markCheckLocked(r.CheckID)
	if statusChanged {
		if r.Status == catalog.HealthCritical {
			c.criticalSince = r.At
			l.wakeTimers()
		} else {
			c.criticalSince = time.Time{}
		}
		l.bumpLocked()
	} else if first {
		l.markLazyLocked(min(firstOutputDelay, l.outputDelay))
	} else {
		l.markLazyLocked(l.outputDelay)
	}
	l.mu.Unlock()
	if statusChanged {
		l.publish()
		log := l.logger.Info
		if r.Status == catalog.HealthCritical {
			log = l.logger.Warn
		}
		log("check status changed", "check_id", r.CheckID, "status", r.Status, "previous", prev)
	}
}

// SetNodeMaintenance puts the whole node in or out of maintenance: all of
// its instances leave DNS and passing-only answers. Setting the mode it is
// already in, with the same reason, writes and publishes nothing.
func (l *State) SetNodeMaintenance(enable bool, reason string) error {
	if enable && reason == "" {
		reason = "Maintenance mode is enabled for this node, but no reason was provided. This is a default message."
	}
	l.mu.Lock()
	t, err := l.beginLocked(func() []string { return []string{nodeLockKey} })
	if err != nil {
		l.mu.Unlock()
		return fmt.Errorf("node maintenance: %w", err)
	}
	if sameMaint(l.nodeMaint, enable, reason) {
		t.finishLocked()
		l.mu.Unlock()
		return nil
	}
	t.saveNodeMaint()
	l.nodeMaint = nil
	l.markCheckLocked(catalog.NodeMaintCheckID)
	if enable {
		l.nodeMaint = &reason
	}
	l.bumpLocked()
	if err := t.commitLocked(enable); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("node maintenance: %w", err)
	}
	l.mu.Unlock()
	if err := t.wait(l.publish); err != nil {
		return fmt.Errorf("node maintenance: %w", err)
	}
	return nil
}

// sameMaint reports whether a maintenance reason (nil: off) is already
// what enable and reason ask for.
func sameMaint(cur *string, enable bool, reason string) bool {
	if !enable {
		return cur == nil
	}
	return cur != nil && *cur == reason
}

// SetServiceMaintenance puts one service in or out of maintenance.
// Setting the mode it is already in, with the same reason, writes and
// publishes nothing.
func (l *State) SetServiceMaintenance(id string, enable bool, reason string) error {
	if enable && reason == "" {
		reason = "Maintenance mode is enabled for this service, but no reason was provided. This is a default message."
	}
	l.mu.Lock()
	t, err := l.beginLocked(func() []string { return []string{serviceLockKey(id)} })
	if err != nil {
		l.mu.Unlock()
		return fmt.Errorf("service maintenance: %w", err)
	}
	s := l.services[id]
	if s == nil {
		t.finishLocked()
		l.mu.Unlock()
		return fmt.Errorf("service %q: %w", id, ErrNotFound)
	}
	if sameMaint(s.Maint, enable, reason) {
		t.finishLocked()
		l.mu.Unlock()
		return nil
	}
	t.saveService(id)
	ns := *s
	ns.Maint = nil
	if enable {
		ns.Maint = &reason
	}
	l.putServiceLocked(id, &ns)
	l.bumpLocked()
	if err := t.commitLocked(enable); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("service maintenance: %w", err)
	}
	l.mu.Unlock()
	if err := t.wait(l.publish); err != nil {
		return fmt.Errorf("service maintenance: %w", err)
	}
	return nil
}

// SetServiceLoad records an instance's load figure for the least-loaded
// DNS policy. Load changes are published at most about once a second.
func (l *State) SetServiceLoad(id string, load float64) error {
	if math.IsNaN(load) || math.IsInf(load, 0) || load < 0 {
		return fmt.Errorf("Load %v must be a finite number ≥ 0: %w", load, ErrInvalid)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.services[id]
	if s == nil {
		return fmt.Errorf("service %q: %w", id, ErrNotFound)
	}
	if s.Service.Load != load {
		s.Service.Load = load
		l.markServiceLocked(id)
		l.markLazyLocked(loadPublishDelay)
	}
	return nil
}

// markLazyLocked asks for a publish within d.
func (l *State) markLazyLocked(d time.Duration) {
	due := l.now().Add(d)
	if l.lazyDue.IsZero() || due.Before(l.lazyDue) {
		l.lazyDue = due
	}
	l.wakeTimers()
}

// wakeTimers tells Run's timer loop that something may be due later.
func (l *State) wakeTimers() {
	select {
	case l.timers <- struct{}{}:
	default:
	}
}

// Publish hands the current record to the publish function (at start-up,
// once the gossip address is set; every change publishes by itself).
func (l *State) Publish() { l.publishAt(0, true) }

// publish hands on a record that holds every change made before the call.
func (l *State) publish() {
	l.mu.Lock()
	gen := l.gen
	l.mu.Unlock()
	l.publishAt(gen, false)
}

// publishAt builds this node's record and hands it on, unless (and not
// force) a record built after change gen is already out. publishMu keeps
// records in version order when changes race, and coalesces them: callers
// that waited for it while another built a record holding their change
// return at once, so N concurrent changes cost one record, not N.
func (l *State) publishAt(gen uint64, force bool) {
	l.publishMu.Lock()
	defer l.publishMu.Unlock()
	l.mu.Lock()
	if !force && l.pubDone && l.pubGen >= gen {
		l.mu.Unlock()
		return
	}
	l.lazyDue = time.Time{}
	rec := l.signableRecordLocked()
	l.pubGen, l.pubDone = l.gen, true
	l.mu.Unlock()
	l.publishFn(rec)
}

// Run runs the checks, the local timers and the journal's background
// compaction until ctx is done: lazy changes are published when due, and
// services whose checks stayed critical longer than
// DeregisterCriticalServiceAfter are deregistered. It returns once every
// goroutine it started has stopped.
func (l *State) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		if err := l.runner.Run(ctx); err != nil {
			l.logger.Error("check runner stopped", "err", err)
		}
	})
	l.mu.Lock()
	j := l.jnl
	l.mu.Unlock()
	if j != nil {
		wg.Go(func() {
			if err := j.Run(ctx); err != nil {
				l.logger.Error("journal compaction stopped", "err", err)
			}
		})
	}
	l.reapCritical(ctx)
	return nil
}

// timerTick is the granularity of lazy publishes and critical-service
// deregistration.
const timerTick = 250 * time.Millisecond

// reapCritical is Run's timer loop. It ticks every timerTick while a lazy
// publish is due or a critical check has a deregistration deadline, and
// sleeps otherwise (an idle agent's timer wake-ups are CPU on every host;
// wakeTimers restarts it).
func (l *State) reapCritical(ctx context.Context) {
	t := time.NewTicker(timerTick)
	defer t.Stop()
	ticking := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.timers:
			if !ticking {
				t.Reset(timerTick)
				ticking = true
			}
		case now := <-t.C:
			l.mu.Lock()
			due := !l.lazyDue.IsZero() && !now.Before(l.lazyDue)
			if due {
				l.bumpLocked()
			}
			pending := !due && !l.lazyDue.IsZero()
			var reap []string
			for _, c := range l.checks {
				d := c.Def.DeregisterCriticalServiceAfter
				if d > 0 && c.Def.ServiceID != "" && !c.criticalSince.IsZero() {
					pending = true
					if now.Sub(c.criticalSince) >= d {
						reap = append(reap, c.Def.ServiceID)
					}
				}
			}
			if !pending {
				t.Stop()
				ticking = false
			}
			l.mu.Unlock()
			if due {
				l.publish()
			}
			sort.Strings(reap)
			for i, id := range reap {
				if i > 0 && reap[i-1] == id {
					continue
				}
				if err := l.DeregisterService(id); err == nil {
					l.logger.Info("deregistered service whose check stayed critical", "service", id)
				}
			}
		}
	}
}

// Restore loads the persisted local state from the data dir (the journal:
// its snapshot and the entries after it, or, once, the local.json of an
// older agent, which is then renamed local.json.migrated) and adds its
// checks to the runner. Call it once, before Run. Damaged state is an
// error naming the file and how to recover, never a silent start with
// less than was acknowledged; a torn end (see tornEndCause) is cut off,
// logged at ERROR and reported by DroppedAtStart.
func (l *State) Restore() error {
	if l.dataDir == "" {
		return nil
	}
	p, err := l.openJournal()
	if err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rc.ok = false // maintenance modes are set in place below
	l.version = p.Version
	l.nodeMaint = p.NodeMaint
	var defs []checks.Definition
	for _, ps := range p.Services {
		svc, cdefs, err := ps.Definition.Build(l.scriptsAllowed(ps.Source))
		if err != nil {
			l.logger.Error("not loading persisted service that no longer validates (it stays on disk)", "service", ps.Definition.ID, "err", err)
			continue
		}
		svc.External = ps.Source == sourceExternal
		l.addServiceLocked(ps.Definition, svc, cdefs, serviceRawChecks(ps.Definition), ps.Source)
		l.services[svc.ID].Maint = ps.Maint
		defs = append(defs, cdefs...)
	}
	for _, pc := range p.Checks {
		id := checkKey(pc.Definition)
		cd, err := pc.Definition.build(id, l.scriptsAllowed(pc.Source))
		if err != nil {
			l.logger.Error("not loading persisted check that no longer validates (it stays on disk)", "check", id, "err", err)
			continue
		}
		l.putCheckLocked(id, l.newCheckLocked(cd, pc.Definition, pc.Source))
		defs = append(defs, cd)
	}
	for id, st := range p.CheckStates {
		if c := l.checks[id]; c != nil && catalog.ValidStatus(st.Status) {
			c.Status, c.Output = st.Status, st.Output
			if c.Status != catalog.HealthCritical {
				c.criticalSince = time.Time{}
			}
			if c.Def.TTL > 0 {
				c.Def.Status = st.Status
			}
		}
	}
	for i := range defs {
		if c := l.checks[defs[i].ID]; c != nil {
			defs[i] = c.Def
		}
		if err := l.runner.Add(defs[i]); err != nil {
			l.logger.Error("start check", "check", defs[i].ID, "err", err)
		}
	}
	l.bumpLocked()
	return nil
}

// Close ends the persistence: it waits for the changes in flight, writes
// the last record version and the status of every TTL check (TTL expiries
// are not written as they happen) and closes the journal. Later changes
// fail with ErrPersistence; reads keep working. The agent calls it at
// shutdown, after Run has returned. It is safe to call more than once;
// later calls return nil.
func (l *State) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.keyFree.Broadcast()
	l.mu.Unlock()
	l.inflight.Wait()
	l.mu.Lock()
	j := l.jnl
	e := &entry{Version: l.version, States: map[string]*persistedStatus{}}
	for id := range l.checks {
		if st := l.persistedStatusLocked(id); st != nil {
			e.States[id] = st
		}
	}
	l.mu.Unlock()
	if j == nil {
		return nil
	}
	b, err := json.Marshal(e)
	if err == nil {
		err = j.Append(b)
	}
	if cerr := j.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close local state: %w", err)
	}
	return nil
}

// Flush is Close, under the name the agent has called at shutdown since
// the whole-file store.
func (l *State) Flush() error { return l.Close() }

// LoadConfigServices makes the config-file services exactly defs: new ones
// are added, changed ones replaced, missing ones removed. Services
// registered over the API are left alone.
func (l *State) LoadConfigServices(defs []ServiceDefinition) error {
	want := map[string]ServiceDefinition{}
	for _, d := range defs {
		svc, _, err := d.Build(l.scriptsAllowed(sourceConfig))
		if err != nil {
			return fmt.Errorf("service %q: %w", d.Name, err)
		}
		want[svc.ID] = d
	}
	l.mu.Lock()
	var stale []string
	for id, s := range l.services {
		if _, ok := want[id]; !ok && s.Source == sourceConfig {
			stale = append(stale, id)
		}
	}
	l.mu.Unlock()
	for _, id := range stale {
		if err := l.DeregisterService(id); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		l.mu.Lock()
		cur := l.services[id]
		same := cur != nil && cur.Source == sourceConfig && reflect.DeepEqual(cur.Def, want[id])
		l.mu.Unlock()
		if same {
			continue
		}
		if err := l.registerService(want[id], sourceConfig); err != nil {
			return err
		}
	}
	return nil
}
