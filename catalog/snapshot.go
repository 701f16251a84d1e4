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
	Instances []*Instance
	// AllChecks are every check of the node (node and service level).
	AllChecks []Check
	// Index is the catalog index at which this entry last changed.
	Index  uint64
	record *NodeRecord
}

// Record returns the node record the entry was built from, or nil.
func (n *NodeEntry) Record() *NodeRecord { return n.record }

// Instance is one service instance with the checks that decide its health:
// its own service checks and its node's checks. Instance values belong to
// a Snapshot and must not be modified.
type Instance struct {
	Node    *NodeEntry
	Service *Service
	// Checks are the node-level checks followed by the service's checks.
	Checks []Check
	// Health is the aggregate of Checks.
	Health string
	hash   uint64
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
	// Instances are sorted by node name, then service ID.
	Instances []*Instance
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

	nodes      ptree[*NodeEntry]    // exact name: the order of Nodes
	nodesLower ptree[*NodeEntry]    // lower-case name
	services   ptree[*ServiceEntry] // lower-case name
	svcNames   ptree[*ServiceEntry] // ServiceEntry.Name: the order of Services
	nodeAddrs  ptree[[]*NodeEntry]  // canonical IP; sorted by node name
	svcAddrs   ptree[[]*Instance]   // canonical IP; sorted by node, then ID
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

// AllServices yields every service, sorted by name, without making a
// slice.
func (s *Snapshot) AllServices() iter.Seq[*ServiceEntry] {
	return func(yield func(*ServiceEntry) bool) {
		s.svcNames.ascend(func(_ string, e *ServiceEntry) bool { return yield(e) })
	}
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
func (s *Snapshot) InstancesByAddress(ip net.IP) []*Instance {
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
// nil), lends the instances that did not change their hash and check
// list (see reusable), so a change of one service of a node with
// thousands costs copies of the entry's slices, not a hash of every
// instance.
func buildNode(name, addr string, rec *NodeRecord, status MemberStatus, index uint64, old *NodeEntry) *NodeEntry {
	n := &NodeEntry{Status: status, Index: index, record: rec}
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
	nodeChecks, svcCheckCount := 1, 0
	if external {
		nodeChecks = 0
	}
	// A service's own checks, in record order: first[id] is the index in
	// rec.Checks of its first, next[i] that of the one after i (-1: none).
	var first map[string]int32
	var next []int32
	if rec != nil {
		next = make([]int32, len(rec.Checks))
		for i := len(rec.Checks) - 1; i >= 0; i-- {
			c := &rec.Checks[i]
			if c.ServiceID == "" {
				nodeChecks++
				continue
			}
			if first == nil {
				first = make(map[string]int32, len(rec.Services))
			}
			if f, ok := first[c.ServiceID]; ok {
				next[i] = f
			} else {
				next[i] = -1
			}
			first[c.ServiceID] = int32(i)
		}
	}
	own := func(id string, yield func(c *Check) bool) {
		f, ok := first[id]
		for ok && f >= 0 {
			if !yield(&rec.Checks[f]) {
				return
			}
			f = next[f]
		}
	}
	// Every slice is allocated at its final size: a catalog holds one
	// entry per node, and its checks are copied into each instance.
	n.Checks = make([]Check, 0, nodeChecks)
	if !external {
		n.Checks = append(n.Checks, serf)
	}
	if rec != nil {
		for _, c := range rec.Checks {
			if c.ServiceID == "" {
				n.Checks = append(n.Checks, c)
			} else if _, ok := first[c.ServiceID]; ok {
				svcCheckCount++
			}
		}
	}
	sortChecks(n.Checks)
	n.Health = AggregateHealth(n.Checks)
	if rec == nil {
		n.AllChecks = slices.Clip(n.Checks)
		return n
	}
	// Checks naming no service of the record are in no instance (Validate
	// refuses them in received records).
	n.AllChecks = make([]Check, 0, len(n.Checks)+svcCheckCount)
	n.AllChecks = append(n.AllChecks, n.Checks...)
	insts := make([]Instance, len(rec.Services))
	n.Instances = make([]*Instance, len(rec.Services))
	reuse := reusable(old, n, rec)
	j := 0 // old.Instances[j] is the first with an ID ≥ the service's
	var fresh []int
	for i := range rec.Services {
		svc := &rec.Services[i]
		inst := &insts[i]
		*inst = Instance{Node: n, Service: svc}
		n.Instances[i] = inst
		if reuse {
			for j < len(old.Instances) && old.Instances[j].Service.ID < svc.ID {
				j++
			}
			if j < len(old.Instances) && old.Instances[j].Service.ID == svc.ID && sameInstance(old, j, n, rec, svc, own) {
				oi := old.Instances[j]
				inst.Checks, inst.Health, inst.hash = oi.Checks, oi.Health, oi.hash
				continue
			}
		}
		fresh = append(fresh, i)
	}
	ownCount := 0
	for _, i := range fresh {
		own(rec.Services[i].ID, func(*Check) bool { ownCount++; return true })
	}
	checkBuf := make([]Check, 0, len(n.Checks)*len(fresh)+ownCount)
	for _, i := range fresh {
		inst := &insts[i]
		start := len(checkBuf)
		checkBuf = append(checkBuf, n.Checks...)
		own(inst.Service.ID, func(c *Check) bool { checkBuf = append(checkBuf, *c); return true })
		inst.Checks = checkBuf[start:len(checkBuf):len(checkBuf)]
		inst.Health = AggregateHealth(inst.Checks)
		inst.hash = instanceHash(inst)
	}
	for i := range rec.Services {
		own(rec.Services[i].ID, func(c *Check) bool { n.AllChecks = append(n.AllChecks, *c); return true })
	}
	if !slices.IsSortedFunc(n.Instances, func(a, b *Instance) int { return strings.Compare(a.Service.ID, b.Service.ID) }) {
		sort.Slice(n.Instances, func(i, j int) bool { return n.Instances[i].Service.ID < n.Instances[j].Service.ID })
	}
	sortChecks(n.AllChecks)
	return n
}

// sortChecks sorts checks by CheckID, at the cost of one pass when they
// are sorted already (a record's are).
func sortChecks(cs []Check) {
	if !slices.IsSortedFunc(cs, func(a, b Check) int { return strings.Compare(a.CheckID, b.CheckID) }) {
		slices.SortFunc(cs, func(a, b Check) int { return strings.Compare(a.CheckID, b.CheckID) })
	}
}

// reusable reports whether instances of old, the node's previous entry,
// may be lent to n: both records carry their hash trees (which tell
// which services changed) and the node and its node-level checks are the
// same.
func reusable(old, n *NodeEntry, rec *NodeRecord) bool {
	if old == nil || old.record == nil || rec.tree == nil || old.record.tree == nil || len(old.Instances) == 0 {
		return false
	}
	return old.Status == n.Status && slices.Equal(old.Checks, n.Checks) && reflect.DeepEqual(old.Node, n.Node)
}

// sameInstance reports whether old's j-th instance is what svc's would
// be: same service (its leaf, or its whole bucket, in the two records'
// trees) and the same own checks, so its check list, health and hash
// hold.
func sameInstance(old *NodeEntry, j int, n *NodeEntry, rec *NodeRecord, svc *Service, own func(string, func(*Check) bool)) bool {
	oi := old.Instances[j]
	ot, nt := old.record.tree, rec.tree
	b := bucketOf(PieceService, svc.ID)
	if ot.sums[b] != nt.sums[b] {
		ol, ok1 := ot.leaf(PieceService, svc.ID)
		nl, ok2 := nt.leaf(PieceService, svc.ID)
		if !ok1 || !ok2 || ol.Sum != nl.Sum {
			return false
		}
	}
	rest := oi.Checks[len(n.Checks):]
	same := true
	k := 0
	own(svc.ID, func(c *Check) bool {
		if k >= len(rest) || rest[k] != *c {
			same = false
			return false
		}
		k++
		return true
	})
	return same && k == len(rest)
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
	for _, c := range i.Checks {
		h.Str(c.CheckID)
		h.Str(c.Name)
		h.Str(c.Status)
		h.Str(c.Notes)
		h.Str(c.Output)
	}
	h.Str(i.Health)
	return h.Sum()
}
