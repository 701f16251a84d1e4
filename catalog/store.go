package catalog

import (
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Store is the replicated catalog: the newest record of every node and
// every node's member status. Writers (the agent's gossip and local-state
// code) call its mutating methods, which are serialised by a mutex; each
// change builds a new immutable Snapshot and swaps it in atomically, so
// readers call Snapshot and never block.
type Store struct {
	mu    sync.Mutex
	nodes map[string]*nodeState // exact node name
	index uint64
	snap  atomic.Pointer[Snapshot]
	now   func() time.Time
}

type nodeState struct {
	rec    *NodeRecord
	status MemberStatus
	addr   string
	entry  *NodeEntry // cached derivation of rec+status; nil when stale
}

// NewStore returns an empty store. Its index starts at the current time in
// milliseconds so that it never goes backwards across restarts.
func NewStore() *Store {
	s := &Store{nodes: make(map[string]*nodeState), now: time.Now}
	s.index = uint64(s.now().UnixMilli())
	s.snap.Store(&Snapshot{
		Index:     s.index,
		nodes:     map[string]*NodeEntry{},
		services:  map[string]*ServiceEntry{},
		nodeAddrs: map[string][]*NodeEntry{},
		svcAddrs:  map[string][]*Instance{},
		changed:   make(chan struct{}),
	})
	return s
}

// Snapshot returns the current catalog. It is lock-free.
func (s *Store) Snapshot() *Snapshot { return s.snap.Load() }

// Version returns the record version held for node, 0 if none.
func (s *Store) Version(node string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[node]; n != nil && n.rec != nil {
		return n.rec.Version
	}
	return 0
}

// Record returns the record held for node, or nil. The record must not be
// modified.
func (s *Store) Record(node string) *NodeRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[node]; n != nil {
		return n.rec
	}
	return nil
}

// Unmembered returns the records held for nodes that have no member
// status: records that replication brought in for nodes the gossip layer
// has not reported. The records must not be modified.
func (s *Store) Unmembered() []*NodeRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*NodeRecord
	for _, n := range s.nodes {
		if n.status == MemberNone && n.rec != nil {
			out = append(out, n.rec)
		}
	}
	return out
}

// ApplyRecord stores rec if it is newer than the record held for its node
// and reports whether it did. The store keeps rec: the caller must not
// modify it afterwards.
func (s *Store) ApplyRecord(rec *NodeRecord) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[rec.Node.Name]
	if n == nil {
		n = &nodeState{}
		s.nodes[rec.Node.Name] = n
	}
	if n.rec != nil && rec.Version <= n.rec.Version {
		return false
	}
	n.rec = rec
	n.entry = nil
	s.publishLocked()
	return true
}

// SetMember records a node's member status and gossip address as Serf
// reports it. A node whose status is MemberLeft is kept (with its record)
// but no longer served; use RemoveNode to forget it entirely.
func (s *Store) SetMember(name, addr string, status MemberStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[name]
	if n == nil {
		n = &nodeState{}
		s.nodes[name] = n
	}
	if n.status == status && n.addr == addr {
		return
	}
	n.status, n.addr = status, addr
	n.entry = nil
	s.publishLocked()
}

// RemoveNode forgets a node and its record (a reaped member).
func (s *Store) RemoveNode(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.nodes[name]; !ok {
		return
	}
	delete(s.nodes, name)
	s.publishLocked()
}

// Update applies several changes under one lock and publishes one
// snapshot: fn receives a Tx valid only during the call.
func (s *Store) Update(fn func(tx *Tx)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &Tx{s: s}
	fn(tx)
	if tx.dirty {
		s.publishLocked()
	}
}

// Tx batches store changes; see Store.Update.
type Tx struct {
	s     *Store
	dirty bool
}

// ApplyRecord is Store.ApplyRecord inside a batch.
func (tx *Tx) ApplyRecord(rec *NodeRecord) bool {
	n := tx.s.nodes[rec.Node.Name]
	if n == nil {
		n = &nodeState{}
		tx.s.nodes[rec.Node.Name] = n
	}
	if n.rec != nil && rec.Version <= n.rec.Version {
		return false
	}
	n.rec, n.entry, tx.dirty = rec, nil, true
	return true
}

