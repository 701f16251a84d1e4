package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chorusdns/chorus/agent/local/journal"
	"github.com/chorusdns/chorus/catalog"
)

// External nodes: what Consul's /v1/catalog/register creates for a node
// that runs no agent (a database, a SaaS endpoint, an appliance). Each is
// a catalog record of its own (catalog/external.go) with node-level
// checks, node meta, tagged addresses and services, owned by one agent:
// the one that wrote its newest version. The owner signs it with its own
// key, keeps it in its journal (DataDir/external) and replicates it like
// its own record.
//
// Writes: a registration or deregistration accepted by any agent is
// applied to the newest version that agent's catalog holds, whoever owns
// it, and the result, one version higher and owned by the accepting
// agent, is persisted and published; the former owner sees the newer
// version and yields (drops its copy). So a write never waits for another
// agent, works whatever the owner's state, and every version of a node
// has exactly one writer. The cost: two writes to the same node through
// two agents within one replication delay (milliseconds on a LAN) are
// decided by the newest version, and the other's change is lost; writes
// through one agent are applied in order. Adoption (Adopt) is the same
// step with no change: the adopter becomes the owner of what it holds.
//
// Deregistering the whole node publishes a tombstone (Deleted), which
// outranks every older version and is forgotten after TombstoneTTL.

// TombstoneTTL is how long a deregistered external node's tombstone is
// kept, in the owner's journal and in every catalog. A record older than
// the tombstone that arrives later (from an agent cut off for longer)
// would bring the node back.
const TombstoneTTL = 72 * time.Hour

// externalJournalDir is the journal of the external nodes this agent
// owns, inside the data dir.
const externalJournalDir = "external"

// NodeRegistration is one /v1/catalog/register request as Externals
// applies it (Consul's structs.RegisterRequest).
type NodeRegistration struct {
	Node            string
	Address         string
	TaggedAddresses map[string]string
	NodeMeta        map[string]string
	// SkipNodeUpdate keeps an existing node's address, tagged addresses
	// and meta.
	SkipNodeUpdate bool
	// Service, when set, is added or replaced (by ID; ID defaults to
	// Name).
	Service *catalog.Service
	// Checks are added or replaced by CheckID (CheckID defaults to Name).
	// A check without ServiceID is a node-level check; one with a
	// ServiceID must name a service of the node. An empty Status is
	// critical, as in Consul.
	Checks []catalog.Check
}

