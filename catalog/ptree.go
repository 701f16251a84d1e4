package catalog

import "sort"

// ptree is a persistent ordered map from strings to V: a B+tree whose
// updates copy only the nodes on the path to the changed key, so a new
// version costs O(log n) and shares everything else with the old one.
// Versions that a Snapshot holds are never modified.
//
// An update made with an edit token copies each node once and then
// changes the copies it owns in place, so a batch of k updates made with
// one token costs at most k paths. A token must not be used again once
// the tree it edited is published.
type ptree[V any] struct {
	root *pnode[V]
	n    int
}

// edit is an update's ownership token.
type edit struct{ _ byte }

const (
	maxLeaf = 64 // items per leaf
	maxKids = 64 // children per inner node
)

type pnode[V any] struct {
	owner *edit
	// keys are the leaf's item keys, or the inner node's separators:
	// keys[i] (i ≥ 1) is at most every key under kids[i] and above every
	// key under kids[i-1]; keys[0] is unused.
	keys []string
	vals []V         // leaf only
	kids []*pnode[V] // inner only
}

func (n *pnode[V]) leaf() bool { return n.kids == nil }

// child returns the index of the child whose range holds key.
func (n *pnode[V]) child(key string) int {
	// The first separator above key, minus one.
	i := sort.Search(len(n.keys)-1, func(i int) bool { return n.keys[i+1] > key })
	return i
}

// Len returns the number of keys.
func (t *ptree[V]) Len() int { return t.n }

// get returns the value of key.
func (t *ptree[V]) get(key string) (V, bool) {
	n := t.root
	for n != nil {
		if n.leaf() {
			i := sort.SearchStrings(n.keys, key)
			if i < len(n.keys) && n.keys[i] == key {
				return n.vals[i], true
			}
			break
		}
		n = n.kids[n.child(key)]
	}
	var zero V
	return zero, false
}

// ascend calls fn for every key in order until fn returns false.
func (t *ptree[V]) ascend(fn func(string, V) bool) {
	if t.root != nil {
		t.root.ascend(fn)
	}
}

func (n *pnode[V]) ascend(fn func(string, V) bool) bool {
	if n.leaf() {
		for i, k := range n.keys {
			if !fn(k, n.vals[i]) {
				return false
			}
		}
		return true
	}
	for _, c := range n.kids {
		if !c.ascend(fn) {
			return false
		}
	}
	return true
}

// own returns n itself when ed owns it, else a copy owned by ed.
func (n *pnode[V]) own(ed *edit) *pnode[V] {
	if n.owner == ed {
		return n
	}
	c := &pnode[V]{owner: ed, keys: make([]string, len(n.keys), len(n.keys)+1)}
	copy(c.keys, n.keys)
	if n.leaf() {
		c.vals = make([]V, len(n.vals), len(n.vals)+1)
		copy(c.vals, n.vals)
	} else {
		c.kids = make([]*pnode[V], len(n.kids), len(n.kids)+1)
		copy(c.kids, n.kids)
	}
	return c
}

// set stores v under key, copying what ed does not own.
func (t *ptree[V]) set(ed *edit, key string, v V) {
	if t.root == nil {
		t.root = &pnode[V]{owner: ed, keys: []string{key}, vals: []V{v}}
		t.n = 1
		return
	}
	t.root = t.root.own(ed)
	right, sep, added := t.root.insert(ed, key, v)
	if added {
		t.n++
	}
	if right != nil {
		t.root = &pnode[V]{owner: ed, keys: []string{"", sep}, kids: []*pnode[V]{t.root, right}}
	}
}

// insert adds or replaces key in n, which ed owns. When n overflows it
// splits and returns its new right sibling and the sibling's separator.
func (n *pnode[V]) insert(ed *edit, key string, v V) (right *pnode[V], sep string, added bool) {
	if n.leaf() {
		i := sort.SearchStrings(n.keys, key)
		if i < len(n.keys) && n.keys[i] == key {
			n.vals[i] = v
			return nil, "", false
		}
		n.keys = insertAt(n.keys, i, key)
		n.vals = insertAt(n.vals, i, v)
		if len(n.keys) > maxLeaf {
			right, sep = n.split(ed)
		}
		return right, sep, true
	}
	i := n.child(key)
	c := n.kids[i].own(ed)
	n.kids[i] = c
	r, s, added := c.insert(ed, key, v)
	if r != nil {
		n.keys = insertAt(n.keys, i+1, s)
		n.kids = insertAt(n.kids, i+1, r)
		if len(n.kids) > maxKids {
			right, sep = n.split(ed)
		}
	}
	return right, sep, added
}

// split moves the upper half of n into a new node owned by ed.
func (n *pnode[V]) split(ed *edit) (*pnode[V], string) {
	h := len(n.keys) / 2
	r := &pnode[V]{owner: ed, keys: append([]string(nil), n.keys[h:]...)}
	n.keys = n.keys[:h:h]
	if n.leaf() {
		r.vals = append([]V(nil), n.vals[h:]...)
		clear(n.vals[h:])
		n.vals = n.vals[:h:h]
	} else {
		r.kids = append([]*pnode[V](nil), n.kids[h:]...)
		clear(n.kids[h:])
		n.kids = n.kids[:h:h]
	}
	return r, r.keys[0]
}

// delete removes key, copying what ed does not own.
func (t *ptree[V]) delete(ed *edit, key string) {
	if t.root == nil {
		return
	}
	if _, ok := t.get(key); !ok {
		return
	}
	t.root = t.root.own(ed)
	t.root.remove(ed, key)
	t.n--
	for t.root != nil {
		switch {
		case t.root.leaf() && len(t.root.keys) == 0:
			t.root = nil
		case !t.root.leaf() && len(t.root.kids) == 1:
			t.root = t.root.kids[0]
		default:
			return
		}
	}
}

// remove deletes key, which is present, from n, which ed owns. Children
// left empty are dropped; others may stay under-full (the tree's height
// never grows from deletions, and inserts refill them).
func (n *pnode[V]) remove(ed *edit, key string) {
	if n.leaf() {
		i := sort.SearchStrings(n.keys, key)
		n.keys = removeAt(n.keys, i)
		n.vals = removeAt(n.vals, i)
		return
	}
	i := n.child(key)
	c := n.kids[i].own(ed)
	n.kids[i] = c
	c.remove(ed, key)
	if len(c.keys) == 0 {
		n.keys = removeAt(n.keys, i)
		n.kids = removeAt(n.kids, i)
	}
}

func insertAt[T any](s []T, i int, v T) []T {
	var zero T
	s = append(s, zero)
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

func removeAt[T any](s []T, i int) []T {
	copy(s[i:], s[i+1:])
	var zero T
	s[len(s)-1] = zero
	return s[:len(s)-1]
}
