package catalog

import (
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
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
	// dirty names the nodes (exact names) changed since the last publish.
	dirty map[string]struct{}
	snap  atomic.Pointer[Snapshot]
	now   func() time.Time
	// remotes are the other datacenters (remote.go), carried into every
	// snapshot.
	remotes *remoteSet
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
	s := &Store{nodes: make(map[string]*nodeState), dirty: make(map[string]struct{}), now: time.Now}
	s.index = uint64(s.now().UnixMilli())
	s.snap.Store(&Snapshot{Index: s.index, changed: make(chan struct{})})
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
	n.rec = kept(rec)
	n.entry = nil
	s.dirty[rec.Node.Name] = struct{}{}
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
	s.dirty[name] = struct{}{}
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
	s.dirty[name] = struct{}{}
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
	n.rec, n.entry, tx.dirty = kept(rec), nil, true
	tx.s.dirty[rec.Node.Name] = struct{}{}
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
	tx.s.dirty[name] = struct{}{}
}

// RemoveNode is Store.RemoveNode inside a batch.
func (tx *Tx) RemoveNode(name string) {
	if _, ok := tx.s.nodes[name]; ok {
		delete(tx.s.nodes, name)
		tx.s.dirty[name] = struct{}{}
		tx.dirty = true
	}
}

// served reports whether a node belongs in the snapshot: alive, leaving or
// failed members (failed ones with critical serfHealth).
func served(st MemberStatus) bool {
	return st == MemberAlive || st == MemberLeaving || st == MemberFailed
}

// publishLocked builds and swaps in a new snapshot. Only the nodes named
// in s.dirty are rebuilt, and the snapshot's trees are copied on write
// from the previous one, so the cost is that of the changed nodes and of
// the services they touch (each touched service's instance list is
// copied once), not that of the catalog.
func (s *Store) publishLocked() {
	prev := s.snap.Load()
	idx := s.index + 1
	if now := uint64(s.now().UnixMilli()); now > idx {
		idx = now
	}
	s.index = idx

	next := &Snapshot{
		Index:      idx,
		nodes:      prev.nodes,
		nodesLower: prev.nodesLower,
		services:   prev.services,
		svcNames:   prev.svcNames,
		nodeAddrs:  prev.nodeAddrs,
		svcAddrs:   prev.svcAddrs,
		nodesIndex: prev.nodesIndex,
		svcsIndex:  prev.svcsIndex,
		remotes:    s.remotes,
		changed:    make(chan struct{}),
	}
	b := snapBuilder{prev: prev, next: next, ed: new(edit), idx: idx, touched: map[string]*svcTouch{}}
	// Sorted, so that a batch's result does not depend on map order.
	names := slices.Sorted(maps.Keys(s.dirty))
	clear(s.dirty)
	next.tombs = s.tombstonesLocked(names, prev.tombs)
	for _, name := range names {
		old, _ := prev.nodes.get(name)
		var neu *NodeEntry
		if n := s.nodes[name]; n != nil && (served(n.status) || n.rec.liveExternal()) {
			if n.entry == nil {
				n.entry = buildNode(name, n.addr, n.rec, n.status, idx, old)
			}
			neu = n.entry
		}
		if old != neu {
			b.replaceNode(name, old, neu)
		}
	}
	b.finishServices()
	if b.nodesChanged {
		next.nodesIndex = idx
	}
	if b.svcsChanged || prev.svcsIndex == 0 {
		next.svcsIndex = idx
	}
	s.snap.Store(next)
	close(prev.changed)
}

// snapBuilder derives one snapshot from the previous one.
type snapBuilder struct {
	prev, next *Snapshot
	ed         *edit
	idx        uint64
	// touched holds, by lower-case name, the services whose instances
	// this build changed: new entries that the build modifies in place
	// and puts in the trees at the end.
	touched                   map[string]*svcTouch
	nodesChanged, svcsChanged bool
}

