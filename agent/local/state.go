package local

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chorusdns/chorus/agent/local/journal"
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
	// jsonSize and leaf cache the length of Service's JSON and its leaf
	// in the record's hash tree while Service.Load is jsonLoad (see
	// serviceLeafLocked); the rest of Service never changes for one
	// localService.
	jsonSize int
	jsonLoad float64
	leaf     catalog.Leaf
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
	// reported is set by the first result the runner hands on for the
	// check (applyResult).
	reported bool
	// record, jsonSize and leaf cache the check as the record carries it,
	// the length of its JSON and its leaf in the record's hash tree while
	// jsonKey holds (checkRecordLocked).
	record   catalog.Check
	jsonSize int
	leaf     catalog.Leaf
	jsonKey  checkSizeKey
}

// Config is what the local state needs to know of the agent's settings.
type Config struct {
	// Node is this agent's node: name, advertised address, datacenter,
	// zone and node meta. It does not change while the agent runs.
	Node catalog.Node
	// DataDir holds the persisted state (the journal in DataDir/local);
	// "" keeps it in memory only.
	DataDir string
	// EnableScriptChecks allows checks that run a command, however they
	// are registered.
	EnableScriptChecks bool
	// EnableLocalScriptChecks allows them in config-file services only
	// (Consul's enable_local_script_checks): never through the API.
	EnableLocalScriptChecks bool
	// CheckUpdateInterval is how long a change of a check's output alone
	// may wait before it is published (Consul's check_update_interval);
	// zero means the default of 5 minutes.
	CheckUpdateInterval time.Duration
	// DockerSocket is the Docker Engine socket Docker checks use, and
	// Catalog the view alias checks follow (checks.Config).
	DockerSocket string
	Catalog      checks.Catalog
}

// State is the agent's own node: the services and checks it owns, their
// states, and its record version. It is the only writer of this node's
// record and the one owner of every local check's status, output and
// critical-since time; the checks runners only report results to it. Each
// change bumps the version, is appended to the journal in the data dir
// (an entry describing just that change; concurrent changes share one
// fsync) before the call that made it returns, and is handed to the
// publish function given to New as a new catalog.NodeRecord. A change that
// cannot be written is undone and fails with ErrPersistence; a change
// that changes nothing writes nothing.
//
// All methods are safe for concurrent use; its lock is private. The owner
// calls Restore once, Run, and Close at shutdown.
type State struct {
	logger            *slog.Logger
	runner            *checks.Manager
	publishFn         func(*catalog.NodeRecord)
	scriptChecks      atomic.Bool // script and Docker checks from any source
	localScriptChecks atomic.Bool // … from config files only
	outputDelay       time.Duration

	publishMu sync.Mutex // orders calls of publishFn
	// timers wakes Run's timer loop when something becomes due later (a
	// lazy publish, a critical check with a deregistration deadline); the
	// loop sleeps while nothing is.
	timers   chan struct{}
	mu       sync.Mutex
	node     catalog.Node
	gossip   string // our gossip address, carried in the record
	version  uint64
	services map[string]*localService
	checks   map[string]*localCheck
	// bySvc indexes checks by the service they are bound to (service ID
	// → check IDs); putCheckLocked and dropCheckLocked keep it, so a
	// change of one service finds its checks without a walk of all.
	bySvc     map[string]map[string]struct{}
	nodeMaint *string
	lazyDue   time.Time // a publish is due by then; zero if none
	now       func() time.Time
	gen       uint64             // bumped on every change
	pubGen    uint64             // gen of the last record published
	pubDone   bool               // a record has been published
	svcOrder  []string           // sorted service IDs of the last record
	pubTree   *catalog.PieceTree // hash tree of the last record published
	rc        recordCache        // the last record's pieces (record.go)
	// sizeBase is the record's JSON size when last counted, sizeDrift an
	// upper bound of what changes added since (checkGrowthLocked).
	sizeBase, sizeDrift int
	sizeKnown           bool
	chkOrder            []string // sorted check IDs of the last record
	// builtin are the built-in services (SetBuiltin), sorted by ID;
	// shadowed holds the IDs of those a registration holds the place of.
	builtin  []builtinService
	shadowed map[string]bool

	dataDir  string           // "" = no persistence
	jnl      *journal.Journal // set by Restore when dataDir is set
	dropped  atomic.Int64     // bytes of a torn end Restore cut off (DroppedAtStart)
	held     map[string]bool  // keys of the changes in flight (txn.go)
	keyFree  *sync.Cond       // signalled when keys are released; uses mu
	inflight sync.WaitGroup   // changes between begin and release
	closed   bool

	ext *Externals // the external nodes this agent owns (externals.go)
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
		timers:      make(chan struct{}, 1),
		node:        cfg.Node,
		services:    make(map[string]*localService),
		checks:      make(map[string]*localCheck),
		bySvc:       make(map[string]map[string]struct{}),
		now:         time.Now,
		outputDelay: cfg.CheckUpdateInterval,
	}
	if l.outputDelay <= 0 {
		l.outputDelay = defaultOutputDelay
	}
	l.scriptChecks.Store(cfg.EnableScriptChecks)
	l.localScriptChecks.Store(cfg.EnableLocalScriptChecks)
	l.dataDir = cfg.DataDir
	l.held = map[string]bool{}
	l.keyFree = sync.NewCond(&l.mu)
	l.runner = checks.New(checks.Config{EnableScriptChecks: cfg.EnableScriptChecks || cfg.EnableLocalScriptChecks, DockerSocket: cfg.DockerSocket, Catalog: cfg.Catalog}, logger, l.applyResult)
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
// port is bound; before the first Publish) and returns the version the
// record takes with it: the agent's start version, which the next
// Publish announces (or a later one, if a change came between).
func (l *State) SetGossip(addr string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gossip = addr
	l.rc.ok = false
	l.bumpLocked()
	return l.version
}

