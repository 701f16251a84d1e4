package local

import (
	"maps"
	"slices"
	"strings"

	"github.com/chorusdns/chorus/catalog"
)

// Building a record at the cost of the change. The State remembers the
// pieces (services and checks, with their leaves) of the last record it
// built and the IDs of the pieces changed since (every change of
// l.services and l.checks goes through putServiceLocked, dropServiceLocked,
// putCheckLocked and dropCheckLocked, and changes made in place call
// markServiceLocked or markCheckLocked). The next record's services and
// checks are the previous one's Lists with the changed pieces put in or
// taken out (catalog.List.Apply copies only the chunks they fall in), and
// its hash tree is the previous tree with those leaves replaced
// (catalog.PieceTree.With): no walk of the maps, no copy of the unchanged
// pieces and no hashing beyond the changed ones.

// recordCache is the last record's pieces and what changed since.
type recordCache struct {
	ok     bool // the fields below describe the last record
	svcs   catalog.List[catalog.Service]
	chks   catalog.List[catalog.Check]
	dirtyS map[string]struct{} // service IDs changed since
	dirtyC map[string]struct{} // check IDs changed since
}

func (rc *recordCache) reset(rec *catalog.NodeRecord) {
	rc.ok = true
	rc.svcs, rc.chks = rec.Services, rec.Checks
	clear(rc.dirtyS)
	clear(rc.dirtyC)
}

// markServiceLocked notes that service id changed: the service, its
// maintenance check and the checks bound to it (they carry its name).
func (l *State) markServiceLocked(id string) {
	rc := &l.rc
	if rc.dirtyS == nil {
		rc.dirtyS = map[string]struct{}{}
	}
	rc.dirtyS[id] = struct{}{}
	l.markCheckLocked(catalog.ServiceMaintCheckPrefix + id)
	for cid := range l.bySvc[id] {
		l.markCheckLocked(cid)
	}
}

// markCheckLocked notes that check id (or a maintenance check) changed.
func (l *State) markCheckLocked(id string) {
	rc := &l.rc
	if rc.dirtyC == nil {
		rc.dirtyC = map[string]struct{}{}
	}
	rc.dirtyC[id] = struct{}{}
}

// putServiceLocked sets service id to s (replacing any).
func (l *State) putServiceLocked(id string, s *localService) {
	l.services[id] = s
	l.markServiceLocked(id)
}

// dropServiceLocked removes service id, if any.
func (l *State) dropServiceLocked(id string) {
	if _, ok := l.services[id]; ok {
		delete(l.services, id)
		l.markServiceLocked(id)
	}
}

// patchRecordLocked returns the next record built from the last one and
// the pieces changed since, with its tree attached, or nil when there is
// no last record to start from (the caller builds it whole).
func (l *State) patchRecordLocked() *catalog.NodeRecord {
	rc := &l.rc
	if !rc.ok || l.pubTree == nil {
		return nil
	}
	rec := &catalog.NodeRecord{Node: l.node, Version: l.version, Gossip: l.gossip}
	var set, del []catalog.Leaf
	svcIDs := slices.Sorted(maps.Keys(rc.dirtyS))
	rec.Services = patchPieces(rc.svcs, l.pubTree, svcIDs, func(s *catalog.Service) string { return s.ID },
		func(id string) (catalog.Service, catalog.Leaf, bool) {
			s := l.services[id]
			if b := l.builtinLocked(id); b != nil {
				l.shadowLocked(id, s != nil)
				if s == nil {
					return b.svc, b.leaf, true
				}
			}
			if s == nil {
				return catalog.Service{}, catalog.Leaf{}, false
			}
			lf, _ := l.serviceLeafLocked(s)
			return s.Service, lf, true
		}, catalog.PieceService, &set, &del)
	chkIDs := slices.Sorted(maps.Keys(rc.dirtyC))
	rec.Checks = patchPieces(rc.chks, l.pubTree, chkIDs, func(c *catalog.Check) string { return c.CheckID },
		l.checkPieceLocked, catalog.PieceCheck, &set, &del)
	t := l.pubTree.With(set, del)
	l.pubTree = t
	rec.SetPieceTree(t)
	rc.svcs, rc.chks = rec.Services, rec.Checks
	clear(rc.dirtyS)
	clear(rc.dirtyC)
	return rec
}

// checkPieceLocked is check id as the record carries it: a maintenance
// check derived from the node's or a service's maintenance mode, or a
// check of l.checks.
func (l *State) checkPieceLocked(id string) (catalog.Check, catalog.Leaf, bool) {
	var cc catalog.Check
	switch {
	case id == catalog.NodeMaintCheckID:
		if l.nodeMaint == nil {
			return cc, catalog.Leaf{}, false
		}
		cc = l.nodeMaintCheck()
	case strings.HasPrefix(id, catalog.ServiceMaintCheckPrefix):
		s := l.services[strings.TrimPrefix(id, catalog.ServiceMaintCheckPrefix)]
		if s == nil || s.Maint == nil {
			return cc, catalog.Leaf{}, false
		}
		cc = l.serviceMaintCheck(s)
	default:
		c := l.checks[id]
		if c == nil {
			return cc, catalog.Leaf{}, false
		}
		cc, _ = l.checkRecordLocked(c)
		return cc, c.leaf, true
	}
	lf, _, _ := catalog.CheckLeaf(&cc)
	return cc, lf, true
}

// patchPieces returns old (sorted by key; prev is the tree of the record
// it belongs to) with the pieces named in ids (sorted) replaced by their
// current value, added, or removed when get finds none; it appends their
// leaves to set, or to del for those removed. A piece whose leaf is the
// one prev holds did not change (a re-registration that rebuilt a check
// as it was) and is skipped; when none changed, old itself is returned
// (records are never modified, so they share it). The new List shares
// every chunk of old that no change falls in.
func patchPieces[T any](old catalog.List[T], prev *catalog.PieceTree, ids []string, key func(*T) string,
	get func(id string) (T, catalog.Leaf, bool), kind byte, set, del *[]catalog.Leaf) catalog.List[T] {
	var edits []catalog.Edit[T]
	for _, id := range ids {
		v, lf, ok := get(id)
		pl, had := prev.Leaf(kind, id)
		if ok == had && (!ok || pl.Sum == lf.Sum) {
			continue
		}
		switch {
		case ok:
			edits = append(edits, catalog.Edit[T]{ID: id, Value: v})
			*set = append(*set, lf)
		case had:
			edits = append(edits, catalog.Edit[T]{ID: id, Delete: true})
			*del = append(*del, catalog.Leaf{Kind: kind, ID: id})
		}
	}
	return old.Apply(key, edits)
}