// ExternalsConfig is what Externals needs of the agent.
type ExternalsConfig struct {
	// Self is this agent's node name; Datacenter its datacenter, given to
	// the nodes it registers.
	Self       string
	Datacenter string
	// DataDir holds the journal; "" keeps everything in memory.
	DataDir string
	// Store is the catalog: the newest version of every node is read from
	// it, and Publish applies to it.
	Store *catalog.Store
	// Publish signs rec with this agent's key, applies it to the catalog
	// and sends it to peers. It reports whether the catalog took it
	// (false: the catalog holds a newer version of the node).
	Publish func(rec *catalog.NodeRecord) bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Externals holds the external nodes this agent owns and applies every
// write to external nodes accepted here. Its methods are safe for
// concurrent use; writes are serialised (they are rare).
type Externals struct {
	cfg    ExternalsConfig
	logger *slog.Logger

	mu    sync.Mutex
	owned map[string]*catalog.NodeRecord // node → the version this agent wrote
	jnl   *journal.Journal
	stats ExternalStats

	dropped atomic.Int64 // bytes of a torn end Restore cut off (DroppedAtStart)
}

// DroppedAtStart returns how many bytes of a torn end Restore cut off the
// external nodes journal (0 if none; see tornEndCause). It is safe for
// concurrent use.
func (x *Externals) DroppedAtStart() int64 { return x.dropped.Load() }

// ExternalStats count what happened to the external nodes an agent owns
// since it started.
type ExternalStats struct {
	// Adoptions: nodes adopted because their owner failed or left.
	Adoptions uint64
	// Yields: nodes given up to a newer version another agent wrote, or
	// whose tombstone expired.
	Yields uint64
}

// Stats returns the counters.
func (x *Externals) Stats() ExternalStats {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.stats
}

// NewExternals returns an Externals that owns nothing. It starts no
// goroutine; Restore loads the journal.
func NewExternals(cfg ExternalsConfig, logger *slog.Logger) *Externals {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Externals{cfg: cfg, logger: logger.With("component", "external"), owned: map[string]*catalog.NodeRecord{}}
}

// externalEntry is one journal entry: a node's record as this agent wrote
// it, or (Record nil) that this agent no longer owns the node.
type externalEntry struct {
	Node   string
	Record *catalog.NodeRecord `json:",omitempty"`
}

// externalImage is the journal's snapshot: every owned record.
type externalImage struct {
	Records []*catalog.NodeRecord
}

func foldExternal(snapshot []byte, entries [][]byte) ([]byte, error) {
	m := map[string]*catalog.NodeRecord{}
	if snapshot != nil {
		var im externalImage
		if err := json.Unmarshal(snapshot, &im); err != nil {
			return nil, fmt.Errorf("external nodes snapshot: %v", err)
		}
		for _, r := range im.Records {
			if r != nil {
				m[r.Node.Name] = r
			}
		}
	}
	for i, b := range entries {
		var e externalEntry
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("external nodes entry %d: %v", i+1, err)
		}
		if e.Record == nil {
			delete(m, e.Node)
		} else {
			m[e.Node] = e.Record
		}
	}
	im := externalImage{Records: make([]*catalog.NodeRecord, 0, len(m))}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		im.Records = append(im.Records, m[name])
	}
	return json.Marshal(im)
}

// Restore opens the journal, loads the external nodes this agent owned
// when it stopped and publishes them at the versions they had: a node
// another agent adopted meanwhile has a newer version there, which wins
// wherever the two meet, and this agent yields to it (Reconcile).
func (x *Externals) Restore() error {
	if x.cfg.DataDir == "" {
		return nil
	}
	dir := filepath.Join(x.cfg.DataDir, externalJournalDir)
	j, err := journal.Open(dir, journal.Options{Fold: foldExternal, Logger: x.logger, MaxEntryBytes: 2 * catalog.MaxRecordSize})
	if err != nil {
		return fmt.Errorf("external nodes journal: %w", err)
	}
	if tt := j.TornTail(); tt != nil {
		x.dropped.Store(tt.Bytes)
		x.logger.Error("dropped the torn end of the external nodes journal: "+tornEndCause+"; check the external nodes this agent owns",
			"file", tt.File, "offset", tt.Offset, "bytes", tt.Bytes, "reason", tt.Reason)
	}
	m := map[string]*catalog.NodeRecord{}
	err = j.Replay(func(r journal.Record) error {
		if r.Snapshot {
			var im externalImage
			if err := json.Unmarshal(r.Data, &im); err != nil {
				return &journal.CorruptError{File: filepath.Join(dir, "snapshot"), Reason: err.Error(), Recovery: adviceExternal}
			}
			for _, rec := range im.Records {
				if rec != nil {
					m[rec.Node.Name] = rec
				}
			}
			return nil
		}
		var e externalEntry
		if err := json.Unmarshal(r.Data, &e); err != nil {
			return &journal.CorruptError{File: filepath.Join(dir, "log"), Reason: fmt.Sprintf("entry %d does not decode: %v", r.Seq, err), Recovery: adviceExternal}
		}
		if e.Record == nil {
			delete(m, e.Node)
		} else {
			m[e.Node] = e.Record
		}
		return nil
	})
	if err != nil {
		j.Close()
		return err
	}
	for name, rec := range m {
		if err := rec.Validate(); err != nil || rec.Owner != x.cfg.Self || rec.Node.Name != name {
			j.Close()
			return &journal.CorruptError{File: dir, Reason: fmt.Sprintf("external node %q: record does not validate or names owner %q: %v", name, rec.Owner, err), Recovery: adviceExternal}
		}
	}
	x.mu.Lock()
	x.jnl = j
	x.owned = m
	x.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(m)) {
		x.cfg.Publish(m[name])
	}
	if len(m) > 0 {
		x.logger.Info("restored the external nodes this agent owns", "nodes", len(m))
	}
	return nil
}

