package catalog

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"iter"
	"net"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
)

// NodeEntry is one node as the catalog serves it: its record (nil until
// one has been received), its member status and its node-level checks,
// including the synthesised serfHealth check. NodeEntry values belong to a
// Snapshot and must not be modified.
type NodeEntry struct {
	Node    Node
	Version uint64
	Status  MemberStatus
	// Checks are the node-level checks: serfHealth plus the record's
	// checks that name no service, sorted by CheckID.
	Checks []Check
	// Health is the aggregate of Checks.
	Health string
	// Instances are the node's service instances, sorted by service ID.
	// A new entry shares the chunks of the previous entry's list that
	// no change fell in (buildSparse).
	Instances List[*Instance]
	// Index is the catalog index at which this entry last changed.
	Index  uint64
	record *NodeRecord
	// serf is the index in Checks of the synthesised serfHealth check,
	// -1 when there is none (an external node).
	serf int32
	// allSlow is set when the record's checks are not in canonical order
	// or may name a service the record lacks: AllChecks then filters and
	// sorts instead of merging serfHealth into the record's checks.
	allSlow bool
	// head is the entry the node's instances name as their Node: the
	// entry itself after a whole build, the previous entry's head after a
	// sparse one (buildFrom), whose Node, Status, Checks and Health are
	// this entry's.
	head *NodeEntry
}

// Record returns the node record the entry was built from, or nil.
func (n *NodeEntry) Record() *NodeRecord { return n.record }

// AllChecks yields every check of the node, node-level and service-level
// (those of services the record holds), sorted by CheckID. It reads the
// record's checks in place, with serfHealth merged in; the checks it
// yields must not be modified.
func (n *NodeEntry) AllChecks() iter.Seq[*Check] {
	return func(yield func(*Check) bool) {
		rec := n.record
		if rec == nil {
			for i := range n.Checks {
				if !yield(&n.Checks[i]) {
					return
				}
			}
			return
		}
		if n.allSlow {
			for _, c := range n.slowAllChecks() {
				if !yield(c) {
					return
				}
			}
			return
		}
		var serf *Check
		if n.serf >= 0 {
			serf = &n.Checks[n.serf]
		}
		for _, c := range rec.Checks.All() {
			if serf != nil && c.CheckID >= serf.CheckID {
				if !yield(serf) {
					return
				}
				serf = nil
			}
			if !yield(c) {
				return
			}
		}
		if serf != nil {
			yield(serf)
		}
	}
}

// slowAllChecks lists AllChecks for a record whose checks are unsorted or
// may name services it lacks.
func (n *NodeEntry) slowAllChecks() []*Check {
	rec := n.record
	all := make([]*Check, 0, len(n.Checks)+rec.Checks.Len())
	for i := range n.Checks {
		all = append(all, &n.Checks[i])
	}
	ids := make(map[string]bool, rec.Services.Len())
	for _, s := range rec.Services.All() {
		ids[s.ID] = true
	}
	for _, c := range rec.Checks.All() {
		if c.ServiceID != "" && ids[c.ServiceID] {
			all = append(all, c)
		}
	}
	slices.SortStableFunc(all, func(a, b *Check) int { return strings.Compare(a.CheckID, b.CheckID) })
	return all
}

// Instance is one service instance with the checks that decide its health:
// its own service checks and its node's checks. Instance values belong to
// a Snapshot and must not be modified; an instance that did not change is
// shared by the snapshots that hold it.
type Instance struct {
	// Node is an entry of the instance's node with the node's current
	// Node, Status, Checks and Health. It may be an entry of an earlier
	// snapshot (a node with many instances keeps its unchanged instances
	// from one change to the next): for the node's Version, Index,
	// Instances, record or AllChecks, read Snapshot.Node.
	Node    *NodeEntry
	Service *Service
	// Health is the aggregate of Checks: the worse of Node.Health and
	// the aggregate of OwnChecks.
	Health string
	// own are the service's own checks in the record's order (by
	// CheckID): a view of the record's checks where they are adjacent
	// there, else a copy.
	own  []Check
	hash uint64
}

