package local

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/chorusdns/chorus/agent/local/journal"
	"github.com/chorusdns/chorus/catalog"
)

// A change of the persisted state goes like this:
//
//	l.mu held:   begin (wait until no change in flight holds one of its
//	             keys, remember what it replaces), change the maps,
//	             commit (size check, submit the journal entry)
//	l.mu free:   Wait for the entry to be durable (shared fsync)
//	l.mu held:   on failure undo; release the keys
//
// Entries are submitted under l.mu, so the journal's order is the order
// of the changes in memory. The keys make changes that touch the same
// service, check or maintenance flag wait for each other's outcome: a
// change is never computed from another one that may still fail, so an
// undo restores exactly the durable value and no durable entry carries an
// effect that was rolled back. Changes of disjoint keys commute and share
// fsyncs.

// Keys of the things a change touches.
func serviceLockKey(id string) string { return "s\x00" + id }
func checkLockKey(id string) string   { return "c\x00" + id }

const nodeLockKey = "node"

// txn is one change of the persisted state in progress.
type txn struct {
	l       *State
	keys    []string
	version uint64 // l.version at begin
	gen     uint64
	// What the change replaced, by ID; nil values were absent.
	svcs      map[string]*localService
	chks      map[string]*localCheck
	maint     bool
	prevMaint *string
	pending   *journal.Pending
}

// beginLocked starts a change: it waits (releasing l.mu meanwhile) until
// none of the keys that keys() returns is held by a change in flight, then
// holds them. keys is called with l.mu held and again after every wait,
// since what a change touches may have changed meanwhile. It fails with
// ErrPersistence once the State is closed or when it has a data dir but
// was never restored.
func (l *State) beginLocked(keys func() []string) (*txn, error) {
	for {
		if l.closed {
			return nil, fmt.Errorf("%w: the local state is closed", ErrPersistence)
		}
		if l.dataDir != "" && l.jnl == nil {
			return nil, fmt.Errorf("%w: the local state was not restored from the data dir", ErrPersistence)
		}
		ks := keys()
		if !slices.ContainsFunc(ks, func(k string) bool { return l.held[k] }) {
			for _, k := range ks {
				l.held[k] = true
			}
			l.inflight.Add(1)
			return &txn{l: l, keys: ks, version: l.version, gen: l.gen,
				svcs: map[string]*localService{}, chks: map[string]*localCheck{}}, nil
		}
		l.keyFree.Wait()
	}
}

// saveService remembers service id as it is before the change.
func (t *txn) saveService(id string) {
	if _, ok := t.svcs[id]; !ok {
		t.svcs[id] = t.l.services[id]
	}
}

// saveCheck remembers check id as it is before the change.
func (t *txn) saveCheck(id string) {
	if _, ok := t.chks[id]; !ok {
		t.chks[id] = t.l.checks[id]
	}
}

// saveChecksOf remembers every check bound to service id.
func (t *txn) saveChecksOf(id string) {
	for cid := range t.l.bySvc[id] {
		t.saveCheck(cid)
	}
}

// saveNodeMaint remembers the node's maintenance mode.
func (t *txn) saveNodeMaint() {
	if !t.maint {
		t.maint, t.prevMaint = true, t.l.nodeMaint
	}
}

// undoLocked puts back everything the change replaced.
func (t *txn) undoLocked() {
	l := t.l
	for id, s := range t.svcs {
		if s == nil {
			l.dropServiceLocked(id)
		} else {
			l.putServiceLocked(id, s)
		}
	}
	for id, c := range t.chks {
		if c == nil {
			l.dropCheckLocked(id)
		} else {
			l.putCheckLocked(id, c)
		}
	}
	if t.maint {
		l.nodeMaint = t.prevMaint
		l.markCheckLocked(catalog.NodeMaintCheckID)
	}
}

// abortLocked undoes a change that was never submitted, version included
// (l.mu was held throughout, so nobody saw it), and releases its keys.
func (t *txn) abortLocked() {
	t.undoLocked()
	t.l.version, t.l.gen = t.version, t.gen
	t.releaseLocked()
}

func (t *txn) releaseLocked() {
	for _, k := range t.keys {
		delete(t.l.held, k)
	}
	t.l.keyFree.Broadcast()
	t.l.inflight.Done()
}

