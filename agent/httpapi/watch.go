package httpapi

import (
	"context"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/chorusdns/chorus/catalog"
)

// This file holds the machinery behind blocking queries:
//
//   - watchKey: which part of the catalog an answer is built from, with the
//     catalog's own index for it (cheap to compare per snapshot);
//   - indexTable: Consul-style indexes derived from content, for query
//     answers (X-Consul-Index) and for the objects inside them
//     (CreateIndex/ModifyIndex): an index moves only when the thing's
//     visible content changes, so unrelated changes never show;
//   - renderCache: one rendering of an answer per snapshot, shared by every
//     request asking the same question;
//   - watchHub: one goroutine that, on each new snapshot, re-renders only
//     the answers whose key moved and wakes only the queries whose answer
//     changed.

// watchKey names the part of the catalog an answer depends on:
// "svc:<name>", "node:<name>", "services" (the service names and tags),
// "nodes" (the node list) or "all".
type watchKey string

const (
	keyAll      watchKey = "all"
	keyServices watchKey = "services"
	keyNodes    watchKey = "nodes"
)

func svcKey(name string) watchKey  { return watchKey("svc:" + strings.ToLower(name)) }
func nodeKey(name string) watchKey { return watchKey("node:" + strings.ToLower(name)) }

// index returns the catalog's index for the key in s: it moves whenever
// the key's data may have changed. A service or node that does not exist
// has the snapshot's index.
func (k watchKey) index(s *catalog.Snapshot) uint64 {
	switch {
	case k == keyServices:
		return s.ServicesIndex()
	case k == keyNodes:
		return s.NodesIndex()
	case strings.HasPrefix(string(k), "svc:"):
		if e, ok := s.Service(string(k[4:])); ok {
			return e.Index
		}
	case strings.HasPrefix(string(k), "node:"):
		if n, ok := s.Node(string(k[5:])); ok {
			return n.Index
		}
	}
	return s.Index
}

// indexTable derives indexes from content: for each key it remembers a
// hash of the content last seen, the index at which the key was first seen
// (create) and at which its content last changed (modify). An index is the
// catalog's own index for the data (the caller's hint) when that has moved
// past the previous one, else the snapshot's index, so values only grow.
//
// The table is bounded: it holds at most 2×max entries, and its memory is
// that many entries plus the bytes of their keys (entries and keyBytes
// report both). Once it holds max entries, entries nobody read for
// indexTableIdle are forgotten; if it still reaches 2×max, it forgets
// everything. A key seen again after being forgotten never starts below an
// index handed out for a forgotten key, so a client's index never goes
// back; at worst a waiting client is woken once with an unchanged answer.
// Safe for concurrent use.
type indexTable struct {
	mu       sync.Mutex
	m        map[string]*indexEntry
	max      int
	keyBytes int
	// sweepAt is the size at which the next sweep runs: sweeps are spaced
	// max/8 insertions apart, so a full table of busy entries costs O(1)
	// amortised per insertion, not a scan each.
	sweepAt int
	floor   uint64 // highest index of a forgotten entry
	now     func() time.Time
}

type indexEntry struct {
	hash           uint64
	create, modify uint64
	seen           uint64 // newest snapshot index observed
	touched        time.Time
}

// indexEntryOverhead estimates the bytes one entry costs beside its key:
// the entry, the pointer and string header in the map, and the map's own
// per-slot overhead.
const indexEntryOverhead = 128

// indexTableIdle is how long an unread entry is kept once the table is
// over its size: longer than the longest blocking query, so that a
// waiting query's entry stays.
const indexTableIdle = maxWait + maxWait/16 + time.Minute

func newIndexTable(max int) *indexTable {
	return &indexTable{m: make(map[string]*indexEntry), max: max, sweepAt: max, now: time.Now}
}