type svcTouch struct {
	se      *ServiceEntry // nil until the first change copies the old entry
	changed bool          // some instance differs from the previous snapshot's
	// edits are the changes to se.Instances (at most one per node and
	// service ID), applied by finishServices.
	edits []Edit[*Instance]
}

// replaceNode swaps node name's entry old for neu (either may be nil).
func (b *snapBuilder) replaceNode(name string, old, neu *NodeEntry) {
	nx := b.next
	b.nodesChanged = true
	lk := lowerASCII(name)
	if old != nil {
		nx.nodes.delete(b.ed, name)
		if cur, ok := nx.nodesLower.get(lk); ok && cur == old {
			nx.nodesLower.delete(b.ed, lk)
		}
		b.nodeAddr(old, false)
	}
	if neu != nil {
		nx.nodes.set(b.ed, name, neu)
		nx.nodesLower.set(b.ed, lk, neu)
		b.nodeAddr(neu, true)
	}
	if chs, ok := instanceChanges(old, neu); ok {
		b.patchInstances(name, chs)
		b.patchAddrs(name, chs)
		return
	}
	b.instanceAddrs(name, old, neu)
	var keys []string
	add := func(e *NodeEntry) {
		if e == nil {
			return
		}
		last := "\x00" // instances of a node mostly share a few names
		for _, inst := range e.Instances.Values() {
			if inst.Service.Name == last {
				continue
			}
			last = inst.Service.Name
			if k := lowerASCII(last); !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	add(old)
	add(neu)
	for _, k := range keys {
		b.replaceInstances(k, name, instancesOf(neu, k))
	}
}

// instancesOf returns e's instances of the service with lower-case name
// key, in ID order.
func instancesOf(e *NodeEntry, key string) []*Instance {
	if e == nil {
		return nil
	}
	// Two passes: count, then fill a slice of the final size.
	n := 0
	last, match := "\x00", false
	for _, inst := range e.Instances.Values() {
		if inst.Service.Name != last {
			last = inst.Service.Name
			match = lowerASCII(last) == key
		}
		if match {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]*Instance, 0, n)
	last, match = "\x00", false
	for _, inst := range e.Instances.Values() {
		if inst.Service.Name != last {
			last = inst.Service.Name
			match = lowerASCII(last) == key
		}
		if match {
			out = append(out, inst)
		}
	}
	return out
}

// touch returns service key's entry of the snapshot being built, a copy
// of the previous snapshot's that the build may modify. Its Instances
// are the previous entry's until finishServices applies the build's
// edits (t.edits) to them.
func (b *snapBuilder) touch(key string) *svcTouch {
	t := b.touched[key]
	if t == nil {
		t = &svcTouch{}
		if old, ok := b.prev.services.get(key); ok {
			t.se = &ServiceEntry{
				Name:      old.Name,
				Instances: old.Instances,
				Tags:      slices.Clone(old.Tags),
				tagCount:  slices.Clone(old.tagCount),
				Index:     old.Index,
			}
		}
		b.touched[key] = t
	}
	if t.se == nil {
		t.se = &ServiceEntry{}
	}
	return t
}

// nodeRun returns node's instances in l (sorted by node name, then
// service ID): one run, in service ID order.
func nodeRun(l List[*Instance], node string) []*Instance {
	lo, _ := l.Search(func(i **Instance) int { return strings.Compare((*i).Node.Node.Name, node) })
	var run []*Instance
	for k := lo; k < l.Len(); k++ {
		inst := l.Get(k)
		if inst.Node.Node.Name != node {
			break
		}
		run = append(run, inst)
	}
	return run
}

// runEdits returns the edits that replace olds, node's run in a list
// sorted by node name then service ID, with news (both in service ID
// order): a removal for each old instance news lacks, a put for each new
// one that is not the same pointer as the old.
func runEdits(olds, news []*Instance) []Edit[*Instance] {
	var edits []Edit[*Instance]
	i, j := 0, 0
	for i < len(olds) || j < len(news) {
		switch {
		case j >= len(news) || i < len(olds) && olds[i].Service.ID < news[j].Service.ID:
			edits = append(edits, Edit[*Instance]{Value: olds[i], Delete: true})
			i++
		case i >= len(olds) || news[j].Service.ID < olds[i].Service.ID:
			edits = append(edits, Edit[*Instance]{Value: news[j]})
			j++
		default:
			if olds[i] != news[j] {
				edits = append(edits, Edit[*Instance]{Value: news[j]})
			}
			i++
			j++
		}
	}
	return edits
}

// byNodeThenID orders an instance against an edit's instance by node
// name, then service ID: the order of service and address lists.
func byNodeThenID(x **Instance, e *Edit[*Instance]) int {
	a, b := *x, e.Value
	if c := strings.Compare(a.Node.Node.Name, b.Node.Node.Name); c != 0 {
		return c
	}
	return strings.Compare(a.Service.ID, b.Service.ID)
}

// sortEdits sorts instance edits by node name, then service ID.
func sortEdits(edits []Edit[*Instance]) {
	slices.SortFunc(edits, func(a, b Edit[*Instance]) int { return byNodeThenID(&a.Value, &b) })
}

// replaceInstances replaces node's instances of service key with news.
func (b *snapBuilder) replaceInstances(key, node string, news []*Instance) {
	t := b.touch(key)
	se := t.se
	olds := nodeRun(se.Instances, node)
	if len(olds) != len(news) {
		t.changed = true
	} else {
		for i := range olds {
			if olds[i].hash != news[i].hash {
				t.changed = true
				break
			}
		}
	}
	// Tag counts move only for instances whose tags changed: both lists
	// are in service ID order.
	i, j := 0, 0
	for i < len(olds) || j < len(news) {
		switch {
		case j >= len(news) || i < len(olds) && olds[i].Service.ID < news[j].Service.ID:
			for _, tag := range olds[i].Service.Tags {
				se.countTag(tag, -1)
			}
			i++
		case i >= len(olds) || news[j].Service.ID < olds[i].Service.ID:
			for _, tag := range news[j].Service.Tags {
				se.countTag(tag, 1)
			}
			j++
		default:
			if !slices.Equal(olds[i].Service.Tags, news[j].Service.Tags) {
				for _, tag := range olds[i].Service.Tags {
					se.countTag(tag, -1)
				}
				for _, tag := range news[j].Service.Tags {
					se.countTag(tag, 1)
				}
			}
			i++
			j++
		}
	}
	t.edits = append(t.edits, runEdits(olds, news)...)
}

// countTag adds d to tag's count, keeping Tags sorted and free of tags
// no instance has.
func (se *ServiceEntry) countTag(tag string, d int32) {
	i, found := slices.BinarySearch(se.Tags, tag)
	if !found {
		if d <= 0 {
			return
		}
		se.Tags = slices.Insert(se.Tags, i, tag)
		se.tagCount = slices.Insert(se.tagCount, i, d)
		return
	}
	se.tagCount[i] += d
	if se.tagCount[i] <= 0 {
		se.Tags = slices.Delete(se.Tags, i, i+1)
		se.tagCount = slices.Delete(se.tagCount, i, i+1)
	}
}

// finishServices puts the touched services in the trees and sets their
// indexes and the service-set index.
func (b *snapBuilder) finishServices() {
	nx := b.next
	for key, t := range b.touched {
		old, hadOld := b.prev.services.get(key)
		se := t.se
		if se != nil {
			sortEdits(t.edits)
			se.Instances = se.Instances.ApplyFunc(byNodeThenID, t.edits)
		}
		if se == nil || se.Instances.Len() == 0 {
			if hadOld {
				nx.services.delete(b.ed, key)
				nx.svcNames.delete(b.ed, old.Name)
				b.svcsChanged = true
			}
			continue
		}
		se.Name = se.Instances.Get(0).Service.Name
		if t.changed || !hadOld {
			se.Index = b.idx
		}
		if !hadOld || old.Name != se.Name || !slices.Equal(old.Tags, se.Tags) {
			b.svcsChanged = true
		}
		if hadOld && old.Name != se.Name {
			nx.svcNames.delete(b.ed, old.Name)
		}
		nx.services.set(b.ed, key, se)
		nx.svcNames.set(b.ed, se.Name, se)
	}
}

// ipKey returns the canonical form of an IP address, or false when s is
// not one.
func ipKey(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return "", false
	}
	return ip.String(), true
}

// nodeAddr adds e to, or removes it from, its address's node list, which
// stays sorted by node name.
func (b *snapBuilder) nodeAddr(e *NodeEntry, add bool) {
	k, ok := ipKey(e.Node.Address)
	if !ok {
		return
	}
	l, _ := b.next.nodeAddrs.get(k)
	if add {
		i := sort.Search(len(l), func(i int) bool { return l[i].Node.Name >= e.Node.Name })
		b.next.nodeAddrs.set(b.ed, k, slices.Insert(slices.Clip(l), i, e))
		return
	}
	if i := slices.Index(l, e); i >= 0 {
		if len(l) == 1 {
			b.next.nodeAddrs.delete(b.ed, k)
		} else {
			b.next.nodeAddrs.set(b.ed, k, slices.Delete(slices.Clone(l), i, i+1))
		}
	}
}

// instanceAddrs replaces node name's instances old (its previous entry's)
// with neu's in the instance list of every service address either has.
// Each list is sorted by node name, then service ID, so a node's
// instances form one run in it: the node's run in each list touched is
// replaced at once (List.ApplyFunc copies the chunks the run falls in).
func (b *snapBuilder) instanceAddrs(name string, old, neu *NodeEntry) {
	// Instances of a node mostly share a few addresses: parse each once
	// per run of equal ones.
	var lastAddr, lastKey string
	lastOK, started := false, false
	keyOf := func(inst *Instance) (string, bool) {
		if a := inst.Service.Address; !started || a != lastAddr {
			started, lastAddr = true, a
			lastKey, lastOK = ipKey(a)
		}
		return lastKey, lastOK
	}
	news := map[string][]*Instance{} // neu's instances by address, in ID order
	if old != nil {
		for _, inst := range old.Instances.Values() {
			if k, ok := keyOf(inst); ok && news[k] == nil {
				news[k] = []*Instance{}
			}
		}
	}
	if neu != nil {
		for _, inst := range neu.Instances.Values() {
			if k, ok := keyOf(inst); ok {
				news[k] = append(news[k], inst)
			}
		}
	}
	for k, nl := range news {
		l, _ := b.next.svcAddrs.get(k)
		edits := runEdits(nodeRun(l, name), nl)
		if len(edits) == 0 {
			continue
		}
		if l = l.ApplyFunc(byNodeThenID, edits); l.Len() == 0 {
			b.next.svcAddrs.delete(b.ed, k)
		} else {
			b.next.svcAddrs.set(b.ed, k, l)
		}
	}
}

// instChange is one instance that differs between a node's previous entry
// and its new one: old, neu or both are set (same service ID).
type instChange struct{ old, neu *Instance }

// instanceChanges returns the instances that differ between old's and
// neu's lists, or false when the two share no instance or differ in more
// than a quarter of them (a whole build: the node's runs in the service
// and address lists are then replaced whole). Instances an entry keeps
// from the previous one (buildSparse) are the same pointers, in the same
// chunks of the list where no change fell: the comparison skips a chunk
// the two lists share and compares pointers in the others.
func instanceChanges(old, neu *NodeEntry) ([]instChange, bool) {
	if old == nil || neu == nil || neu.Instances.Len() < sparseNode {
		return nil, false
	}
	o, n := old.Instances, neu.Instances
	limit := n.Len()/4 + 8
	var chs []instChange
	i, j := 0, 0
	for i < o.Len() || j < n.Len() {
		if skip := sharedChunkAt(o, i, n, j); skip > 0 {
			i += skip
			j += skip
			continue
		}
		var oi, nj *Instance
		if i < o.Len() {
			oi = o.Get(i)
		}
		if j < n.Len() {
			nj = n.Get(j)
		}
		if oi != nil && oi == nj {
			i++
			j++
			continue
		}
		switch {
		case nj == nil || oi != nil && oi.Service.ID < nj.Service.ID:
			chs = append(chs, instChange{old: oi})
			i++
		case oi == nil || nj.Service.ID < oi.Service.ID:
			chs = append(chs, instChange{neu: nj})
			j++
		default:
			chs = append(chs, instChange{old: oi, neu: nj})
			i++
			j++
		}
		if len(chs) > limit {
			return nil, false
		}
	}
	return chs, true
}

// sharedChunkAt returns the length of the chunk that starts at element i
// of a and at element j of b and is the same chunk in both, or 0.
func sharedChunkAt[T any](a List[T], i int, b List[T], j int) int {
	if i >= a.Len() || j >= b.Len() {
		return 0
	}
	ka, offa := a.locate(i)
	kb, offb := b.locate(j)
	if offa != 0 || offb != 0 {
		return 0
	}
	ca, cb := a.chunk(ka), b.chunk(kb)
	if len(ca) != len(cb) || &ca[0] != &cb[0] {
		return 0
	}
	return len(ca)
}

// patchInstances applies node's changed instances to the instance lists
// of their services, at the cost of the change: each becomes an edit of
// its service's list, applied by finishServices.
func (b *snapBuilder) patchInstances(node string, chs []instChange) {
	tags := func(se *ServiceEntry, inst *Instance, d int32) {
		for _, tag := range inst.Service.Tags {
			se.countTag(tag, d)
		}
	}
	for _, ch := range chs {
		var ko, kn string
		if ch.old != nil {
			ko = lowerASCII(ch.old.Service.Name)
		}
		if ch.neu != nil {
			kn = lowerASCII(ch.neu.Service.Name)
		}
		if ch.old != nil && ch.neu != nil && ko == kn {
			t := b.touch(kn)
			t.edits = append(t.edits, Edit[*Instance]{Value: ch.neu})
			if ch.old.hash != ch.neu.hash {
				t.changed = true
			}
			if !slices.Equal(ch.old.Service.Tags, ch.neu.Service.Tags) {
				tags(t.se, ch.old, -1)
				tags(t.se, ch.neu, 1)
			}
			continue
		}
		if ch.old != nil {
			t := b.touch(ko)
			t.edits = append(t.edits, Edit[*Instance]{Value: ch.old, Delete: true})
			t.changed = true
			tags(t.se, ch.old, -1)
		}
		if ch.neu != nil {
			t := b.touch(kn)
			t.edits = append(t.edits, Edit[*Instance]{Value: ch.neu})
			t.changed = true
			tags(t.se, ch.neu, 1)
		}
	}
}

// patchAddrs applies node's changed instances to the instance lists of
// their service addresses: the edits of each list are applied at once.
func (b *snapBuilder) patchAddrs(node string, chs []instChange) {
	work := map[string][]Edit[*Instance]{}
	add := func(addr string, e Edit[*Instance]) {
		if k, ok := ipKey(addr); ok {
			work[k] = append(work[k], e)
		}
	}
	for _, ch := range chs {
		if ch.old != nil && ch.neu != nil {
			ko, okOld := ipKey(ch.old.Service.Address)
			kn, okNew := ipKey(ch.neu.Service.Address)
			if okOld == okNew && ko == kn {
				// Same list: one put replaces the instance.
				add(ch.neu.Service.Address, Edit[*Instance]{Value: ch.neu})
				continue
			}
		}
		if ch.old != nil {
			add(ch.old.Service.Address, Edit[*Instance]{Value: ch.old, Delete: true})
		}
		if ch.neu != nil {
			add(ch.neu.Service.Address, Edit[*Instance]{Value: ch.neu})
		}
	}
	for k, edits := range work {
		sortEdits(edits)
		l, _ := b.next.svcAddrs.get(k)
		if l = l.ApplyFunc(byNodeThenID, edits); l.Len() == 0 {
			b.next.svcAddrs.delete(b.ed, k)
		} else {
			b.next.svcAddrs.set(b.ed, k, l)
		}
	}
}