// OwnChecks returns the service's own checks (those that name its ID), in
// the record's order. The slice must not be modified.
func (i *Instance) OwnChecks() []Check { return i.own }

// Checks yields the checks that decide the instance's health: its node's
// checks (Node.Checks) followed by its own (OwnChecks). They must not be
// modified.
func (i *Instance) Checks() iter.Seq[*Check] {
	return func(yield func(*Check) bool) {
		for k := range i.Node.Checks {
			if !yield(&i.Node.Checks[k]) {
				return
			}
		}
		for k := range i.own {
			if !yield(&i.own[k]) {
				return
			}
		}
	}
}

// NumChecks returns the number of checks Checks yields.
func (i *Instance) NumChecks() int { return len(i.Node.Checks) + len(i.own) }

// instanceHealth is the health of an instance of node n with own checks.
func instanceHealth(n *NodeEntry, own []Check) string {
	h := AggregateHealth(own)
	if Worse(n.Health, h) {
		return n.Health
	}
	return h
}

// Address returns the instance's address: the service address, or the
// node's address when the service has none.
func (i *Instance) Address() string {
	if i.Service.Address != "" {
		return i.Service.Address
	}
	return i.Node.Node.Address
}

// Weight returns the instance's SRV weight for its current health:
// Weights.Passing when passing, Weights.Warning when warning, 0 otherwise.
func (i *Instance) Weight() int {
	switch i.Health {
	case HealthPassing:
		return i.Service.Weights.Passing
	case HealthWarning:
		return i.Service.Weights.Warning
	}
	return 0
}

// HasTag reports whether the instance carries tag (case-insensitive).
func (i *Instance) HasTag(tag string) bool {
	for _, t := range i.Service.Tags {
		if strings.EqualFold(t, tag) {
			return true
		}
	}
	return false
}

// ServiceEntry is every instance of one service name across the cluster.
// ServiceEntry values belong to a Snapshot and must not be modified.
type ServiceEntry struct {
	Name string
	// Instances are sorted by node name, then service ID. A new entry
	// shares the chunks of the previous one's list that no change fell
	// in.
	Instances List[*Instance]
	// Tags is the sorted union of the instances' tags.
	Tags []string
	// Index is the catalog index at which this service's instances last
	// changed in any way (added, removed, health, tags, address…).
	Index uint64
	// tagCount[i] is the number of instance tags equal to Tags[i].
	tagCount []int32
}

// Snapshot is an immutable view of the whole catalog at one Index. All of
// its methods are safe for concurrent use and take no locks. Slices and
// maps it returns must not be modified.
//
// Its indexes are persistent trees shared with the snapshot it replaced:
// building a snapshot for a change costs the changed nodes and the
// services they touch, not the size of the catalog.
type Snapshot struct {
	// Index increases with every change to the catalog.
	Index uint64

	nodes      ptree[*NodeEntry]      // exact name: the order of Nodes
	nodesLower ptree[*NodeEntry]      // lower-case name
	services   ptree[*ServiceEntry]   // lower-case name
	svcNames   ptree[*ServiceEntry]   // ServiceEntry.Name: the order of Services
	nodeAddrs  ptree[[]*NodeEntry]    // canonical IP; sorted by node name
	svcAddrs   ptree[List[*Instance]] // canonical IP; sorted by node, then ID
	nodesIndex uint64
	svcsIndex  uint64
	// tombs are the external nodes' tombstones (external.go).
	tombs []Tombstone
	// remotes are the other datacenters' summaries (remote.go).
	remotes *remoteSet
	changed chan struct{}

	nodeList atomic.Pointer[[]*NodeEntry]    // Nodes, made on first use
	svcList  atomic.Pointer[[]*ServiceEntry] // Services, made on first use
}

// Changed returns a channel that is closed when a newer snapshot replaces
// this one. Blocking queries wait on it.
func (s *Snapshot) Changed() <-chan struct{} { return s.changed }

// Node returns the node named name (case-insensitive).
func (s *Snapshot) Node(name string) (*NodeEntry, bool) {
	return s.nodesLower.get(lowerASCII(name))
}