const adviceExternal = "restore the data dir from a backup, or move the directory away: the external nodes this agent owned are still held by the other agents, and one of them adopts each"

// Close closes the journal. Writes fail afterwards.
func (x *Externals) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.jnl == nil {
		return nil
	}
	err := x.jnl.Close()
	x.jnl = nil
	return err
}

// Owned returns the names of the external nodes this agent owns (their
// tombstones included), sorted.
func (x *Externals) Owned() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Sorted(maps.Keys(x.owned))
}

// versionLocked is the version a new record of node gets: above every
// version known of it, and at least the clock in milliseconds, so that an
// adoption outranks whatever a dead owner wrote before it died.
func (x *Externals) versionLocked(node string) uint64 {
	v := uint64(x.cfg.Now().UnixMilli())
	if cur := x.cfg.Store.Version(node); cur >= v {
		v = cur + 1
	}
	if own := x.owned[node]; own != nil && own.Version >= v {
		v = own.Version + 1
	}
	return v
}

// baseLocked returns the newest live version of external node name the
// catalog (or this agent) holds, nil if none. A name held by an agent is
// an error wrapping ErrInvalid.
func (x *Externals) baseLocked(name string) (*catalog.NodeRecord, error) {
	cur := x.cfg.Store.Record(name)
	if own := x.owned[name]; own != nil && (cur == nil || own.Version > cur.Version) {
		cur = own
	}
	member := false
	if n, ok := x.cfg.Store.Snapshot().Node(name); ok && (n.Status != catalog.MemberNone || n.Owner() == "") {
		member = true // an agent, listed by the gossip layer before its record arrived
	}
	if name == x.cfg.Self || member || cur != nil && !cur.IsExternal() {
		return nil, fmt.Errorf("node %q is an agent: its services are registered with that agent's /v1/agent/service/register: %w", name, ErrInvalid)
	}
	if cur == nil || cur.Deleted {
		return nil, nil
	}
	return cur, nil
}

// writeLocked persists rec as this agent's version of its node and
// publishes it. It reports false when the catalog already held a newer
// version (a write through another agent that arrived meanwhile).
func (x *Externals) writeLocked(rec *catalog.NodeRecord) (bool, error) {
	rec.Sort()
	if raw, err := catalog.RecordJSON(rec); err != nil {
		return false, err
	} else if len(raw) > catalog.MaxRecordSize {
		return false, fmt.Errorf("external node %q: its record would be %d bytes, over the limit of %d: %w", rec.Node.Name, len(raw), catalog.MaxRecordSize, ErrTooLarge)
	}
	if _, err := catalog.EncodeRecord(rec); err != nil {
		if errors.Is(err, catalog.ErrRecordTooLarge) {
			return false, fmt.Errorf("external node %q: %v: %w", rec.Node.Name, err, ErrTooLarge)
		}
		return false, err
	}
	if err := x.persistLocked(externalEntry{Node: rec.Node.Name, Record: rec}); err != nil {
		return false, err
	}
	x.owned[rec.Node.Name] = rec
	return x.cfg.Publish(rec), nil
}