// get records that key has content hash h in the snapshot with index snap,
// where hint (≤ snap) is the catalog's index for the data, and returns
// the key's create and modify indexes. ok is false when the table already
// holds a newer, different content for key (the caller looked at an older
// snapshot); modify is then snap.
func (t *indexTable) get(key string, snap, hint, h uint64) (create, modify uint64, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	e := t.m[key]
	if e == nil {
		if len(t.m) >= t.sweepAt {
			t.sweepLocked(now)
		}
		idx := min(max(hint, t.floor), snap)
		e = &indexEntry{hash: h, create: idx, modify: idx, seen: snap}
		t.m[key] = e
		t.keyBytes += len(key)
	}
	e.touched = now
	switch {
	case h == e.hash:
		e.seen = max(e.seen, snap)
	case snap > e.seen:
		e.hash, e.seen = h, snap
		if hint > e.modify {
			e.modify = hint
		} else {
			e.modify = snap
		}
	case snap == e.seen:
		// Two renderings of one snapshot disagree: only possible for
		// local answers, which do not come from the snapshot.
		e.hash = h
	default:
		return e.create, snap, false
	}
	return e.create, e.modify, true
}

// sweepLocked forgets entries nobody read recently, and everything if the
// table is still at twice its size.
func (t *indexTable) sweepLocked(now time.Time) {
	all := len(t.m) >= 2*t.max
	for k, e := range t.m {
		if all || now.Sub(e.touched) > indexTableIdle {
			t.floor = max(t.floor, e.modify)
			t.keyBytes -= len(k)
			delete(t.m, k)
		}
	}
	if all {
		t.m = make(map[string]*indexEntry) // give the grown buckets back
	}
	t.sweepAt = min(2*t.max, max(t.max, len(t.m)+max(t.max/8, 1)))
}

// size returns the number of entries and an estimate of the bytes they
// hold (keys plus indexEntryOverhead each).
func (t *indexTable) size() (entries, bytes int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m), t.keyBytes + len(t.m)*indexEntryOverhead
}

// hasher fingerprints API answers field by field with catalog.Hasher,
// under the short names the endpoints chain.
type hasher struct{ h catalog.Hasher }

func newHasher() *hasher { return &hasher{h: catalog.NewHasher()} }

func (h *hasher) str(s string) *hasher               { h.h.Str(s); return h }
func (h *hasher) num(n int64) *hasher                { h.h.U64(uint64(n)); return h }
func (h *hasher) strs(ss []string) *hasher           { h.h.Strs(ss); return h }
func (h *hasher) strMap(m map[string]string) *hasher { h.h.StrMap(m); return h }
func (h *hasher) sum() uint64                        { return h.h.Sum() }

