package catalog

import (
	"fmt"
	"sort"
)

// External nodes are nodes that run no agent (a database, a SaaS
// endpoint, an appliance), registered through Consul's
// /v1/catalog/register. Each has a record of its own, keyed by its node
// name like an agent's, with Owner naming the agent that wrote the
// version and signed it with its key. Ownership moves with the newest
// version: an agent that writes a newer version (a registration it
// accepted, or an adoption after the owner died) becomes the owner, and
// the former owner yields to it. Deregistering the node leaves a
// tombstone (Deleted) that outranks every older version wherever it
// arrives, until it is forgotten (ForgetTombstone) long after.
//
// In the catalog an external node is served whatever the gossip layer
// says of its name (it has no member status) and has no serfHealth
// check: its health is that of the checks registered for it.

// IsExternal reports whether r is an external node's record (a
// tombstone included).
func (r *NodeRecord) IsExternal() bool { return r != nil && r.Owner != "" }

// liveExternal reports whether r is an external node's record that is
// not a tombstone: the catalog serves it.
func (r *NodeRecord) liveExternal() bool { return r != nil && r.Owner != "" && !r.Deleted }

// validateExternal checks the fields of an external node's record.
func (r *NodeRecord) validateExternal() error {
	if r.Owner == "" {
		if r.Deleted {
			return fmt.Errorf("record of %q is a tombstone without an owner: %w", r.Node.Name, ErrInvalid)
		}
		if r.Node.External {
			return fmt.Errorf("external node %q has no owner: %w", r.Node.Name, ErrInvalid)
		}
		return nil
	}
	if !r.Node.External && !r.Deleted {
		return fmt.Errorf("record of %q has an owner but its node is not marked external: %w", r.Node.Name, ErrInvalid)
	}
	if err := ValidateNodeName(r.Owner); err != nil {
		return fmt.Errorf("owner of external node %q: %w", r.Node.Name, err)
	}
	if r.Owner == r.Node.Name {
		return fmt.Errorf("external node %q names itself as its owner: %w", r.Node.Name, ErrInvalid)
	}
	if r.Gossip != "" {
		return fmt.Errorf("external node %q has a gossip address: %w", r.Node.Name, ErrInvalid)
	}
	if r.Deleted && (r.Services.Len() > 0 || r.Checks.Len() > 0) {
		return fmt.Errorf("tombstone of external node %q carries services or checks: %w", r.Node.Name, ErrInvalid)
	}
	return nil
}

// Owner returns the agent that owns the node's record when the node is
// an external one, else "".
func (n *NodeEntry) Owner() string {
	if n.record == nil {
		return ""
	}
	return n.record.Owner
}

// Tombstone is a deregistered external node's last version.
type Tombstone struct {
	Node    string
	Version uint64
	Owner   string
}

// Tombstones returns the tombstones the catalog holds, sorted by node
// name. Snapshots serve nothing for a deregistered node; replication
// compares its tombstone with peers like any record. The slice must not
// be modified.
func (s *Snapshot) Tombstones() []Tombstone { return s.tombs }

// tombstonesLocked returns the tombstones after a change to the nodes
// names: prev itself when none of them is or was a tombstone (the usual
// case, O(changed nodes)), else a new list.
func (s *Store) tombstonesLocked(names []string, prev []Tombstone) []Tombstone {
	touched := false
	for _, name := range names {
		if n := s.nodes[name]; n != nil && n.rec != nil && n.rec.Deleted {
			touched = true
			break
		}
		i := sort.Search(len(prev), func(i int) bool { return prev[i].Node >= name })
		if i < len(prev) && prev[i].Node == name {
			touched = true
			break
		}
	}
	if !touched {
		return prev
	}
	var out []Tombstone
	for _, t := range prev {
		if n := s.nodes[t.Node]; n != nil && n.rec != nil && n.rec.Deleted {
			out = append(out, Tombstone{Node: t.Node, Version: n.rec.Version, Owner: n.rec.Owner})
		}
	}
	for _, name := range names {
		if n := s.nodes[name]; n != nil && n.rec != nil && n.rec.Deleted {
			i := sort.Search(len(out), func(i int) bool { return out[i].Node >= name })
			if i < len(out) && out[i].Node == name {
				continue
			}
			out = append(out[:i], append([]Tombstone{{Node: name, Version: n.rec.Version, Owner: n.rec.Owner}}, out[i:]...)...)
		}
	}
	return out
}

// ForgetTombstone removes node's tombstone if the store still holds it
// at version, and reports whether it did. A record older than the
// tombstone that arrives afterwards (from an agent cut off since before
// the deregistration) would bring the node back, so callers forget
// tombstones only long after they were written.
func (s *Store) ForgetTombstone(node string, version uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[node]
	if n == nil || n.rec == nil || !n.rec.Deleted || n.rec.Version != version || n.status != MemberNone {
		return false
	}
	delete(s.nodes, node)
	s.dirty[node] = struct{}{}
	s.publishLocked()
	return true
}

// MemberStatus returns the member status the store holds for name, as
// the gossip layer last reported it (MemberLeft until the node is
// reaped), or MemberNone. Snapshots do not serve left members; the
// adoption of external nodes needs to tell them from unknown ones.
func (s *Store) MemberStatus(name string) MemberStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[name]; n != nil {
		return n.status
	}
	return MemberNone
}