func (x *Externals) persistLocked(e externalEntry) error {
	if x.cfg.DataDir == "" {
		return nil
	}
	if x.jnl == nil {
		return fmt.Errorf("external nodes journal is closed: %w", ErrPersistence)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := x.jnl.Append(b); err != nil {
		return fmt.Errorf("external node %q: %v: %w", e.Node, err, ErrPersistence)
	}
	return nil
}

// writeRetries bounds how often a write is applied again to a newer
// version that arrived while it was being written.
const writeRetries = 3

// change applies fn to a copy of the newest version of node (nil when
// the node does not exist) and writes the result as this agent's
// version. fn returns the new record, or nil when nothing changes. Node
// names are case-insensitive, as in Consul (and DNS): a name that differs
// only in case from an external node's names that node.
func (x *Externals) change(node string, fn func(base *catalog.NodeRecord) (*catalog.NodeRecord, error)) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if n, ok := x.cfg.Store.Snapshot().Node(node); ok && n.Owner() != "" {
		node = n.Node.Name
	}
	for range writeRetries {
		base, err := x.baseLocked(node)
		if err != nil {
			return err
		}
		rec, err := fn(cloneRecord(base))
		if err != nil || rec == nil {
			return err
		}
		rec.Node.Name = node
		rec.Node.External = !rec.Deleted
		rec.Sort()
		if base != nil && sameRecord(base, rec) {
			return nil // idempotent: no new version
		}
		rec.Owner = x.cfg.Self
		rec.Gossip = ""
		rec.Signature = nil
		rec.Version = x.versionLocked(node)
		if err := rec.Validate(); err != nil {
			return err
		}
		ok, err := x.writeLocked(rec)
		if err != nil || ok {
			return err
		}
	}
	return fmt.Errorf("external node %q changed through other agents while this write was applied, %d times: try again: %w", node, writeRetries, ErrPersistence)
}

// cloneRecord returns a deep copy of r's node, services and checks (nil
// for nil).
func cloneRecord(r *catalog.NodeRecord) *catalog.NodeRecord {
	if r == nil {
		return nil
	}
	c := &catalog.NodeRecord{Node: r.Node, Owner: r.Owner, Version: r.Version}
	c.Node.Meta = maps.Clone(r.Node.Meta)
	c.Node.TaggedAddresses = maps.Clone(r.Node.TaggedAddresses)
	svcs := r.Services.Slice()
	for i := range svcs {
		svcs[i] = svcs[i].Clone()
	}
	c.Services, c.Checks = catalog.ListOf(svcs), catalog.ListOf(r.Checks.Slice())
	return c
}