// SetMember is Store.SetMember inside a batch.
func (tx *Tx) SetMember(name, addr string, status MemberStatus) {
	n := tx.s.nodes[name]
	if n == nil {
		n = &nodeState{}
		tx.s.nodes[name] = n
	}
	if n.status == status && n.addr == addr {
		return
	}
	n.status, n.addr, n.entry, tx.dirty = status, addr, nil, true
}

// RemoveNode is Store.RemoveNode inside a batch.
func (tx *Tx) RemoveNode(name string) {
	if _, ok := tx.s.nodes[name]; ok {
		delete(tx.s.nodes, name)
		tx.dirty = true
	}
}

// served reports whether a node belongs in the snapshot: alive, leaving or
// failed members (failed ones with critical serfHealth).
func served(st MemberStatus) bool {
	return st == MemberAlive || st == MemberLeaving || st == MemberFailed
}

// publishLocked builds and swaps in a new snapshot. Entries of nodes that
// did not change are reused, so the cost is one pass of pointer work over
// all instances plus the rebuild of what changed.
func (s *Store) publishLocked() {
	prev := s.snap.Load()
	idx := s.index + 1
	if now := uint64(s.now().UnixMilli()); now > idx {
		idx = now
	}
	s.index = idx

	next := &Snapshot{
		Index:     idx,
		nodes:     make(map[string]*NodeEntry, len(s.nodes)),
		services:  make(map[string]*ServiceEntry, len(prev.services)),
		nodeAddrs: make(map[string][]*NodeEntry, len(s.nodes)),
		svcAddrs:  make(map[string][]*Instance),
		changed:   make(chan struct{}),
	}
	nodesChanged := false
	for name, n := range s.nodes {
		if !served(n.status) {
			if prev.nodes[lowerASCII(name)] != nil {
				nodesChanged = true
			}
			continue
		}
		if n.entry == nil {
			n.entry = buildNode(name, n.addr, n.rec, n.status, idx)
			nodesChanged = true
		}
		e := n.entry
		next.nodes[lowerASCII(name)] = e
		next.nodeList = append(next.nodeList, e)
		if ip := net.ParseIP(e.Node.Address); ip != nil {
			k := ip.String()
			next.nodeAddrs[k] = append(next.nodeAddrs[k], e)
		}
	}
	sort.Slice(next.nodeList, func(i, j int) bool { return next.nodeList[i].Node.Name < next.nodeList[j].Node.Name })
	// Walking nodes in name order, each node's instances in ID order,
	// leaves every service's instance list sorted without a sort.
	for _, e := range next.nodeList {
		for _, inst := range e.Instances {
			key := lowerASCII(inst.Service.Name)
			se := next.services[key]
			if se == nil {
				se = &ServiceEntry{Name: inst.Service.Name}
				next.services[key] = se
			}
			se.Instances = append(se.Instances, inst)
			if inst.Service.Address != "" {
				if ip := net.ParseIP(inst.Service.Address); ip != nil {
					k := ip.String()
					next.svcAddrs[k] = append(next.svcAddrs[k], inst)
				}
			}
		}
	}
	if nodesChanged || len(next.nodeList) != len(prev.nodeList) {
		next.nodesIndex = idx
	} else {
		next.nodesIndex = prev.nodesIndex
	}
	next.svcList = make([]*ServiceEntry, 0, len(next.services))
	for key, se := range next.services {
		h := newFNV()
		tags := map[string]struct{}{}
		for _, inst := range se.Instances {
			h.u64(inst.hash)
			for _, t := range inst.Service.Tags {
				tags[t] = struct{}{}
			}
		}
		se.hash = uint64(h)
		se.Tags = make([]string, 0, len(tags))
		for t := range tags {
			se.Tags = append(se.Tags, t)
		}
		sort.Strings(se.Tags)
		if old := prev.services[key]; old != nil && old.hash == se.hash {
			se.Index = old.Index
		} else {
			se.Index = idx
		}
		next.svcList = append(next.svcList, se)
	}
	sort.Slice(next.svcList, func(i, j int) bool { return next.svcList[i].Name < next.svcList[j].Name })
	h := newFNV()
	for _, se := range next.svcList {
		h.str(se.Name)
		for _, t := range se.Tags {
			h.str(t)
		}
	}
	next.svcsHash = uint64(h)
	if next.svcsHash == prev.svcsHash && prev.svcsIndex != 0 {
		next.svcsIndex = prev.svcsIndex
	} else {
		next.svcsIndex = idx
	}
	s.snap.Store(next)
	close(prev.changed)
}
