package local

import (
	"fmt"
	"sort"

	"github.com/chorusdns/chorus/catalog"
)

// Legacy external services. Before external nodes had records of their
// own (externals.go), an agent kept a /v1/catalog/register service as a
// service of its own node record (Source "external", the external node's
// name in the service meta under ExternalNodeMetaKey, static checks as
// never-expiring TTL checks). A data dir written then still holds them:
// LegacyExternals lists them as registrations so that the agent moves
// them to external nodes at start (agent/externals.go), then removes them
// from this node with DeregisterService.

// ExternalNodeMetaKey is the service meta key under which legacy external
// services named their external node.
const ExternalNodeMetaKey = "external-node"

// sourceExternal marks legacy external services.
const sourceExternal = "external"

// isExternal reports whether a local service is a legacy external
// service. The flag on the service is lost when the agent restarts (the
// persisted definition does not carry it), the source is not.
func isExternal(s *localService) bool {
	return s != nil && (s.Source == sourceExternal || s.Service.External)
}

// refuseExternalID rejects an agent registration that would replace a
// legacy external service.
func (l *State) refuseExternalID(def ServiceDefinition) error {
	id := def.ID
	if id == "" {
		id = def.Name
	}
	if l.IsExternal(id) {
		return fmt.Errorf("service ID %q is an external service registered through /v1/catalog/register: %w", id, ErrInvalid)
	}
	return nil
}

// LegacyExternal is a legacy external service as a registration of its
// external node, with the local service ID to remove once it is moved.
type LegacyExternal struct {
	ServiceID    string
	Registration NodeRegistration
}

// LegacyExternals returns the legacy external services this agent holds,
// sorted by service ID, each as the registration that recreates it on
// its external node with its checks' current states.
func (l *State) LegacyExternals() []LegacyExternal {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []LegacyExternal
	for id, s := range l.services {
		if !isExternal(s) {
			continue
		}
		svc := s.Service.Clone()
		node := svc.Meta[ExternalNodeMetaKey]
		delete(svc.Meta, ExternalNodeMetaKey)
		if len(svc.Meta) == 0 {
			svc.Meta = nil
		}
		svc.External = false
		reg := NodeRegistration{Node: node, Address: svc.Address, Service: &svc}
		for _, cid := range s.CheckIDs {
			c := l.checks[cid]
			if c == nil {
				continue
			}
			reg.Checks = append(reg.Checks, catalog.Check{CheckID: cid, Name: c.Def.Name, Notes: c.Def.Notes,
				Status: c.Status, Output: c.Output, ServiceID: id})
		}
		out = append(out, LegacyExternal{ServiceID: id, Registration: reg})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ServiceID < out[j].ServiceID })
	return out
}
