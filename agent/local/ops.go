package local

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/checks"
)

// How long a change that needs no immediate propagation may wait before
// it is published: a check's output alone (unless Config says otherwise)
// and an instance's load figure. Status changes are published at once.
const (
	defaultOutputDelay = 5 * time.Minute
	loadPublishDelay   = time.Second
)

// RegisterService adds or replaces a service owned by this agent, with its
// checks. It returns after the registration is on disk and published. A
// service ID used by an external service is refused (ErrInvalid).
func (l *State) RegisterService(def ServiceDefinition) error {
	if err := l.refuseExternalID(def); err != nil {
		return err
	}
	return l.registerService(def, sourceAPI)
}

func (l *State) registerService(def ServiceDefinition, source string) error {
	svc, defs, err := def.Build(l.scriptChecks.Load())
	if err != nil {
		return err
	}
	raw := serviceRawChecks(def)
	l.mu.Lock()
	prevSvc, prevChecks := l.services[svc.ID], l.checksOfLocked(svc.ID)
	removed := l.addServiceLocked(def, svc, defs, raw, source)
	l.mu.Unlock()
	if err := l.persist(); err != nil {
		l.mu.Lock()
		l.restoreServiceLocked(svc.ID, prevSvc, prevChecks)
		l.mu.Unlock()
		return fmt.Errorf("register service %q: %w: %v", svc.ID, ErrPersistence, err)
	}
	for _, id := range removed {
		l.runner.Remove(id)
	}
	for _, d := range defs {
		if err := l.runner.Add(d); err != nil {
			l.logger.Error("start check", "check", d.ID, "err", err)
		}
	}
	l.publish()
	l.logger.Debug("service registered", "service", svc.ID, "source", source)
	return nil
}

// serviceRawChecks lists a definition's checks in Build's order.
func serviceRawChecks(def ServiceDefinition) []CheckDefinition {
	var raw []CheckDefinition
	if def.Check != nil {
		raw = append(raw, *def.Check)
	}
	return append(raw, def.Checks...)
}

// checksOfLocked returns copies of the checks bound to service id.
func (l *State) checksOfLocked(id string) map[string]*localCheck {
	out := map[string]*localCheck{}
	for cid, c := range l.checks {
		if c.Def.ServiceID == id {
			cc := *c
			out[cid] = &cc
		}
	}
	return out
}

// restoreServiceLocked puts back a service and its checks as they were
// before a change that could not be persisted.
func (l *State) restoreServiceLocked(id string, svc *localService, prev map[string]*localCheck) {
	for cid, c := range l.checks {
		if c.Def.ServiceID == id {
			delete(l.checks, cid)
		}
	}
	if svc == nil {
		delete(l.services, id)
	} else {
		l.services[id] = svc
	}
	for cid, c := range prev {
		l.checks[cid] = c
	}
	l.bumpLocked()
}

// DeregisterService removes a service owned by this agent and its checks.
func (l *State) DeregisterService(id string) error {
	l.mu.Lock()
	prevSvc, prevChecks := l.services[id], l.checksOfLocked(id)
	removed, err := l.removeServiceLocked(id)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if err := l.persist(); err != nil {
		l.mu.Lock()
		l.restoreServiceLocked(id, prevSvc, prevChecks)
		l.mu.Unlock()
		return fmt.Errorf("deregister service %q: %w: %v", id, ErrPersistence, err)
	}
	for _, cid := range removed {
		l.runner.Remove(cid)
	}
	l.publish()
	l.logger.Debug("service deregistered", "service", id)
	return nil
}

