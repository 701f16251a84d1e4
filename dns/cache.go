package dns

import (
	"sync"
	"sync/atomic"

	"github.com/chorusdns/chorus/catalog"
)

// staleSlot is how far (in catalog index units, milliseconds) the catalog
// may move past the last snapshot an entry was valid for before the
// entry's slot is dropped when the slot map is next copied.
const staleSlot = 10 * 60 * 1000

// cache holds the prepared answers under one configuration, across
// catalog snapshots, keyed by the lower-case query name followed by a zero
// byte and the query's type class.
//
// Each key has a slot holding its newest entry. An entry records what it
// was derived from (a service or a node and that input's index, see
// entry.dep), so it stays valid for every later snapshot in which that
// input is unchanged; a snapshot change therefore costs the cache
// nothing, and an entry is prepared again only when a query finds that
// its own input changed. Entries derived from no single input are valid
// for the snapshot they were built on only.
//
// Reads take no lock: they look in an immutable map of slots published
// through an atomic pointer and load the slot's entry atomically. New
// keys go to a mutex-guarded dirty map that holds every slot; once the
// read map has missed as many times as the dirty map has slots, the dirty
// map becomes the new read map (the amortisation of sync.Map, with typed
// keys so that lookups do not allocate). Slots are added only for names
// the catalog bounds, and slots whose entry has stayed invalid for
// staleSlot are left out when the map is next copied.
type cache struct {
	rt   *runtime
	view atomic.Pointer[snapshotView] // the newest snapshot queried

	read   atomic.Pointer[map[string]*slot]
	mu     sync.Mutex
	dirty  map[string]*slot // nil after a promotion until the next add
	misses int
}

// slot holds the newest entry of one key.
type slot struct{ e atomic.Pointer[entry] }

func newCache(rt *runtime) *cache {
	c := &cache{rt: rt}
	m := map[string]*slot{}
	c.read.Store(&m)
	return c
}

// viewOf returns the view of snap, shared by every query on it while snap
// is the newest snapshot the cache has seen. A query that read an older
// snapshot gets a private view rather than moving the shared one back.
func (c *cache) viewOf(snap *catalog.Snapshot) *snapshotView {
	v := c.view.Load()
	if v != nil && v.Snapshot == snap {
		return v
	}
	nv := &snapshotView{Snapshot: snap, serial: soaSerial(snap)}
	for v == nil || snap.Index > v.Index {
		if c.view.CompareAndSwap(v, nv) {
			return nv
		}
		if v = c.view.Load(); v.Snapshot == snap {
			return v
		}
	}
	return nv
}

// slot returns the slot of key, or nil.
func (c *cache) slot(key []byte) *slot {
	if sl, ok := (*c.read.Load())[string(key)]; ok {
		return sl
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if sl, ok := (*c.read.Load())[string(key)]; ok {
		return sl
	}
	if c.dirty == nil {
		return nil
	}
	sl, ok := c.dirty[string(key)]
	if !ok {
		return nil
	}
	c.misses++
	if c.misses >= len(c.dirty) {
		m := c.dirty
		c.read.Store(&m)
		c.dirty = nil
		c.misses = 0
	}
	return sl
}

// load returns the entry in key's slot, whatever snapshot it is valid
// for, or nil.
func (c *cache) load(key []byte) *entry {
	if sl := c.slot(key); sl != nil {
		return sl.e.Load()
	}
	return nil
}

// get returns the entry of key if it is valid for v, else nil.
func (c *cache) get(key []byte, v *snapshotView) *entry {
	sl := c.slot(key)
	if sl == nil {
		return nil
	}
	if e := sl.e.Load(); e != nil && e.validFor(v.Snapshot) {
		return e
	}
	return nil
}

// put makes e, built on the snapshot with index e.built, the entry of key
// unless the slot holds one built on a newer snapshot, and returns e.
func (c *cache) put(key []byte, e *entry) *entry {
	sl := c.slot(key)
	if sl == nil {
		sl = c.addSlot(string(key))
	}
	for {
		old := sl.e.Load()
		if old != nil && old.built > e.built {
			return e
		}
		if sl.e.CompareAndSwap(old, e) {
			return e
		}
	}
}

// drop empties key's slot, if it has one, when its entry was built before
// index: the name is no longer answered from the cache (its service or
// node is gone), so the entry must not hold memory.
func (c *cache) drop(key []byte, index uint64) {
	sl := c.slot(key)
	if sl == nil {
		return
	}
	for {
		old := sl.e.Load()
		if old == nil || old.built > index || sl.e.CompareAndSwap(old, nil) {
			return
		}
	}
}

// addSlot returns the slot of key, adding an empty one if there is none.
func (c *cache) addSlot(key string) *slot {
	c.mu.Lock()
	defer c.mu.Unlock()
	read := *c.read.Load()
	if sl, ok := read[key]; ok {
		return sl
	}
	if c.dirty == nil {
		var cur *catalog.Snapshot
		if v := c.view.Load(); v != nil {
			cur = v.Snapshot
		}
		c.dirty = make(map[string]*slot, len(read)+1)
		for k, sl := range read {
			if !stale(sl, cur) {
				c.dirty[k] = sl
			}
		}
	} else if sl, ok := c.dirty[key]; ok {
		return sl
	}
	sl := &slot{}
	c.dirty[key] = sl
	return sl
}

// stale reports whether sl can be left out of the slot map: it is empty,
// or its entry is invalid for cur and was last valid staleSlot ago.
func stale(sl *slot, cur *catalog.Snapshot) bool {
	e := sl.e.Load()
	if e == nil {
		return true
	}
	if cur == nil || e.validFor(cur) {
		return false
	}
	return cur.Index > e.validAt.Load()+staleSlot
}

// validFor reports whether e answers for snap: it was built or validated
// on snap, or the service or node it was derived from has the same index
// in snap.
func (e *entry) validFor(snap *catalog.Snapshot) bool {
	at := e.validAt.Load()
	if at == snap.Index {
		return true
	}
	switch e.dep {
	case depService:
		if svc, ok := snap.Service(e.depName); !ok || svc.Index != e.depIndex {
			return false
		}
	case depNode:
		if n, ok := snap.Node(e.depName); !ok || n.Index != e.depIndex {
			return false
		}
	default:
		return false
	}
	if snap.Index > at {
		// Racing validations may store a smaller index; that only costs
		// the next query a look-up.
		e.validAt.Store(snap.Index)
	}
	return true
}

// cacheFor returns the cache of rt, replacing the current one when the
// configuration changed.
func (s *Server) cacheFor(rt *runtime) *cache {
	cur := s.cache.Load()
	if cur != nil && cur.rt == rt {
		return cur
	}
	next := newCache(rt)
	if s.cache.CompareAndSwap(cur, next) {
		return next
	}
	if c := s.cache.Load(); c != nil && c.rt == rt {
		return c
	}
	return next
}

// soaSerial is the SOA serial of a snapshot: its catalog index in seconds.
// The index starts at the boot time in milliseconds and only grows, so the
// serial reads as the unix time of the last change and never goes back.
func soaSerial(snap *catalog.Snapshot) uint32 {
	return uint32(snap.Index / 1000)
}
