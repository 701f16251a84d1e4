package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/checks"
)

// Where a local registration came from. Config-file services are replaced
// on reload; API ones are never touched by a reload.
const (
	sourceAPI    = "api"
	sourceConfig = "config"
)

// localService is one service this agent owns.
type localService struct {
	Def     ServiceDefinition
	Service catalog.Service
	Source  string
	// CheckIDs are the checks registered with the service.
	CheckIDs []string
	// Maint is the maintenance reason, or nil.
	Maint *string
}

// localCheck is one check this agent owns and runs.
type localCheck struct {
	Def    checks.Definition
	Raw    CheckDefinition
	Source string
	Status string
	Output string
	// criticalSince is when the check last turned critical, zero if not.
	criticalSince time.Time
}

// Config is what the local state needs to know of the agent's settings.
type Config struct {
	// Node is this agent's node: name, advertised address, datacenter,
	// zone and node meta. It does not change while the agent runs.
	Node catalog.Node
	// DataDir holds the persisted state; "" keeps it in memory only.
	DataDir string
	// EnableScriptChecks allows checks that run a command.
	EnableScriptChecks bool
	// CheckUpdateInterval is how long a change of a check's output alone
	// may wait before it is published (Consul's check_update_interval);
	// zero means the default of 5 minutes.
	CheckUpdateInterval time.Duration
}

// State is the agent's own node: the services and checks it owns, their
// states, and its record version. It is the only writer of this node's
// record and the one owner of every local check's status, output and
// critical-since time; the checks runners only report results to it. Each
// change bumps the version, is persisted to the data dir before the call
// that made it returns, and is handed to the publish function given to
// New as a new catalog.NodeRecord.
//
// All methods are safe for concurrent use; its lock is private.
type State struct {
	logger       *slog.Logger
	runner       *checks.Manager
	publishFn    func(*catalog.NodeRecord)
	scriptChecks atomic.Bool
	outputDelay  time.Duration

	publishMu  sync.Mutex // orders calls of publishFn
	mu         sync.Mutex
	node       catalog.Node
	gossip     string // our gossip address, carried in the record
	version    uint64
	services   map[string]*localService
	checks     map[string]*localCheck
	nodeMaint  *string
	lazyDue    time.Time // a publish is due by then; zero if none
	now        func() time.Time
	path       string // "" = no persistence
	gen        uint64 // bumped on every change
	persistMu  sync.Mutex
	persisted  uint64 // gen last written; guarded by persistMu
	persistErr error
}

// New returns the local state of cfg.Node with nothing registered. It
// starts no goroutine: Restore loads the persisted state, Run runs the
// checks and the timers. publish receives every new record of this node,
// in version order, from the goroutine that made the change; it must not
// call back into the State.
func New(cfg Config, logger *slog.Logger, publish func(*catalog.NodeRecord)) *State {
	l := &State{
		logger:      logger.With("component", "local"),
		publishFn:   publish,
		node:        cfg.Node,
		services:    make(map[string]*localService),
		checks:      make(map[string]*localCheck),
		now:         time.Now,
		outputDelay: cfg.CheckUpdateInterval,
	}
	if l.outputDelay <= 0 {
		l.outputDelay = defaultOutputDelay
	}
	l.scriptChecks.Store(cfg.EnableScriptChecks)
	if cfg.DataDir != "" {
		l.path = filepath.Join(cfg.DataDir, "local.json")
	}
	l.runner = checks.New(checks.Config{EnableScriptChecks: cfg.EnableScriptChecks}, logger, l.applyResult)
	return l
}

// Node returns this agent's node as the record carries it.
func (l *State) Node() catalog.Node { return l.node }

// bumpLocked advances the record version: it strictly increases, also
// across restarts (wall-clock milliseconds, or the last version plus one).
func (l *State) bumpLocked() {
	v := uint64(l.now().UnixMilli())
	if v <= l.version {
		v = l.version + 1
	}
	l.version = v
	l.gen++
}

// SetGossip sets the gossip address the record carries (once the gossip
// port is bound; before the first Publish).
func (l *State) SetGossip(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gossip = addr
}

