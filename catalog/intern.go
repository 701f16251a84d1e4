package catalog

import (
	"slices"
	"strconv"
	"strings"
	"sync"
)

// internMaxLen is the longest string interned: names, IDs, tags, meta,
// statuses and check settings repeat across records; longer strings
// (check output, notes) mostly do not.
const internMaxLen = 64

// internMaxEntries bounds the intern table; when it is full it starts
// again empty, so a stream of distinct strings costs at most one table
// (a few MB), never the catalog's memory. Strings interned before a reset
// stay valid: they are ordinary strings.
const internMaxEntries = 1 << 16

// internMaxShared bounds the tables of shared meta maps and tag lists
// (each entry a map or list of at most internMaxItems items), which start
// again empty when full, as the string table does.
const (
	internMaxShared = 1 << 13
	internMaxItems  = 16
)

// interner shares equal strings between the records a store holds: a
// decoded record's strings are each allocated by the JSON decoder, and
// the same service name, tag, meta key or check status repeats on
// thousands of nodes. Meta maps and tag lists that are equal are shared
// too (a record handed to a Store is never modified, so sharing is
// invisible to readers).
type interner struct {
	mu    sync.Mutex
	m     map[string]string
	maps  map[string]map[string]string // by mapKey
	lists map[string][]string          // by the tags joined with NUL
}

var recordStrings = &interner{}

// internRecord replaces r's short strings by equal ones shared with the
// records interned before, and its meta maps and tag lists by equal ones
// (or rebuilds them with shared keys and values). Service and check IDs,
// mostly unique to their node, are not put in the table: a service ID
// equal to its name shares the name, and a check's ServiceID the ID of
// the record's service. r must be sorted (its services by ID) and not
// visible to any other goroutine yet.
func internRecord(r *NodeRecord) {
	in := recordStrings
	in.mu.Lock()
	defer in.mu.Unlock()
	n := &r.Node
	in.str(&n.Name)
	in.str(&n.Address)
	in.str(&n.Datacenter)
	in.str(&n.Zone)
	n.Meta = in.strMap(n.Meta)
	n.TaggedAddresses = in.strMap(n.TaggedAddresses)
	in.str(&r.Owner)
	for _, s := range r.Services.All() {
		in.str(&s.Name)
		if s.ID == s.Name {
			s.ID = s.Name
		}
		in.str(&s.Address)
		s.Tags = in.strList(s.Tags)
		s.Meta = in.strMap(s.Meta)
		for j := range s.Ports {
			in.str(&s.Ports[j].Name)
		}
		in.str(&s.SocketPath)
		for k, a := range s.TaggedAddresses {
			in.str(&a.Address)
			s.TaggedAddresses[k] = a
		}
		if l := s.Locality; l != nil {
			in.str(&l.Region)
			in.str(&l.Zone)
		}
	}
	for _, c := range r.Checks.All() {
		in.str(&c.Name)
		in.str(&c.Status)
		if c.ServiceID != "" {
			if s := r.FindService(c.ServiceID); s != nil {
				c.ServiceID = s.ID
			}
		}
		in.str(&c.ServiceName)
		in.str(&c.Type)
		in.str(&c.Interval)
		in.str(&c.Timeout)
	}
}

// str replaces *s by the table's equal string, adding *s when the table
// has none. The caller holds in.mu.
func (in *interner) str(s *string) {
	if len(*s) == 0 || len(*s) > internMaxLen {
		return
	}
	if v, ok := in.m[*s]; ok {
		*s = v
		return
	}
	if in.m == nil || len(in.m) >= internMaxEntries {
		in.m = make(map[string]string, 1024)
	}
	in.m[*s] = *s
}

// strMap returns a map equal to m: one equal to it met before, or a new
// one of exactly m's size with interned keys and values. Empty and nil
// maps are returned as they are.
func (in *interner) strMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	key, ok := mapKey(m)
	if ok {
		if v, hit := in.maps[key]; hit {
			return v
		}
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		in.str(&k)
		in.str(&v)
		out[k] = v
	}
	if ok {
		if in.maps == nil || len(in.maps) >= internMaxShared {
			in.maps = make(map[string]map[string]string, 256)
		}
		in.maps[key] = out
	}
	return out
}

// mapKey encodes m's sorted keys and values, each after its length, so
// that equal maps and only they have equal keys; false when m is too big
// to share.
func mapKey(m map[string]string) (string, bool) {
	if len(m) > internMaxItems {
		return "", false
	}
	n := 0
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if len(k) > internMaxLen || len(v) > internMaxLen {
			return "", false
		}
		keys = append(keys, k)
		n += len(k) + len(v) + 6
	}
	slices.Sort(keys)
	b := make([]byte, 0, n)
	for _, k := range keys {
		b = strconv.AppendInt(b, int64(len(k)), 10)
		b = append(b, ':')
		b = append(b, k...)
		b = strconv.AppendInt(b, int64(len(m[k])), 10)
		b = append(b, ':')
		b = append(b, m[k]...)
	}
	return string(b), true
}

// strList returns a list equal to l: one equal to it met before, or a
// copy of exactly l's length with interned items. Lists with long items or
// a NUL (which separates items in the table's keys) are not shared.
func (in *interner) strList(l []string) []string {
	if len(l) == 0 {
		return l
	}
	share := len(l) <= internMaxItems
	for _, t := range l {
		if len(t) > internMaxLen || strings.IndexByte(t, 0) >= 0 {
			share = false
			break
		}
	}
	var key string
	if share {
		key = strings.Join(l, "\x00")
		if v, hit := in.lists[key]; hit {
			return v
		}
	}
	out := make([]string, len(l))
	copy(out, l)
	for i := range out {
		in.str(&out[i])
	}
	if share {
		if in.lists == nil || len(in.lists) >= internMaxShared {
			in.lists = make(map[string][]string, 256)
		}
		in.lists[key] = out
	}
	return out
}