// RegisterCheck adds or replaces a standalone check, bound to a service
// when ServiceID is set.
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
	prev := l.checks[id]
	if prev != nil && prev.Source != sourceAPI {
		l.mu.Unlock()
		return fmt.Errorf("check %q is defined in a config file: %w", id, ErrInvalid)
	}
	l.checks[id] = l.newCheckLocked(cd, def, sourceAPI)
	l.bumpLocked()
	l.mu.Unlock()
	if err := l.persist(); err != nil {
		l.mu.Lock()
		if prev == nil {
			delete(l.checks, id)
		} else {
			l.checks[id] = prev
		}
		l.bumpLocked()
		l.mu.Unlock()
		return fmt.Errorf("register check %q: %w: %v", id, ErrPersistence, err)
	}
	if err := l.runner.Add(cd); err != nil {
		l.logger.Error("start check", "check", id, "err", err)
	}
	l.publish()
	return nil
}

// DeregisterCheck removes a check.
func (l *State) DeregisterCheck(id string) error {
	l.mu.Lock()
	prev := l.checks[id]
	if prev == nil {
		l.mu.Unlock()
		return fmt.Errorf("check %q: %w", id, ErrNotFound)
	}
	delete(l.checks, id)
	if s := l.services[prev.Def.ServiceID]; s != nil {
		ids := s.CheckIDs[:0:0]
		for _, cid := range s.CheckIDs {
			if cid != id {
				ids = append(ids, cid)
			}
		}
		s.CheckIDs = ids
	}
	l.bumpLocked()
	l.mu.Unlock()
	if err := l.persist(); err != nil {
		return fmt.Errorf("deregister check %q: %w: %v", id, ErrPersistence, err)
	}
	l.runner.Remove(id)
	l.publish()
	return nil
}

// UpdateTTL sets a TTL check's status and output (the pass/warn/fail/update
// endpoints).
func (l *State) UpdateTTL(id, status, output string) error {
	if !catalog.ValidStatus(status) {
		return fmt.Errorf("status %q: want passing, warning or critical: %w", status, ErrInvalid)
	}
	l.mu.Lock()
	c := l.checks[id]
	if c == nil {
		l.mu.Unlock()
		return fmt.Errorf("check %q: %w", id, ErrNotFound)
	}
	if c.Def.TTL <= 0 {
		l.mu.Unlock()
		return fmt.Errorf("check %q is a %s check: %w", id, c.Def.Type(), ErrNotTTL)
	}
	l.mu.Unlock()
	if err := l.runner.UpdateTTL(id, status, output); err != nil {
		if errors.Is(err, checks.ErrNotFound) {
			return fmt.Errorf("check %q: %w", id, ErrNotFound)
		}
		return err
	}
	// The manager reports the change through applyResult; make sure it
	// is recorded and on disk before the caller hears back.
	l.applyResult(checks.Result{CheckID: id, Status: status, Output: output, At: time.Now()})
	return l.persist()
}

