package dns

import (
	"sync"
	"sync/atomic"

	"github.com/chorusdns/chorus/catalog"
)

// cache holds the prepared answers of one catalog snapshot under one
// configuration, keyed by the lower-case query name followed by a zero
// byte and the query's type class.
//
// Reads take no lock: they look in an immutable map published through an
// atomic pointer. Misses go to a mutex-guarded dirty map that holds every
// entry; once the read map has missed as many times as the dirty map has
// entries, the dirty map becomes the new read map (the amortisation of
// sync.Map, with typed keys so that lookups do not allocate).
//
// A cache is replaced, not updated, when the snapshot changes. The new
// cache keeps a pointer to the one it replaced so that entries whose
// input (a service or a node) did not change are reused instead of
// rebuilt; that pointer is cut when the next cache comes, so at most two
// caches are alive.
type cache struct {
	snap *catalog.Snapshot
	view *snapshotView
	rt   *runtime

	read   atomic.Pointer[map[string]*entry]
	mu     sync.Mutex
	dirty  map[string]*entry // nil after a promotion until the next store
	misses int

	prev atomic.Pointer[cache]
}

func newCache(snap *catalog.Snapshot, rt *runtime) *cache {
	c := &cache{
		snap: snap,
		view: &snapshotView{Snapshot: snap, serial: soaSerial(snap)},
		rt:   rt,
	}
	m := map[string]*entry{}
	c.read.Store(&m)
	return c
}

// load returns the entry stored under key, or nil.
func (c *cache) load(key []byte) *entry {
	if e, ok := (*c.read.Load())[string(key)]; ok {
		return e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := (*c.read.Load())[string(key)]; ok {
		return e
	}
	if c.dirty == nil {
		return nil
	}
	e, ok := c.dirty[string(key)]
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
	return e
}

// store adds e under key unless an entry is already there, and returns
// the entry the cache holds.
func (c *cache) store(key string, e *entry) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	read := *c.read.Load()
	if old, ok := read[key]; ok {
		return old
	}
	if c.dirty == nil {
		c.dirty = make(map[string]*entry, len(read)+1)
		for k, v := range read {
			c.dirty[k] = v
		}
	} else if old, ok := c.dirty[key]; ok {
		return old
	}
	c.dirty[key] = e
	return e
}

// reusable returns the previous cache's entry for key when what it was
// built from is unchanged in this cache's snapshot.
func (c *cache) reusable(key []byte) *entry {
	p := c.prev.Load()
	if p == nil || p.rt != c.rt {
		return nil
	}
	e := p.load(key)
	if e == nil {
		return nil
	}
	switch e.dep {
	case depService:
		if svc, ok := c.snap.Service(e.depName); ok && svc.Index == e.depIndex {
			return e
		}
	case depNode:
		if n, ok := c.snap.Node(e.depName); ok && n.Index == e.depIndex {
			return e
		}
	}
	return nil
}

// cacheFor returns the cache of snap under rt, replacing the current one
// when either changed.
func (s *Server) cacheFor(snap *catalog.Snapshot, rt *runtime) *cache {
	cur := s.cache.Load()
	if cur != nil && cur.snap == snap && cur.rt == rt {
		return cur
	}
	if cur != nil && cur.rt == rt && snap.Index < cur.snap.Index {
		// A query that read an older snapshot than the cache's: answer it
		// from a private cache rather than moving the shared one back.
		return newCache(snap, rt)
	}
	next := newCache(snap, rt)
	if cur != nil && cur.rt == rt {
		next.prev.Store(cur)
	}
	if s.cache.CompareAndSwap(cur, next) {
		if cur != nil {
			cur.prev.Store(nil)
		}
		return next
	}
	if c := s.cache.Load(); c != nil && c.snap == snap && c.rt == rt {
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
