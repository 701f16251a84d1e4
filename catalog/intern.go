package catalog

import "sync"

// internMaxLen is the longest string interned: names, IDs, tags, meta,
// statuses and check settings repeat across records; longer strings
// (check output, notes) mostly do not.
const internMaxLen = 64

// internMaxEntries bounds the intern table; when it is full it starts
// again empty, so a stream of distinct strings costs at most one table
// (a few MB), never the catalog's memory. Strings interned before a reset
// stay valid: they are ordinary strings.
const internMaxEntries = 1 << 16

// interner shares equal strings between the records a store holds: a
// decoded record's strings are each allocated by the JSON decoder, and
// the same service name, tag, meta key or check status repeats on
// thousands of nodes.
type interner struct {
	mu sync.Mutex
	m  map[string]string
}

var recordStrings = &interner{}

// internRecord replaces r's short strings by equal ones shared with the
// records interned before, and rebuilds its meta maps with shared keys
// and values. r must not be visible to any other goroutine yet.
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
	for i := range r.Services {
		s := &r.Services[i]
		in.str(&s.ID)
		in.str(&s.Name)
		in.str(&s.Address)
		for j := range s.Tags {
			in.str(&s.Tags[j])
		}
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
	for i := range r.Checks {
		c := &r.Checks[i]
		in.str(&c.CheckID)
		in.str(&c.Name)
		in.str(&c.Status)
		in.str(&c.ServiceID)
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

// strMap returns m with its keys and values interned: a new map of
// exactly m's size (nil for nil, a shared empty map is not made).
func (in *interner) strMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		in.str(&k)
		in.str(&v)
		out[k] = v
	}
	return out
}