// Register applies a catalog registration, as Consul's
// /v1/catalog/register does: it creates the node or updates its address,
// tagged addresses and meta (unless SkipNodeUpdate), adds or replaces the
// service and the checks. Bad input is an error wrapping ErrInvalid and
// changes nothing; so is a node name an agent has.
func (x *Externals) Register(reg NodeRegistration) error {
	if err := catalog.ValidateNodeName(reg.Node); err != nil {
		return err
	}
	if reg.Address == "" && !reg.SkipNodeUpdate {
		return fmt.Errorf("Address is required unless SkipNodeUpdate is set: %w", ErrInvalid)
	}
	if reg.Address != "" && net.ParseIP(reg.Address) == nil && catalog.ValidateNodeName(reg.Address) != nil {
		return fmt.Errorf("Address %q is neither an IP address nor a host name: %w", reg.Address, ErrInvalid)
	}
	var svc *catalog.Service
	if reg.Service != nil {
		s := reg.Service.Clone()
		if err := s.Validate(); err != nil {
			return fmt.Errorf("Service: %w", err)
		}
		if err := checkServiceLimits(s.Meta, s.Tags); err != nil {
			return fmt.Errorf("Service: %w", err)
		}
		svc = &s
	}
	checks := make([]catalog.Check, 0, len(reg.Checks))
	seen := map[string]bool{}
	for _, c := range reg.Checks {
		if c.CheckID == "" {
			c.CheckID = c.Name
		}
		if c.CheckID == "" {
			return fmt.Errorf("a check needs a CheckID or a Name: %w", ErrInvalid)
		}
		if c.CheckID == catalog.SerfCheckID {
			return fmt.Errorf("check ID %q is reserved for agents' liveness: %w", c.CheckID, ErrInvalid)
		}
		if c.Status == "" {
			c.Status = catalog.HealthCritical
		}
		if !catalog.ValidStatus(c.Status) {
			return fmt.Errorf("check %q: status %q: want passing, warning or critical: %w", c.CheckID, c.Status, ErrInvalid)
		}
		if seen[c.CheckID] {
			return fmt.Errorf("check ID %q appears twice: %w", c.CheckID, ErrInvalid)
		}
		seen[c.CheckID] = true
		checks = append(checks, c)
	}
	for k := range reg.NodeMeta {
		if k == "" || len(k) > 128 {
			return fmt.Errorf("NodeMeta key %q must be 1–128 characters: %w", k, ErrInvalid)
		}
	}
	if len(reg.NodeMeta) > MaxServiceMetaKeys {
		return fmt.Errorf("NodeMeta has %d keys, over the limit of %d: %w", len(reg.NodeMeta), MaxServiceMetaKeys, ErrInvalid)
	}
	return x.change(reg.Node, func(base *catalog.NodeRecord) (*catalog.NodeRecord, error) {
		rec := base
		if rec == nil {
			rec = &catalog.NodeRecord{Node: catalog.Node{Name: reg.Node}}
			if reg.Address == "" {
				return nil, fmt.Errorf("node %q does not exist: Address is required to create it: %w", reg.Node, ErrInvalid)
			}
		}
		if base == nil || !reg.SkipNodeUpdate {
			rec.Node = catalog.Node{
				Name: reg.Node, Address: reg.Address, Datacenter: x.cfg.Datacenter,
				Meta: maps.Clone(reg.NodeMeta), TaggedAddresses: maps.Clone(reg.TaggedAddresses),
			}
		}
		svcs, chks := rec.Services.Slice(), rec.Checks.Slice()
		if svc != nil {
			if i := slices.IndexFunc(svcs, func(s catalog.Service) bool { return s.ID == svc.ID }); i >= 0 {
				svcs[i] = *svc
			} else {
				svcs = append(svcs, *svc)
			}
		}
		findService := func(id string) *catalog.Service {
			if id == "" {
				return nil
			}
			if i := slices.IndexFunc(svcs, func(s catalog.Service) bool { return s.ID == id }); i >= 0 {
				return &svcs[i]
			}
			return nil
		}
		for _, c := range checks {
			if c.ServiceID != "" {
				s := findService(c.ServiceID)
				if s == nil {
					return nil, fmt.Errorf("check %q names service %q, which node %q does not have: %w", c.CheckID, c.ServiceID, reg.Node, ErrInvalid)
				}
				c.ServiceName = s.Name
			} else {
				c.ServiceName = ""
			}
			if i := slices.IndexFunc(chks, func(x catalog.Check) bool { return x.CheckID == c.CheckID }); i >= 0 {
				chks[i] = c
			} else {
				chks = append(chks, c)
			}
		}
		// A replaced service may have a new name: its checks follow.
		for i := range chks {
			if s := findService(chks[i].ServiceID); s != nil {
				chks[i].ServiceName = s.Name
			}
		}
		rec.Services, rec.Checks = catalog.ListOf(svcs), catalog.ListOf(chks)
		rec.Sort()
		return rec, nil
	})
}