// recordLocked builds the node record from the current state.
func (l *State) recordLocked() *catalog.NodeRecord {
	rec := &catalog.NodeRecord{Node: l.node, Version: l.version, Gossip: l.gossip}
	for _, s := range l.services {
		rec.Services = append(rec.Services, s.Service.Clone())
		if s.Maint != nil {
			rec.Checks = append(rec.Checks, catalog.Check{
				CheckID: catalog.ServiceMaintCheckPrefix + s.Service.ID, Name: "Service Maintenance Mode",
				Status: catalog.HealthCritical, Notes: *s.Maint, ServiceID: s.Service.ID,
				ServiceName: s.Service.Name, Type: "maintenance",
			})
		}
	}
	if l.nodeMaint != nil {
		rec.Checks = append(rec.Checks, catalog.Check{
			CheckID: catalog.NodeMaintCheckID, Name: "Node Maintenance Mode",
			Status: catalog.HealthCritical, Notes: *l.nodeMaint, Type: "maintenance",
		})
	}
	for _, c := range l.checks {
		cc := catalog.Check{
			CheckID: c.Def.ID, Name: c.Def.Name, Status: c.Status, Notes: c.Def.Notes,
			Output: c.Output, ServiceID: c.Def.ServiceID, Type: c.Def.Type(),
		}
		if c.Def.Interval > 0 {
			cc.Interval = c.Def.Interval.String()
		}
		if c.Def.Timeout > 0 {
			cc.Timeout = c.Def.Timeout.String()
		}
		if s := l.services[c.Def.ServiceID]; s != nil {
			cc.ServiceName = s.Service.Name
		}
		rec.Checks = append(rec.Checks, cc)
	}
	rec.Sort()
	return rec
}

// addServiceLocked adds or replaces a service and its checks. It returns
// the IDs of checks that were removed because the new definition no
// longer has them.
func (l *State) addServiceLocked(def ServiceDefinition, svc catalog.Service, defs []checks.Definition, raw []CheckDefinition, source string) (removed []string) {
	old := l.services[svc.ID]
	ls := &localService{Def: def, Service: svc, Source: source}
	if old != nil {
		ls.Maint = old.Maint
	}
	keep := make(map[string]bool, len(defs))
	for i, d := range defs {
		keep[d.ID] = true
		ls.CheckIDs = append(ls.CheckIDs, d.ID)
		var r CheckDefinition
		if i < len(raw) {
			r = raw[i]
		}
		l.checks[d.ID] = l.newCheckLocked(d, r, source)
	}
	if old != nil {
		for _, id := range old.CheckIDs {
			if !keep[id] {
				delete(l.checks, id)
				removed = append(removed, id)
			}
		}
	}
	l.services[svc.ID] = ls
	l.bumpLocked()
	return removed
}

// removeServiceLocked removes a service and every check bound to it and
// returns the removed check IDs.
func (l *State) removeServiceLocked(id string) ([]string, error) {
	if _, ok := l.services[id]; !ok {
		return nil, fmt.Errorf("service %q: %w", id, ErrNotFound)
	}
	delete(l.services, id)
	var removed []string
	for cid, c := range l.checks {
		if c.Def.ServiceID == id {
			delete(l.checks, cid)
			removed = append(removed, cid)
		}
	}
	sort.Strings(removed)
	l.bumpLocked()
	return removed, nil
}

// newCheckLocked makes the local entry of a check: it keeps the status of
// a check of the same ID and type being replaced, else starts from the
// definition's initial status.
func (l *State) newCheckLocked(d checks.Definition, raw CheckDefinition, source string) *localCheck {
	c := &localCheck{Def: d, Raw: raw, Source: source, Status: initialStatus(d)}
	if prev := l.checks[d.ID]; prev != nil && prev.Def.Type() == d.Type() {
		c.Status, c.Output, c.criticalSince = prev.Status, prev.Output, prev.criticalSince
	}
	if c.Status == catalog.HealthCritical && c.criticalSince.IsZero() {
		c.criticalSince = l.now()
	}
	return c
}

func initialStatus(d checks.Definition) string {
	if d.Status != "" {
		return d.Status
	}
	return catalog.HealthCritical
}