// recordLocked builds the node record from the current state. Services
// and checks are walked in an ID order kept from one record to the next
// (sorted again only when the set of IDs changed) and each piece's record
// form, JSON size and leaf hash are cached until it changes, so a record
// costs a copy of the previous one's elements. The record shares the
// services' Tags and Meta, which the State never modifies in place: like
// every record handed to the publish function, it must not be modified.
func (l *State) recordLocked() *catalog.NodeRecord {
	rec, _, _, _ := l.buildRecordLocked(false)
	return rec
}

// signableRecordLocked is recordLocked with the record's hash tree
// attached (catalog.NodeRecord.SetPieceTree): the tree is built from the
// cached leaves and shares the buckets that did not change with the
// previous record's, so signing costs the changed pieces.
func (l *State) signableRecordLocked() *catalog.NodeRecord {
	if rec := l.patchRecordLocked(); rec != nil {
		return rec
	}
	rec, chkLeaves, svcLeaves, size := l.buildRecordLocked(true)
	leaves := append(chkLeaves, svcLeaves...)
	t := catalog.BuildTree(l.pubTree, leaves)
	l.pubTree = t
	rec.SetPieceTree(t)
	l.rc.reset(rec)
	// The walk counted the record's size: the size check starts again
	// from it (checkGrowthLocked).
	l.sizeBase, l.sizeDrift, l.sizeKnown = size+l.recordOverheadLocked(rec.Services.Len(), rec.Checks.Len()), 0, true
	return rec
}