// Deregister applies a catalog deregistration, as Consul's
// /v1/catalog/deregister does: with serviceID that service and its
// checks, with checkID that check, with neither the whole node (a
// tombstone). Removing what does not exist changes nothing and is not an
// error; naming an agent's node is an error wrapping ErrInvalid.
func (x *Externals) Deregister(node, serviceID, checkID string) error {
	if node == "" {
		return fmt.Errorf("Node is required: %w", ErrInvalid)
	}
	return x.change(node, func(rec *catalog.NodeRecord) (*catalog.NodeRecord, error) {
		if rec == nil {
			return nil, nil
		}
		switch {
		case serviceID != "":
			if rec.FindService(serviceID) == nil {
				return nil, nil
			}
			rec.Services = catalog.ListOf(slices.DeleteFunc(rec.Services.Slice(), func(s catalog.Service) bool { return s.ID == serviceID }))
			rec.Checks = catalog.ListOf(slices.DeleteFunc(rec.Checks.Slice(), func(c catalog.Check) bool { return c.ServiceID == serviceID }))
		case checkID != "":
			if rec.FindCheck(checkID) == nil {
				return nil, nil
			}
			rec.Checks = catalog.ListOf(slices.DeleteFunc(rec.Checks.Slice(), func(c catalog.Check) bool { return c.CheckID == checkID }))
		default:
			return &catalog.NodeRecord{Node: catalog.Node{Name: node}, Deleted: true}, nil
		}
		return rec, nil
	})
}

// Adopt makes this agent the owner of the external node whose newest
// version is rec (its owner died or left): the same record, one version
// higher, signed, persisted and published by this agent. It does nothing
// (and reports false) if the catalog holds a version newer than rec, or
// rec is a tombstone.
func (x *Externals) Adopt(rec *catalog.NodeRecord) (bool, error) {
	if !rec.IsExternal() || rec.Deleted || rec.Owner == x.cfg.Self {
		return false, nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.cfg.Store.Version(rec.Node.Name) > rec.Version {
		return false, nil
	}
	c := cloneRecord(rec)
	c.Owner = x.cfg.Self
	c.Version = x.versionLocked(rec.Node.Name)
	ok, err := x.writeLocked(c)
	if err != nil {
		return false, fmt.Errorf("adopt external node %q: %w", rec.Node.Name, err)
	}
	if ok {
		x.stats.Adoptions++
		x.logger.Info("adopted an external node", "node", rec.Node.Name, "from", rec.Owner, "version", c.Version)
	}
	return ok, nil
}

// Reconcile yields every node this agent owns whose newest version in the
// catalog was written by another agent (a write accepted there, or an
// adoption while this agent was away), and forgets its own tombstones
// older than TombstoneTTL. It returns the nodes it gave up.
func (x *Externals) Reconcile() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := uint64(x.cfg.Now().UnixMilli())
	var gone []string
	for _, name := range slices.Sorted(maps.Keys(x.owned)) {
		own := x.owned[name]
		cur := x.cfg.Store.Record(name)
		superseded := cur != nil && cur.Version > own.Version && cur.Owner != x.cfg.Self
		expired := own.Deleted && own.Version+uint64(TombstoneTTL.Milliseconds()) < now
		if !superseded && !expired {
			continue
		}
		if err := x.persistLocked(externalEntry{Node: name}); err != nil {
			x.logger.Warn("yield an external node", "node", name, "err", err)
			continue
		}
		delete(x.owned, name)
		gone = append(gone, name)
		x.stats.Yields++
		if superseded {
			x.logger.Info("yielded an external node to a newer version", "node", name, "owner", cur.Owner, "version", cur.Version)
		}
	}
	return gone
}

// sameRecord reports whether a and b, both in canonical order, hold the
// same node, services and checks (versions, owners and signatures aside).
// It modifies neither.
func sameRecord(a, b *catalog.NodeRecord) bool {
	ca, cb := *a, *b
	ca.Version, cb.Version, ca.Owner, cb.Owner, ca.Signature, cb.Signature = 0, 0, "", "", nil, nil
	ja, err1 := catalog.RecordJSON(&ca)
	jb, err2 := catalog.RecordJSON(&cb)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// SetExternals attaches the agent's external nodes to its local state, so
// that the HTTP API reaches both through the State. Call it once, before
// serving.
func (l *State) SetExternals(x *Externals) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ext = x
}

// Externals returns the external nodes attached by SetExternals, or nil.
func (l *State) Externals() *Externals {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ext
}