// bodyHash fingerprints an encoded answer.
func bodyHash(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// renderCache shares rendered answers between requests that ask the same
// question of the same snapshot: when a watched service changes, its
// thousands of waiting queries render and encode it once. It holds the
// answers of the newest snapshot only, at most maxRenderEntries of them
// and about maxRenderBytes of encoded answers; past either bound answers
// are rendered for their request alone. Safe for concurrent use.
type renderCache struct {
	mu      sync.Mutex
	snap    *catalog.Snapshot
	entries map[string]*renderEntry
	bytes   int // encoded bytes of the entries rendered so far
}

type renderEntry struct {
	once sync.Once
	r    rendered
	err  error
}

// rendered is one rendering of an answer.
type rendered struct {
	v    any
	body []byte
	hash uint64
}

// maxRenderEntries and maxRenderBytes bound the answers cached per
// snapshot; more are rendered without caching.
const (
	maxRenderEntries = 1024
	maxRenderBytes   = 64 << 20
)

func newRenderCache() *renderCache {
	return &renderCache{entries: make(map[string]*renderEntry)}
}

// get returns the answer for key in snap, rendering it with render once.
func (c *renderCache) get(snap *catalog.Snapshot, key string, render func() (rendered, error)) (rendered, error) {
	c.mu.Lock()
	if c.snap != snap {
		if c.snap != nil && snap.Index < c.snap.Index {
			c.mu.Unlock() // an older snapshot: not worth keeping
			return render()
		}
		c.snap = snap
		c.entries = make(map[string]*renderEntry)
		c.bytes = 0
	}
	e := c.entries[key]
	if e == nil {
		if len(c.entries) >= maxRenderEntries || c.bytes >= maxRenderBytes {
			c.mu.Unlock()
			return render()
		}
		e = &renderEntry{}
		c.entries[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		e.r, e.err = render()
		c.mu.Lock()
		if c.snap == snap {
			c.bytes += len(e.r.body)
		}
		c.mu.Unlock()
	})
	return e.r, e.err
}

// watchHub wakes blocking queries. Queries asking the same question share
// one entry. One goroutine (run) follows the catalog's snapshots; for each
// entry whose key's index moved it renders the answer (through the render
// cache) and, only if the answer changed, closes the entry's channel. A
// change therefore costs one index look-up per watched question plus one
// rendering per question it touches, and wakes no query whose answer did
// not change. All methods are safe for concurrent use.
type watchHub struct {
	store   *catalog.Store
	mu      sync.Mutex
	running bool
	entries map[string]*watchEntry
}

// watchEntry is one watched question.
type watchEntry struct {
	ckey    string
	key     watchKey
	hashOf  func(*catalog.Snapshot) uint64
	lastIdx uint64 // key's index when last checked
	last    uint64 // answer hash when last checked
	ch      chan struct{}
	refs    int
}

func newWatchHub(store *catalog.Store) *watchHub {
	return &watchHub{store: store, entries: make(map[string]*watchEntry)}
}

// acquire registers a query waiting on the answer ckey (built from key's
// data) that it holds with hash held, as rendered from snap. hashOf
// renders the answer for a snapshot and returns its hash. The caller must
// release the entry.
func (h *watchHub) acquire(ckey string, key watchKey, hashOf func(*catalog.Snapshot) uint64, snap *catalog.Snapshot, held uint64) *watchEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entries[ckey]
	if e == nil {
		e = &watchEntry{ckey: ckey, key: key, hashOf: hashOf, lastIdx: key.index(snap), last: held, ch: make(chan struct{})}
		h.entries[ckey] = e
	}
	e.refs++
	return e
}

// release drops a registration taken with acquire.
func (h *watchHub) release(e *watchEntry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.refs--; e.refs == 0 {
		delete(h.entries, e.ckey)
	}
}

// wait returns the channel that is closed at e's next change. Without a
// running hub it falls back to snap's own change channel.
func (h *watchHub) wait(e *watchEntry, snap *catalog.Snapshot) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.running {
		return snap.Changed()
	}
	return e.ch
}

// waiting returns the number of queries waiting.
func (h *watchHub) waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, e := range h.entries {
		n += e.refs
	}
	return n
}

// run follows the catalog until ctx ends.
func (h *watchHub) run(ctx context.Context) {
	snap := h.store.Snapshot()
	h.mu.Lock()
	h.running = true
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.running = false
		for _, e := range h.entries {
			close(e.ch)
			e.ch = make(chan struct{})
		}
		h.mu.Unlock()
	}()
	var moved []*watchEntry
	for {
		select {
		case <-ctx.Done():
			return
		case <-snap.Changed():
		}
		snap = h.store.Snapshot()
		moved = moved[:0]
		h.mu.Lock()
		for _, e := range h.entries {
			if i := e.key.index(snap); i != e.lastIdx {
				e.lastIdx = i
				moved = append(moved, e)
			}
		}
		h.mu.Unlock()
		// Render outside the lock: queries keep arriving and leaving.
		for _, e := range moved {
			hv := e.hashOf(snap)
			h.mu.Lock()
			if hv != e.last {
				e.last = hv
				close(e.ch)
				e.ch = make(chan struct{})
			}
			h.mu.Unlock()
		}
	}
}