// persistedState is the on-disk form of the local state.
type persistedState struct {
	Version     uint64
	Services    []persistedService         `json:",omitempty"`
	Checks      []persistedCheck           `json:",omitempty"`
	NodeMaint   *string                    `json:",omitempty"`
	CheckStates map[string]persistedStatus `json:",omitempty"`
}

type persistedService struct {
	Source     string
	Definition ServiceDefinition
	Maint      *string `json:",omitempty"`
}

type persistedCheck struct {
	Source     string
	Definition CheckDefinition
}

type persistedStatus struct {
	Status string
	Output string `json:",omitempty"`
}

// snapshotLocked captures what must be persisted.
func (l *State) snapshotLocked() persistedState {
	p := persistedState{Version: l.version, NodeMaint: l.nodeMaint, CheckStates: map[string]persistedStatus{}}
	ids := make([]string, 0, len(l.services))
	for id := range l.services {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s := l.services[id]
		if s.Source == sourceConfig {
			continue // config files are the source of truth for these
		}
		p.Services = append(p.Services, persistedService{Source: s.Source, Definition: s.Def, Maint: s.Maint})
	}
	cids := make([]string, 0, len(l.checks))
	for id := range l.checks {
		cids = append(cids, id)
	}
	sort.Strings(cids)
	for _, id := range cids {
		c := l.checks[id]
		if c.Def.TTL > 0 {
			p.CheckStates[id] = persistedStatus{Status: c.Status, Output: c.Output}
		}
		if c.Source == sourceAPI && !l.ownedByService(c) {
			p.Checks = append(p.Checks, persistedCheck{Source: c.Source, Definition: c.Raw})
		}
	}
	return p
}

// ownedByService reports whether c was registered as part of a service.
func (l *State) ownedByService(c *localCheck) bool {
	s := l.services[c.Def.ServiceID]
	if s == nil {
		return false
	}
	for _, id := range s.CheckIDs {
		if id == c.Def.ID {
			return true
		}
	}
	return false
}

// Flush writes the state to disk if it changed since the last write (at
// shutdown).
func (l *State) Flush() error { return l.persist() }

// persist writes the state to disk if it changed since the last write.
// Concurrent callers share writes: a caller whose change was already
// written by someone else returns at once (group commit).
func (l *State) persist() error {
	if l.path == "" {
		return nil
	}
	l.mu.Lock()
	want := l.gen
	l.mu.Unlock()

	l.persistMu.Lock()
	defer l.persistMu.Unlock()
	if l.persisted >= want {
		return l.persistErr
	}
	l.mu.Lock()
	gen := l.gen
	snap := l.snapshotLocked()
	l.mu.Unlock()
	b, err := json.MarshalIndent(snap, "", "  ")
	if err == nil {
		err = WriteFileAtomic(l.path, b)
	}
	if err != nil {
		l.persistErr = fmt.Errorf("persist local state: %w", err)
		return l.persistErr
	}
	l.persisted, l.persistErr = gen, nil
	return nil
}

// loadPersisted reads the persisted state. A missing file is an empty
// state. A damaged file is reported; the previous good copy (kept beside
// it) is used instead when it exists.
func loadPersisted(path string) (persistedState, []string, error) {
	var warnings []string
	p, err := readPersisted(path)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return p, nil, nil
	}
	warnings = append(warnings, fmt.Sprintf("%s is damaged (%v); using the previous good copy %s.prev", path, err, path))
	prev, perr := readPersisted(path + ".prev")
	if perr != nil {
		return persistedState{}, warnings, fmt.Errorf("%s is damaged (%v) and no good previous copy exists (%v): move it away to start with an empty local state", path, err, perr)
	}
	return prev, warnings, nil
}

func readPersisted(path string) (persistedState, error) {
	var p persistedState
	b, err := os.ReadFile(path)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode: %v", err)
	}
	return p, nil
}

// WriteFileAtomic replaces path with data durably: the data goes to a
// temporary file that is fsynced and renamed over path, the old file is
// kept as path.prev, and the directory is fsynced.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil {
		os.Remove(path + ".prev")
		if err := os.Link(path, path+".prev"); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