// buildRecordLocked builds the record; withLeaves, it also returns the
// leaves of its checks and services in record order and the JSON size of
// its pieces (each with its separator).
func (l *State) buildRecordLocked(withLeaves bool) (rec *catalog.NodeRecord, chkLeaves, svcLeaves []catalog.Leaf, size int) {
	rec = &catalog.NodeRecord{Node: l.node, Version: l.version, Gossip: l.gossip}
	l.svcOrder = keepSorted(l.svcOrder, l.services)
	l.chkOrder = keepSorted(l.chkOrder, l.checks)
	svcs := make([]catalog.Service, 0, len(l.services)+len(l.builtin))
	chks := make([]catalog.Check, 0, len(l.checks))
	if withLeaves {
		svcLeaves = make([]catalog.Leaf, 0, len(l.services)+len(l.builtin))
		chkLeaves = make([]catalog.Leaf, 0, len(l.checks)+1)
	}
	// The built-in services go in at their place in ID order, unless a
	// registration holds it.
	bi := 0
	placeBuiltin := func(before string, all bool) {
		for ; bi < len(l.builtin) && (all || l.builtin[bi].svc.ID < before); bi++ {
			b := &l.builtin[bi]
			_, taken := l.services[b.svc.ID]
			l.shadowLocked(b.svc.ID, taken)
			if taken {
				continue
			}
			svcs = append(svcs, b.svc)
			if withLeaves {
				svcLeaves = append(svcLeaves, b.leaf)
				size += b.size + 1
			}
		}
	}
	maint := false
	for _, id := range l.svcOrder {
		placeBuiltin(id, false)
		s := l.services[id]
		svcs = append(svcs, s.Service)
		if withLeaves {
			lf, n := l.serviceLeafLocked(s)
			svcLeaves = append(svcLeaves, lf)
			size += n + 1
		}
		if s.Maint != nil {
			chks = append(chks, l.serviceMaintCheck(s))
			maint = true
		}
	}
	placeBuiltin("", true)
	if l.nodeMaint != nil {
		chks = append(chks, l.nodeMaintCheck())
		maint = true
	}
	if withLeaves && maint {
		for i := range chks {
			size += jsonLen(chks[i]) + 1
		}
	}
	for _, id := range l.chkOrder {
		c := l.checks[id]
		cc, n := l.checkRecordLocked(c)
		chks = append(chks, cc)
		if withLeaves {
			chkLeaves = append(chkLeaves, c.leaf)
			size += n + 1
		}
	}
	if maint {
		slices.SortFunc(chks, func(a, b catalog.Check) int { return strings.Compare(a.CheckID, b.CheckID) })
		if withLeaves {
			// Maintenance checks are rare: their leaves are computed
			// each time, and the check leaves sorted again.
			chkLeaves = chkLeaves[:0]
			for i := range chks {
				id := chks[i].CheckID
				if c := l.checks[id]; c != nil && !isMaintID(id) {
					chkLeaves = append(chkLeaves, c.leaf)
					continue
				}
				lf, _, _ := catalog.CheckLeaf(&chks[i])
				chkLeaves = append(chkLeaves, lf)
			}
		}
	}
	rec.Services, rec.Checks = catalog.ListOf(svcs), catalog.ListOf(chks)
	return rec, chkLeaves, svcLeaves, size
}

// isMaintID reports whether id is one of the maintenance checks' IDs.
func isMaintID(id string) bool {
	return id == catalog.NodeMaintCheckID || strings.HasPrefix(id, catalog.ServiceMaintCheckPrefix)
}

// serviceLeafLocked returns s's leaf in the record's hash tree and the
// length of its JSON, cached in s until its load changes.
func (l *State) serviceLeafLocked(s *localService) (catalog.Leaf, int) {
	if s.jsonSize == 0 || s.jsonLoad != s.Service.Load {
		lf, n, err := catalog.ServiceLeaf(&s.Service)
		if err != nil {
			// A Service always encodes; an error leaves a leaf that no
			// receiver computes, which fails verification there.
			l.logger.Error("encode service", "service", s.Service.ID, "err", err)
		}
		s.leaf, s.jsonSize, s.jsonLoad = lf, n, s.Service.Load
	}
	return s.leaf, s.jsonSize
}

// keepSorted returns the sorted keys of m, reusing order when it already
// holds exactly them.
func keepSorted[V any](order []string, m map[string]V) []string {
	if len(order) == len(m) {
		same := true
		for _, id := range order {
			if _, ok := m[id]; !ok {
				same = false
				break
			}
		}
		if same {
			return order
		}
	}
	return slices.Sorted(maps.Keys(m))
}

