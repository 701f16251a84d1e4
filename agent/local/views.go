package local

import (
	"sort"

	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/checks"
)

// CheckView is one check of this node as the agent API shows it.
type CheckView struct {
	Check catalog.Check
	// Def is the check's definition; zero for the maintenance checks.
	Def checks.Definition
	// ServiceTags are the tags of the service the check belongs to.
	ServiceTags []string
	// External is set for checks of external services.
	External bool
}

// Record returns the current record of this node. The caller owns it.
func (l *State) Record() *catalog.NodeRecord {
	l.mu.Lock()
	rec := l.recordLocked()
	l.mu.Unlock()
	// A new record: its Lists are fresh, no one else holds them.
	for _, s := range rec.Services.All() {
		*s = s.Clone()
	}
	return rec
}

// Services returns copies of the services registered through the agent
// API and config files (not external ones), sorted by ID.
func (l *State) Services() []catalog.Service {
	l.mu.Lock()
	out := make([]catalog.Service, 0, len(l.services))
	for _, s := range l.services {
		if !isExternal(s) {
			out = append(out, s.Service.Clone())
		}
	}
	l.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Service returns a copy of the agent-registered service id.
func (l *State) Service(id string) (catalog.Service, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.services[id]
	if s == nil || isExternal(s) {
		return catalog.Service{}, false
	}
	return s.Service.Clone(), true
}

// Checks returns every check of this node (maintenance checks included),
// sorted as the record sorts them.
func (l *State) Checks() []CheckView {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := l.recordLocked()
	out := make([]CheckView, 0, rec.Checks.Len())
	for _, c := range rec.Checks.All() {
		v := CheckView{Check: *c}
		if s := l.services[c.ServiceID]; s != nil {
			v.ServiceTags = s.Service.Tags
			v.External = isExternal(s)
		}
		if lc := l.checks[c.CheckID]; lc != nil {
			v.Def = lc.Def
		}
		out = append(out, v)
	}
	return out
}

// IsExternal reports whether serviceID is an external service of this
// agent (registered through the catalog API).
func (l *State) IsExternal(serviceID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return isExternal(l.services[serviceID])
}

// CheckIsExternal reports whether checkID belongs to an external service.
func (l *State) CheckIsExternal(checkID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.checks[checkID]
	return c != nil && isExternal(l.services[c.Def.ServiceID])
}

// SetEnableScriptChecks changes whether later registrations may carry
// script checks: any (api) or those of config-file services only (local).
// A reload calls it.
func (l *State) SetEnableScriptChecks(api, local bool) {
	l.scriptChecks.Store(api)
	l.localScriptChecks.Store(local)
	l.runner.SetEnableScriptChecks(api || local)
}

// scriptsAllowed reports whether a definition from source may carry
// script checks.
func (l *State) scriptsAllowed(source string) bool {
	return l.scriptChecks.Load() || (source == sourceConfig && l.localScriptChecks.Load())
}