// applyResult records a result the check runner reported. Results come
// on every probe; only a change of status or output changes the state.
func (l *State) applyResult(r checks.Result) {
	l.mu.Lock()
	c := l.checks[r.CheckID]
	if c == nil || (c.Status == r.Status && c.Output == r.Output) {
		l.mu.Unlock()
		return
	}
	prev := c.Status
	statusChanged := prev != r.Status
	c.Status, c.Output = r.Status, r.Output
	if statusChanged {
		if r.Status == catalog.HealthCritical {
			c.criticalSince = r.At
		} else {
			c.criticalSince = time.Time{}
		}
		l.bumpLocked()
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
// its instances leave DNS and passing-only answers.
func (l *State) SetNodeMaintenance(enable bool, reason string) error {
	l.mu.Lock()
	prev := l.nodeMaint
	if enable {
		if reason == "" {
			reason = "Maintenance mode is enabled for this node, but no reason was provided. This is a default message."
		}
		l.nodeMaint = &reason
	} else {
		l.nodeMaint = nil
	}
	l.bumpLocked()
	l.mu.Unlock()
	if err := l.persist(); err != nil {
		l.mu.Lock()
		l.nodeMaint = prev
		l.bumpLocked()
		l.mu.Unlock()
		return fmt.Errorf("node maintenance: %w: %v", ErrPersistence, err)
	}
	l.publish()
	return nil
}

// SetServiceMaintenance puts one service in or out of maintenance.
func (l *State) SetServiceMaintenance(id string, enable bool, reason string) error {
	l.mu.Lock()
	s := l.services[id]
	if s == nil {
		l.mu.Unlock()
		return fmt.Errorf("service %q: %w", id, ErrNotFound)
	}
	prev := s.Maint
	if enable {
		if reason == "" {
			reason = "Maintenance mode is enabled for this service, but no reason was provided. This is a default message."
		}
		s.Maint = &reason
	} else {
		s.Maint = nil
	}
	l.bumpLocked()
	l.mu.Unlock()
	if err := l.persist(); err != nil {
		l.mu.Lock()
		s.Maint = prev
		l.bumpLocked()
		l.mu.Unlock()
		return fmt.Errorf("service maintenance: %w: %v", ErrPersistence, err)
	}
	l.publish()
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
}

// Publish hands the current record to the publish function (at start-up,
// once the gossip address is set; every change publishes by itself).
func (l *State) Publish() { l.publish() }

// publish builds this node's record and hands it on. publishMu keeps
// records in version order when changes race.
func (l *State) publish() {
	l.publishMu.Lock()
	defer l.publishMu.Unlock()
	l.mu.Lock()
	l.lazyDue = time.Time{}
	rec := l.recordLocked()
	l.mu.Unlock()
	l.publishFn(rec)
}

// Run runs the checks and the local timers until ctx is done: lazy changes
// are published when due, and services whose checks stayed critical longer
// than DeregisterCriticalServiceAfter are deregistered. It returns once
// every check goroutine has stopped.
func (l *State) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		if err := l.runner.Run(ctx); err != nil {
			l.logger.Error("check runner stopped", "err", err)
		}
	})
	l.reapCritical(ctx)
	return nil
}

// reapCritical is Run's timer loop.
func (l *State) reapCritical(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			l.mu.Lock()
			due := !l.lazyDue.IsZero() && !now.Before(l.lazyDue)
			if due {
				l.bumpLocked()
			}
			var reap []string
			for _, c := range l.checks {
				d := c.Def.DeregisterCriticalServiceAfter
				if d > 0 && c.Def.ServiceID != "" && !c.criticalSince.IsZero() && now.Sub(c.criticalSince) >= d {
					reap = append(reap, c.Def.ServiceID)
				}
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

// Restore loads the persisted local state from the data dir and adds its
// checks to the runner. Call it once, before Run.
func (l *State) Restore() error {
	if l.path == "" {
		return nil
	}
	p, warnings, err := loadPersisted(l.path)
	for _, w := range warnings {
		l.logger.Warn(w)
	}
	if err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.version = p.Version
	l.nodeMaint = p.NodeMaint
	var defs []checks.Definition
	for _, ps := range p.Services {
		svc, cdefs, err := ps.Definition.Build(l.scriptChecks.Load())
		if err != nil {
			l.logger.Error("dropping persisted service that no longer validates", "service", ps.Definition.ID, "err", err)
			continue
		}
		l.addServiceLocked(ps.Definition, svc, cdefs, serviceRawChecks(ps.Definition), ps.Source)
		l.services[svc.ID].Maint = ps.Maint
		defs = append(defs, cdefs...)
	}
	for _, pc := range p.Checks {
		id := pc.Definition.checkID()
		if id == "" {
			id = pc.Definition.Name
		}
		cd, err := pc.Definition.build(id, l.scriptChecks.Load())
		if err != nil {
			l.logger.Error("dropping persisted check that no longer validates", "check", id, "err", err)
			continue
		}
		l.checks[id] = l.newCheckLocked(cd, pc.Definition, pc.Source)
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

// LoadConfigServices makes the config-file services exactly defs: new ones
// are added, changed ones replaced, missing ones removed. Services
// registered over the API are left alone.
func (l *State) LoadConfigServices(defs []ServiceDefinition) error {
	want := map[string]ServiceDefinition{}
	for _, d := range defs {
		svc, _, err := d.Build(l.scriptChecks.Load())
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
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
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