// checkRecordLocked returns check c as the record carries it and the
// length of its JSON, cached in c until its status, output or service
// name changes (its definition never does).
func (l *State) checkRecordLocked(c *localCheck) (catalog.Check, int) {
	svcName := ""
	if s := l.services[c.Def.ServiceID]; s != nil {
		svcName = s.Service.Name
	}
	k := checkSizeKey{status: c.Status, output: c.Output, serviceName: svcName}
	if c.jsonSize == 0 || c.jsonKey != k {
		c.record = l.catalogCheckLocked(c)
		lf, n, err := catalog.CheckLeaf(&c.record)
		if err != nil {
			l.logger.Error("encode check", "check", c.Def.ID, "err", err)
		}
		c.leaf, c.jsonSize, c.jsonKey = lf, n, k
	}
	return c.record, c.jsonSize
}

// putCheckLocked sets check id to c (replacing any), keeping bySvc and
// noting the change for the next record (record.go).
func (l *State) putCheckLocked(id string, c *localCheck) {
	l.dropCheckLocked(id)
	l.checks[id] = c
	l.markCheckLocked(id)
	if sid := c.Def.ServiceID; sid != "" {
		m := l.bySvc[sid]
		if m == nil {
			m = map[string]struct{}{}
			l.bySvc[sid] = m
		}
		m[id] = struct{}{}
	}
}

// dropCheckLocked removes check id, if any, keeping bySvc.
func (l *State) dropCheckLocked(id string) {
	c := l.checks[id]
	if c == nil {
		return
	}
	delete(l.checks, id)
	l.markCheckLocked(id)
	if sid := c.Def.ServiceID; sid != "" {
		if m := l.bySvc[sid]; m != nil {
			delete(m, id)
			if len(m) == 0 {
				delete(l.bySvc, sid)
			}
		}
	}
}

// serviceMaintCheck is the maintenance check of a service in maintenance.
func (l *State) serviceMaintCheck(s *localService) catalog.Check {
	return catalog.Check{
		CheckID: catalog.ServiceMaintCheckPrefix + s.Service.ID, Name: "Service Maintenance Mode",
		Status: catalog.HealthCritical, Notes: *s.Maint, ServiceID: s.Service.ID,
		ServiceName: s.Service.Name, Type: "maintenance",
	}
}

// nodeMaintCheck is the maintenance check of the node in maintenance.
func (l *State) nodeMaintCheck() catalog.Check {
	return catalog.Check{
		CheckID: catalog.NodeMaintCheckID, Name: "Node Maintenance Mode",
		Status: catalog.HealthCritical, Notes: *l.nodeMaint, Type: "maintenance",
	}
}

// catalogCheckLocked is a local check as the record carries it.
func (l *State) catalogCheckLocked(c *localCheck) catalog.Check {
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
	return cc
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
		l.putCheckLocked(d.ID, l.newCheckLocked(d, r, source))
	}
	if old != nil {
		for _, id := range old.CheckIDs {
			if !keep[id] {
				l.dropCheckLocked(id)
				removed = append(removed, id)
			}
		}
	}
	l.putServiceLocked(svc.ID, ls)
	l.bumpLocked()
	return removed
}

// removeServiceLocked removes a service and every check bound to it and
// returns the removed check IDs.
func (l *State) removeServiceLocked(id string) ([]string, error) {
	if _, ok := l.services[id]; !ok {
		return nil, fmt.Errorf("service %q: %w", id, ErrNotFound)
	}
	l.dropServiceLocked(id)
	var removed []string
	for cid := range l.bySvc[id] {
		removed = append(removed, cid)
	}
	for _, cid := range removed {
		l.dropCheckLocked(cid)
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
		l.wakeTimers()
	}
	return c
}

func initialStatus(d checks.Definition) string {
	if d.Status != "" {
		return d.Status
	}
	return catalog.HealthCritical
}
