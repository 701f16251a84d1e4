package local

import (
	"slices"
	"strings"

	"github.com/chorusdns/chorus/catalog"
)

// builtinService is a service this agent adds to its own node record
// besides its registrations (SetBuiltin), with its leaf in the record's
// hash tree and the length of its JSON, computed once.
type builtinService struct {
	svc  catalog.Service
	leaf catalog.Leaf
	size int
}

// SetBuiltin sets the services this agent adds to its own node record
// besides its registrations: the agent's built-in services. They are
// pieces of every record like any service (in ID order, their leaves in
// the record's hash tree), so a record costs the same with them, but
// they are not registrations: they are neither persisted nor listed by
// Services. A registration whose ID is a built-in service's takes its
// place in the record (logged once while it does); the built-in one comes
// back when the registration leaves. svcs must not be modified
// afterwards. It fails, setting nothing, when a service does not encode.
// Call it before the first Publish; a later call makes the next record a
// whole rebuild.
func (l *State) SetBuiltin(svcs []catalog.Service) error {
	list := make([]builtinService, 0, len(svcs))
	for _, s := range svcs {
		lf, n, err := catalog.ServiceLeaf(&s)
		if err != nil {
			return err
		}
		list = append(list, builtinService{svc: s, leaf: lf, size: n})
	}
	slices.SortFunc(list, func(a, b builtinService) int { return strings.Compare(a.svc.ID, b.svc.ID) })
	l.mu.Lock()
	defer l.mu.Unlock()
	l.builtin = list
	l.rc.ok = false
	l.sizeKnown = false
	return nil
}

// builtinLocked returns the built-in service with ID id, or nil.
func (l *State) builtinLocked(id string) *builtinService {
	for i := range l.builtin {
		if l.builtin[i].svc.ID == id {
			return &l.builtin[i]
		}
	}
	return nil
}

// shadowLocked notes whether a registration holds built-in service id's
// place in the record being built, and logs it once while it does.
func (l *State) shadowLocked(id string, taken bool) {
	if !taken {
		delete(l.shadowed, id)
		return
	}
	if l.shadowed[id] {
		return
	}
	if l.shadowed == nil {
		l.shadowed = map[string]bool{}
	}
	l.shadowed[id] = true
	l.logger.Warn("a registered service has the built-in service's ID; the registration takes its place", "service_id", id)
}
