package catalog

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RemoteDatacenter is another datacenter as this agent knows it: the
// newest summary of it that reached this agent, as a Snapshot of its own
// (one alive node per summarised node, each instance carrying one check
// with the instance's aggregated health). RemoteDatacenter values belong
// to a Snapshot and must not be modified.
type RemoteDatacenter struct {
	Name string
	// Version is the summary's version (newest wins).
	Version uint64
	// Confirmed is when a speaker of this datacenter last saw the remote
	// datacenter reachable.
	Confirmed time.Time
	// RTT is the WAN round-trip time to the datacenter as a speaker of
	// this datacenter estimates it; 0 when unknown.
	RTT time.Duration
	// Stale marks a summary that could not be refreshed for a while; it is
	// still answered from.
	Stale bool
	// Snapshot holds the remote datacenter's instances. Its indexes are
	// its own, not this agent's.
	Snapshot *Snapshot
}

type remoteSet struct {
	byName map[string]*RemoteDatacenter // lower-case name
	sorted []*RemoteDatacenter          // by RTT (unknown last), then name
	index  uint64                       // the local index at which the set last changed
}

// SetRemotes replaces the set of remote datacenters and publishes a new
// snapshot, unless every entry is the same (same pointer) as before. The
// store keeps rs and its elements: the caller must not modify them
// afterwards.
func (s *Store) SetRemotes(rs []*RemoteDatacenter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.remotes
	if prev != nil && len(prev.sorted) == len(rs) {
		same := true
		for _, r := range rs {
			if prev.byName[strings.ToLower(r.Name)] != r {
				same = false
				break
			}
		}
		if same {
			return
		}
	} else if prev == nil && len(rs) == 0 {
		return
	}
	set := &remoteSet{byName: make(map[string]*RemoteDatacenter, len(rs))}
	for _, r := range rs {
		set.byName[strings.ToLower(r.Name)] = r
	}
	for _, r := range set.byName {
		set.sorted = append(set.sorted, r)
	}
	slices.SortFunc(set.sorted, func(a, b *RemoteDatacenter) int {
		switch {
		case a.RTT == b.RTT:
			return strings.Compare(a.Name, b.Name)
		case a.RTT == 0:
			return 1
		case b.RTT == 0:
			return -1
		case a.RTT < b.RTT:
			return -1
		}
		return 1
	})
	// The new snapshot's index is the one publishLocked assigns.
	set.index = max(s.index+1, uint64(s.now().UnixMilli()))
	s.remotes = set
	s.publishLocked()
}

// Remote returns the remote datacenter named dc (case-insensitive).
func (s *Snapshot) Remote(dc string) (*RemoteDatacenter, bool) {
	if s.remotes == nil {
		return nil, false
	}
	r, ok := s.remotes.byName[strings.ToLower(dc)]
	return r, ok
}

// Remotes returns the remote datacenters, nearest first (by RTT; unknown
// RTTs last), then by name. The slice must not be modified.
func (s *Snapshot) Remotes() []*RemoteDatacenter {
	if s.remotes == nil {
		return nil
	}
	return s.remotes.sorted
}

// RemotesIndex is the index at which the set of remote datacenters or any
// of their summaries last changed; 0 when there has never been one.
func (s *Snapshot) RemotesIndex() uint64 {
	if s.remotes == nil {
		return 0
	}
	return s.remotes.index
}

// MetaFailover is the service meta key naming where DNS and
// /v1/health/service?failover answer from when the local datacenter has
// no healthy instance of the service (see ParseFailover).
const MetaFailover = "chorus-failover"

// Failover is a parsed failover rule: datacenters in order, each either
// named or "the n nearest" (by WAN round-trip time).
type Failover struct {
	items []failoverItem
}

type failoverItem struct {
	dc      string // lower case; "" for a nearest item
	nearest int
}

// maxFailoverItems bounds a rule's length.
const maxFailoverItems = 32

// ParseFailover parses a failover rule: a comma-separated list of
// datacenter names and "nearest:N" items (the N remote datacenters
// closest by WAN round-trip time that the list has not named before
// them). Spaces around items are ignored; "" is the empty rule.
func ParseFailover(spec string) (Failover, error) {
	var f Failover
	if strings.TrimSpace(spec) == "" {
		return f, nil
	}
	parts := strings.Split(spec, ",")
	if len(parts) > maxFailoverItems {
		return f, fmt.Errorf("failover %q: more than %d items: %w", spec, maxFailoverItems, ErrInvalid)
	}
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if n, ok := strings.CutPrefix(strings.ToLower(p), "nearest:"); ok {
			k, err := strconv.Atoi(n)
			if err != nil || k < 1 || k > 64 {
				return Failover{}, fmt.Errorf("failover %q: %q: want nearest:N with N from 1 to 64: %w", spec, p, ErrInvalid)
			}
			f.items = append(f.items, failoverItem{nearest: k})
			continue
		}
		if err := ValidateLabel("failover datacenter", p); err != nil {
			return Failover{}, fmt.Errorf("failover %q: %w", spec, err)
		}
		f.items = append(f.items, failoverItem{dc: strings.ToLower(p)})
	}
	return f, nil
}

// Empty reports whether the rule names no datacenter.
func (f Failover) Empty() bool { return len(f.items) == 0 }

// Order returns the remote datacenters of snap the rule names, in the
// rule's order, without repeats and without local (this agent's own
// datacenter). Named datacenters that snap does not know are left out.
func (f Failover) Order(snap *Snapshot, local string) []*RemoteDatacenter {
	var out []*RemoteDatacenter
	seen := func(r *RemoteDatacenter) bool { return slices.Contains(out, r) }
	for _, it := range f.items {
		if it.dc != "" {
			if strings.EqualFold(it.dc, local) {
				continue
			}
			if r, ok := snap.Remote(it.dc); ok && !seen(r) {
				out = append(out, r)
			}
			continue
		}
		n := 0
		for _, r := range snap.Remotes() {
			if n == it.nearest {
				break
			}
			if strings.EqualFold(r.Name, local) || seen(r) {
				continue
			}
			out = append(out, r)
			n++
		}
	}
	return out
}