// Nodes returns every node, sorted by name. The slice is made on the
// first call for a snapshot (O(nodes)) and shared by later calls;
// AllNodes and NodeCount cost nothing up front.
func (s *Snapshot) Nodes() []*NodeEntry {
	if l := s.nodeList.Load(); l != nil {
		return *l
	}
	l := make([]*NodeEntry, 0, s.nodes.Len())
	s.nodes.ascend(func(_ string, n *NodeEntry) bool { l = append(l, n); return true })
	s.nodeList.CompareAndSwap(nil, &l)
	return *s.nodeList.Load()
}

// AllNodes yields every node, sorted by name, without making a slice.
func (s *Snapshot) AllNodes() iter.Seq[*NodeEntry] {
	return func(yield func(*NodeEntry) bool) {
		s.nodes.ascend(func(_ string, n *NodeEntry) bool { return yield(n) })
	}
}

// NodeCount returns the number of nodes, len(Nodes()).
func (s *Snapshot) NodeCount() int { return s.nodes.Len() }

// NodesIndex is the index at which the set of nodes or any node entry
// (its record or its member status) last changed.
func (s *Snapshot) NodesIndex() uint64 { return s.nodesIndex }

// ServicesIndex is the index at which the set of service names or their
// tags last changed.
func (s *Snapshot) ServicesIndex() uint64 { return s.svcsIndex }

// Service returns the instances of the service called name
// (case-insensitive), of every health.
func (s *Snapshot) Service(name string) (*ServiceEntry, bool) {
	return s.services.get(lowerASCII(name))
}

// Services returns every service name with its instances, sorted by
// name. Like Nodes, the slice is made on the first call for a snapshot.
func (s *Snapshot) Services() []*ServiceEntry {
	if l := s.svcList.Load(); l != nil {
		return *l
	}
	l := make([]*ServiceEntry, 0, s.svcNames.Len())
	s.svcNames.ascend(func(_ string, e *ServiceEntry) bool { l = append(l, e); return true })
	s.svcList.CompareAndSwap(nil, &l)
	return *s.svcList.Load()
}

// ServiceCount returns the number of service names, len(Services()).
func (s *Snapshot) ServiceCount() int { return s.svcNames.Len() }

// NodesByAddress returns the nodes whose address is ip.
func (s *Snapshot) NodesByAddress(ip net.IP) []*NodeEntry {
	l, _ := s.nodeAddrs.get(ip.String())
	return l
}

// InstancesByAddress returns the instances that have ip as their own
// service address.
func (s *Snapshot) InstancesByAddress(ip net.IP) List[*Instance] {
	l, _ := s.svcAddrs.get(ip.String())
	return l
}