// commitLocked checks that the record still fits (grow: the change may
// have made it larger) and submits the entry describing the change. On
// error the change is aborted.
func (t *txn) commitLocked(grow bool) error {
	l := t.l
	if grow {
		if err := l.checkGrowthLocked(t); err != nil {
			t.abortLocked()
			return err
		}
	}
	if l.jnl == nil {
		return nil
	}
	b, err := json.Marshal(t.entryLocked())
	if err != nil {
		t.abortLocked()
		return fmt.Errorf("%w: encode: %v", ErrPersistence, err)
	}
	t.pending = l.jnl.Submit(b)
	return nil
}

// entryLocked describes the current value of everything the change
// touched.
func (t *txn) entryLocked() *entry {
	l := t.l
	e := &entry{Version: l.version}
	for id := range t.svcs {
		if e.Services == nil {
			e.Services = map[string]*persistedService{}
		}
		e.Services[id] = l.persistedServiceLocked(id)
	}
	for id := range t.chks {
		if e.Checks == nil {
			e.Checks = map[string]*persistedCheck{}
			e.States = map[string]*persistedStatus{}
		}
		e.Checks[id] = l.persistedCheckLocked(id)
		e.States[id] = l.persistedStatusLocked(id)
	}
	if t.maint {
		e.NodeMaint = &nodeMaint{Reason: l.nodeMaint}
	}
	return e
}

// wait waits, without l.mu, for the submitted entry to be durable, then
// runs after (without l.mu, the keys still held: runner updates and the
// publish of one key happen in the order of its changes). On failure the
// change is undone and the record published again (others may have
// published it meanwhile). It releases the keys either way.
func (t *txn) wait(after func()) error {
	var err error
	if t.pending != nil {
		err = t.pending.Wait()
	}
	l := t.l
	if err == nil {
		after()
	}
	l.mu.Lock()
	if err != nil {
		t.undoLocked()
		l.bumpLocked()
	}
	t.releaseLocked()
	l.mu.Unlock()
	if err != nil {
		l.publish()
		return fmt.Errorf("%w: %w", ErrPersistence, err)
	}
	return nil
}

// finishLocked ends a change that turned out to change nothing: no entry,
// no version.
func (t *txn) finishLocked() { t.abortLocked() }

// persistedServiceLocked is the persisted form of service id, nil when it
// is absent or comes from a config file.
func (l *State) persistedServiceLocked(id string) *persistedService {
	s := l.services[id]
	if s == nil || s.Source == sourceConfig {
		return nil
	}
	return &persistedService{Source: s.Source, Definition: s.Def, Maint: s.Maint}
}

// persistedCheckLocked is the persisted form of check id as a standalone
// check: nil when it is absent, from a config file or part of its
// service's definition.
func (l *State) persistedCheckLocked(id string) *persistedCheck {
	c := l.checks[id]
	if c == nil || c.Source != sourceAPI || l.ownedByService(c) {
		return nil
	}
	return &persistedCheck{Source: c.Source, Definition: c.Raw}
}

// persistedStatusLocked is the persisted status of check id: TTL checks
// only, whose status comes from outside and must survive a restart.
func (l *State) persistedStatusLocked(id string) *persistedStatus {
	c := l.checks[id]
	if c == nil || c.Def.TTL <= 0 {
		return nil
	}
	return &persistedStatus{Status: c.Status, Output: c.Output}
}

// ownedByService reports whether c was registered as part of a service.
func (l *State) ownedByService(c *localCheck) bool {
	s := l.services[c.Def.ServiceID]
	return s != nil && slices.Contains(s.CheckIDs, c.Def.ID)
}

// snapshotLocked is the persisted form of the whole state in memory
// (tests compare it with what the journal replays).
func (l *State) snapshotLocked() persistedState {
	im := newImage()
	im.version, im.nodeMaint = l.version, l.nodeMaint
	for id := range l.services {
		if s := l.persistedServiceLocked(id); s != nil {
			im.services[id] = *s
		}
	}
	for id := range l.checks {
		if c := l.persistedCheckLocked(id); c != nil {
			im.checks[id] = *c
		}
		if st := l.persistedStatusLocked(id); st != nil {
			im.states[id] = *st
		}
	}
	return im.state()
}