// Digest returns a short hash of every node's name, record version and
// member status. Two agents with the same Digest hold the same catalog.
// It costs O(nodes) per call.
func (s *Snapshot) Digest() string {
	h := sha256.New()
	var b [9]byte
	s.nodes.ascend(func(_ string, n *NodeEntry) bool {
		h.Write([]byte(n.Node.Name))
		binary.BigEndian.PutUint64(b[:8], n.Version)
		b[8] = byte(n.Status)
		h.Write(b[:])
		return true
	})
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// buildNode derives a node's entry and instances from its record and
// member status. old, the node's entry in the previous snapshot (or
// nil), lends what did not change (see buildFrom): a change of one
// service of a node with thousands then costs copies of the entry's
// slices, not a hash of every instance and an index of every check.
func buildNode(name, addr string, rec *NodeRecord, status MemberStatus, index uint64, old *NodeEntry) *NodeEntry {
	n := &NodeEntry{Status: status, Index: index, record: rec}
	n.head = n
	if rec != nil {
		n.Node = rec.Node
		n.Version = rec.Version
	} else {
		n.Node = Node{Name: name}
	}
	if addr != "" && n.Node.Address == "" {
		n.Node.Address = addr
	}
	serf := Check{CheckID: SerfCheckID, Name: SerfCheckName, Status: HealthPassing, Output: "Agent alive and reachable"}
	if status != MemberAlive && status != MemberLeaving {
		serf.Status = HealthCritical
		serf.Output = "Agent not live or unreachable"
	}
	// An external node (no agent, no gossip) has no serfHealth check,
	// as in Consul.
	external := rec.IsExternal()
	// The pieces changed since old's record, when both records carry
	// their hash trees: old then lends what they leave as it was.
	var set, del []Leaf
	diffed := old != nil && old.record != nil && rec != nil && old.record.tree != nil && rec.tree != nil
	if diffed {
		set, del = DiffTrees(old.record.tree, rec.tree)
	}
	if diffed && old.Status == status && old.record.IsExternal() == external && !nodeChecksChanged(old.record, rec, set, del) {
		// Same node-level checks and serfHealth: old's list, without
		// a pass over the record's checks.
		n.Checks, n.serf = old.Checks, old.serf
	} else {
		nodeChecks := 1
		if external {
			nodeChecks = 0
		}
		if rec != nil {
			for _, c := range rec.Checks.All() {
				if c.ServiceID == "" {
					nodeChecks++
				}
			}
		}
		n.Checks = make([]Check, 0, nodeChecks)
		if rec != nil {
			for _, c := range rec.Checks.All() {
				if c.ServiceID == "" {
					n.Checks = append(n.Checks, *c)
				}
			}
		}
		sortChecks(n.Checks)
		n.serf = -1
		if !external {
			i, _ := slices.BinarySearchFunc(n.Checks, SerfCheckID, func(c Check, id string) int { return strings.Compare(c.CheckID, id) })
			n.Checks = slices.Insert(n.Checks, i, serf)
			n.serf = int32(i)
		}
	}
	n.Health = AggregateHealth(n.Checks)
	if rec == nil {
		return n
	}
	if diffed {
		if d := changesFrom(old, n, rec, set, del); d != nil && n.buildFrom(old, rec, d) {
			return n
		}
	}
	n.buildAll(rec)
	return n
}

// nodeChecksChanged reports whether the pieces changed from record a to
// record b (set, del: DiffTrees of their trees; both records sorted)
// include a node-level check (one that names no service) in either.
func nodeChecksChanged(a, b *NodeRecord, set, del []Leaf) bool {
	nodeLevel := func(r *NodeRecord, id string) bool {
		c := r.FindCheck(id)
		return c != nil && c.ServiceID == ""
	}
	for _, l := range set {
		if l.Kind == PieceCheck && (nodeLevel(a, l.ID) || nodeLevel(b, l.ID)) {
			return true
		}
	}
	for _, l := range del {
		if l.Kind == PieceCheck && nodeLevel(a, l.ID) {
			return true
		}
	}
	return false
}

// buildAll builds the node's instances and check list from scratch.
func (n *NodeEntry) buildAll(rec *NodeRecord) {
	// A service's own checks, in record order: first[id] is the index in
	// rec.Checks of its first, next[i] that of the one after i (-1: none).
	first := make(map[string]int32, rec.Services.Len())
	next := make([]int32, rec.Checks.Len())
	for i := rec.Checks.Len() - 1; i >= 0; i-- {
		c := rec.Checks.At(i)
		if c.ServiceID == "" {
			continue
		}
		if f, ok := first[c.ServiceID]; ok {
			next[i] = f
		} else {
			next[i] = -1
		}
		first[c.ServiceID] = int32(i)
	}
	// run returns where id's own checks start in rec.Checks, how many
	// there are and whether they are adjacent there.
	run := func(id string) (start, count int32, adjacent bool) {
		f, ok := first[id]
		if !ok {
			return 0, 0, true
		}
		start, adjacent = f, true
		for ; f >= 0; f = next[f] {
			if f != start+count {
				adjacent = false
			}
			count++
		}
		return start, count, adjacent
	}
	// An instance's own checks are a view of rec.Checks where they are
	// adjacent (check IDs that extend the service ID, as "service:<id>"
	// does, are), else copied into one buffer for the node; the node's
	// checks are not copied per instance (Instance.Checks).
	serviceLevel, scattered, owned := int32(0), int32(0), int32(0)
	for _, c := range rec.Checks.All() {
		if c.ServiceID != "" {
			serviceLevel++
		}
	}
	for _, s := range rec.Services.All() {
		_, c, adj := run(s.ID)
		owned += c
		if !adj {
			scattered += c
		}
	}
	var spare []Check
	if scattered > 0 {
		spare = make([]Check, 0, scattered)
	}
	insts := make([]Instance, rec.Services.Len())
	list := make([]*Instance, rec.Services.Len())
	for i, svc := range rec.Services.All() {
		inst := &insts[i]
		*inst = Instance{Node: n, Service: svc}
		switch start, c, adj := run(svc.ID); {
		case c == 0:
		case adj:
			inst.own = rec.Checks.View(int(start), int(start+c))
		default:
			at := len(spare)
			for f := start; f >= 0; f = next[f] {
				spare = append(spare, *rec.Checks.At(int(f)))
			}
			inst.own = spare[at:len(spare):len(spare)]
		}
		inst.Health = instanceHealth(n, inst.own)
		inst.hash = instanceHash(inst)
		list[i] = inst
	}
	if !slices.IsSortedFunc(list, func(a, b *Instance) int { return strings.Compare(a.Service.ID, b.Service.ID) }) {
		sort.Slice(list, func(i, j int) bool { return list[i].Service.ID < list[j].Service.ID })
	}
	n.Instances = ListOf(list)
	n.allSlow = owned != serviceLevel || !checksSorted(rec.Checks)
}

// nodeDelta is what changed between a node's previous record and its new
// one, from their hash trees: the services changed or added, and the
// services whose own checks changed, with the checks changed and removed.
type nodeDelta struct {
	svcs      map[string]bool // services changed, added or removed
	ownDirty  map[string]bool // services whose own checks changed
	setChecks []Check         // service checks changed or added (from the new record)
	delChecks []string        // service check IDs removed
}

// changesFrom returns what changed from old's record to rec (set, del:
// DiffTrees of their trees), or nil when old cannot lend anything: no
// instances, another node, member status or node-level checks, or more
// changes than a rebuild costs.
func changesFrom(old, n *NodeEntry, rec *NodeRecord, set, del []Leaf) *nodeDelta {
	if old.Instances.Len() == 0 {
		return nil
	}
	if old.Status != n.Status || !slices.Equal(old.Checks, n.Checks) || !reflect.DeepEqual(old.Node, n.Node) {
		return nil
	}
	if len(set)+len(del) > rec.Services.Len()/4+8 {
		return nil
	}
	d := &nodeDelta{svcs: map[string]bool{}, ownDirty: map[string]bool{}}
	for _, l := range set {
		if l.Kind == PieceService {
			d.svcs[l.ID] = true
			if _, had := old.record.tree.leaf(PieceService, l.ID); !had {
				d.ownDirty[l.ID] = true // a new service: find its checks
			}
			continue
		}
		c := rec.FindCheck(l.ID)
		if c == nil || c.ServiceID == "" {
			return nil
		}
		d.ownDirty[c.ServiceID] = true
		d.setChecks = append(d.setChecks, *c)
		// A check that moved from another service leaves that one's.
		if oc := old.record.FindCheck(l.ID); oc != nil {
			if was := oc.ServiceID; was == "" {
				return nil
			} else if was != c.ServiceID {
				d.ownDirty[was] = true
			}
		}
	}
	for _, l := range del {
		if l.Kind == PieceService {
			d.svcs[l.ID] = true
			continue
		}
		oc := old.record.FindCheck(l.ID)
		if oc == nil || oc.ServiceID == "" {
			return nil
		}
		d.ownDirty[oc.ServiceID] = true
		d.delChecks = append(d.delChecks, l.ID)
	}
	sortChecks(d.setChecks)
	slices.Sort(d.delChecks)
	return d
}

// sparseNode is the number of instances from which a node's entry keeps
// the instances that did not change (buildSparse) instead of building
// every instance again: below it, a whole pass costs little and keeps no
// earlier entry alive.
const sparseNode = 64

// buildFrom builds the node's instances from old's: an instance whose
// service and own checks did not change keeps old's own checks, health
// and hash (at a node of sparseNode instances or more, old's instance
// itself: buildSparse); one whose own checks did not change shares them
// with old's instance; the rest (new services, changed own checks) are
// looked up in rec. It reports false, having built nothing usable, when
// rec breaks an assumption (checks naming services it lacks).
func (n *NodeEntry) buildFrom(old *NodeEntry, rec *NodeRecord, d *nodeDelta) bool {
	hasService := func(id string) bool { return rec.FindService(id) != nil }
	if old.Instances.Len() >= sparseNode && !old.allSlow {
		n.buildSparse(old, rec, d)
	} else {
		n.buildDense(old, rec, d)
	}
	for _, c := range d.setChecks {
		if !hasService(c.ServiceID) {
			return false
		}
	}
	// A removed service whose checks stay in rec leaves them naming
	// nothing: AllChecks must then filter.
	n.allSlow = old.allSlow
	for id := range d.svcs {
		if n.allSlow || hasService(id) {
			continue
		}
		k, ok := old.Instances.Search(func(i **Instance) int { return strings.Compare((*i).Service.ID, id) })
		if !ok {
			continue
		}
		for _, c := range old.Instances.Get(k).own {
			if _, gone := slices.BinarySearch(d.delChecks, c.CheckID); !gone {
				n.allSlow = true
			}
		}
	}
	return true
}

// buildDense builds every instance of the node's entry, lending old's
// own checks, health and hash where they did not change (see buildFrom).
func (n *NodeEntry) buildDense(old *NodeEntry, rec *NodeRecord, d *nodeDelta) {
	// Own checks of the services whose own checks changed, from rec.
	var ownOf map[string][]Check
	if len(d.ownDirty) > 0 {
		ownOf = make(map[string][]Check, len(d.ownDirty))
		for _, c := range rec.Checks.All() {
			if id := c.ServiceID; id != "" && d.ownDirty[id] {
				ownOf[id] = append(ownOf[id], *c)
			}
		}
	}
	insts := make([]Instance, rec.Services.Len())
	list := make([]*Instance, rec.Services.Len())
	olds := old.Instances
	j := 0
	for i, svc := range rec.Services.All() {
		for j < olds.Len() && olds.Get(j).Service.ID < svc.ID {
			j++
		}
		var oi *Instance
		if j < olds.Len() && olds.Get(j).Service.ID == svc.ID {
			oi = olds.Get(j)
		}
		inst := &insts[i]
		*inst = Instance{Node: n, Service: svc}
		list[i] = inst
		switch {
		case oi != nil && !d.svcs[svc.ID] && !d.ownDirty[svc.ID]:
			inst.own, inst.Health, inst.hash = oi.own, oi.Health, oi.hash
			continue
		case oi != nil && !d.ownDirty[svc.ID]:
			inst.own = oi.own // same node and own checks
		default:
			inst.own = slices.Clip(ownOf[svc.ID])
		}
		inst.Health = instanceHealth(n, inst.own)
		inst.hash = instanceHash(inst)
	}
	n.Instances = ListOf(list)
}

// buildSparse builds the node's instances at the cost of the change: old's
// list with the instances of the changed services (d.svcs, d.ownDirty)
// replaced, added or taken out, every other instance old's own. The
// instances it builds name old's head as their Node (changesFrom found
// its Node, Status and Checks unchanged) and hold a copy of their service
// and own checks, so that they keep alive no record but the one the head
// was built from. Each service's own checks are old's with the delta's
// changed and removed checks applied: old must not be allSlow (every
// service check of its record then names a service of it, so a new
// service's checks are all in the delta).
func (n *NodeEntry) buildSparse(old *NodeEntry, rec *NodeRecord, d *nodeDelta) {
	n.head = old.head
	ids := make([]string, 0, len(d.svcs)+len(d.ownDirty))
	for id := range d.svcs {
		ids = append(ids, id)
	}
	for id := range d.ownDirty {
		if !d.svcs[id] {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var setOf map[string][]Check // changed or added service checks, by service
	if len(d.setChecks) > 0 {
		setOf = make(map[string][]Check, len(d.setChecks))
		for _, c := range d.setChecks {
			setOf[c.ServiceID] = append(setOf[c.ServiceID], c)
		}
	}
	byID := func(i **Instance) string { return (*i).Service.ID }
	edits := make([]Edit[*Instance], 0, len(ids))
	for _, id := range ids {
		var oi *Instance
		if k, found := old.Instances.Search(func(i **Instance) int { return strings.Compare((*i).Service.ID, id) }); found {
			oi = old.Instances.Get(k)
		}
		rs := rec.FindService(id)
		if rs == nil {
			edits = append(edits, Edit[*Instance]{ID: id, Delete: true}) // removed
			continue
		}
		svc := new(Service)
		*svc = *rs
		inst := &Instance{Node: n.head, Service: svc}
		if oi != nil && !d.ownDirty[id] {
			inst.own = oi.own
		} else {
			inst.own = patchOwn(oi, setOf[id], d.setChecks, d.delChecks)
		}
		inst.Health = instanceHealth(n.head, inst.own)
		inst.hash = instanceHash(inst)
		edits = append(edits, Edit[*Instance]{ID: id, Value: inst})
	}
	n.Instances = old.Instances.Apply(byID, edits)
}

// patchOwn returns the own checks of oi (nil: none) without the checks
// named in del or in set (every changed or added service check, sorted by
// CheckID: one may have moved to another service) and with mine (those of
// set that name oi's service) put in, in a new slice sorted by CheckID.
func patchOwn(oi *Instance, mine, set []Check, del []string) []Check {
	var base []Check
	if oi != nil {
		base = oi.own
	}
	out := make([]Check, 0, len(base)+len(mine))
	k := 0
	for _, c := range base {
		if _, gone := slices.BinarySearch(del, c.CheckID); gone {
			continue
		}
		if _, changed := slices.BinarySearchFunc(set, c.CheckID, func(s Check, id string) int { return strings.Compare(s.CheckID, id) }); changed {
			continue
		}
		for k < len(mine) && mine[k].CheckID < c.CheckID {
			out = append(out, mine[k])
			k++
		}
		out = append(out, c)
	}
	out = append(out, mine[k:]...)
	if len(out) == 0 {
		return nil
	}
	return slices.Clip(out)
}

// checksSorted reports whether cs is sorted by CheckID.
func checksSorted(cs List[Check]) bool {
	var prev string
	for i, c := range cs.All() {
		if i > 0 && c.CheckID < prev {
			return false
		}
		prev = c.CheckID
	}
	return true
}

// sortChecks sorts checks by CheckID, at the cost of one pass when they
// are sorted already (a record's are).
func sortChecks(cs []Check) {
	if !slices.IsSortedFunc(cs, func(a, b Check) int { return strings.Compare(a.CheckID, b.CheckID) }) {
		slices.SortFunc(cs, func(a, b Check) int { return strings.Compare(a.CheckID, b.CheckID) })
	}
}

// instanceHash fingerprints everything about an instance that a reader can
// see, so that per-service indexes move only when a service really changes.
func instanceHash(i *Instance) uint64 {
	h := NewHasher()
	h.Str(i.Node.Node.Name)
	h.Str(i.Node.Node.Address)
	h.Str(i.Node.Node.Datacenter)
	h.Str(i.Node.Node.Zone)
	h.StrMap(i.Node.Node.Meta)
	h.StrMap(i.Node.Node.TaggedAddresses)
	s := i.Service
	h.Str(s.ID)
	h.Str(s.Name)
	for _, t := range s.Tags {
		h.Str(t)
	}
	h.Str(s.Address)
	h.U64(uint64(s.Port))
	h.StrMap(s.Meta)
	h.U64(uint64(s.Weights.Passing)<<32 | uint64(s.Weights.Warning))
	h.U64(uint64(int64(s.Load * 1000)))
	for c := range i.Checks() {
		h.Str(c.CheckID)
		h.Str(c.Name)
		h.Str(c.Status)
		h.Str(c.Notes)
		h.Str(c.Output)
	}
	h.Str(i.Health)
	return h.Sum()
}
