package local

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/checks"
)

// External services are what Consul's /v1/catalog/register creates: a
// service on a node that runs no agent (a database appliance, a SaaS
// endpoint). Chorus has no servers to hold them, so the agent that accepts
// a registration owns it: the service becomes part of that agent's own
// node record (catalog.Service.External set, the external node's name in
// the service meta under ExternalNodeMetaKey, its address as the service
// address) and is gossiped, persisted and served like the agent's other
// services. Its checks are static: their status is whatever the last
// registration (or a TTL update) said. They are kept as TTL checks that
// never expire, so the agent's existing persistence and TTL endpoints
// carry them across restarts.

// ExternalNodeMetaKey is the service meta key that names the external node
// an external service was registered for.
const ExternalNodeMetaKey = "external-node"

// sourceExternal marks local services registered through the catalog API.
const sourceExternal = "external"

// externalTTL is the TTL of an external service's static checks: long
// enough never to expire.
const externalTTL = 100 * 365 * 24 * time.Hour

// ExternalRegistration is one /v1/catalog/register request as the agent
// applies it.
type ExternalRegistration struct {
	// Node is the external node's name; Address its address, used as the
	// service address when Service.Address is empty.
	Node    string
	Address string
	Service catalog.Service
	Checks  []ExternalCheck
}

// ExternalCheck is a static check of an external service.
type ExternalCheck struct {
	CheckID string
	Name    string
	Notes   string
	// Status is passing, warning or critical; empty means critical, as
	// Consul defaults it.
	Status string
	Output string
}

// isExternal reports whether a local service was registered through the
// catalog API. The flag on the service is lost when the agent restarts
// (the persisted definition does not carry it), the source is not.
func isExternal(s *localService) bool {
	return s != nil && (s.Source == sourceExternal || s.Service.External)
}

// refuseExternalID rejects an agent registration that would replace an
// external service.
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

// RegisterExternal adds or replaces an external service owned by this
// agent, with its static checks, and returns once it is on disk and
// published. A service ID already used by an agent-registered service, or
// by another external node's service, is an error wrapping ErrInvalid.
func (l *State) RegisterExternal(reg ExternalRegistration) error {
	if reg.Node == "" {
		return fmt.Errorf("Node is required: %w", ErrInvalid)
	}
	if reg.Node == l.node.Name {
		return fmt.Errorf("Node %q is this agent: register its services with /v1/agent/service/register: %w", reg.Node, ErrInvalid)
	}
	svc := reg.Service
	if svc.Address == "" {
		svc.Address = reg.Address
	}
	if svc.Address == "" {
		return fmt.Errorf("Address is required (the external node's or the service's): %w", ErrInvalid)
	}
	if err := checkServiceLimits(svc.Meta, svc.Tags); err != nil {
		return err
	}
	svc.Meta = cloneStrings(svc.Meta)
	if svc.Meta == nil {
		svc.Meta = map[string]string{}
	}
	svc.Meta[ExternalNodeMetaKey] = reg.Node
	def := ServiceDefinition{ID: svc.ID, Name: svc.Name, Tags: svc.Tags, Address: svc.Address, Port: svc.Port, Meta: svc.Meta}
	if svc.Weights != (catalog.Weights{}) {
		w := svc.Weights
		def.Weights = &w
	}
	statuses := make(map[string]ExternalCheck, len(reg.Checks))
	for i, c := range reg.Checks {
		if c.Status == "" {
			c.Status = catalog.HealthCritical
		}
		if !catalog.ValidStatus(c.Status) {
			return fmt.Errorf("check %q: status %q: want passing, warning or critical: %w", c.CheckID, c.Status, ErrInvalid)
		}
		id := c.CheckID
		if id == "" {
			id = c.Name
		}
		if id == "" {
			id = "service:" + def.ID
			if def.ID == "" {
				id = "service:" + def.Name
			}
			if len(reg.Checks) > 1 {
				id = fmt.Sprintf("%s:%d", id, i+1)
			}
		}
		if _, dup := statuses[id]; dup {
			return fmt.Errorf("check ID %q appears twice: %w", id, ErrInvalid)
		}
		c.CheckID = id
		statuses[id] = c
		def.Checks = append(def.Checks, CheckDefinition{
			CheckID: id, Name: c.Name, Notes: c.Notes, Status: c.Status, TTL: Duration(externalTTL),
		})
	}
	built, defs, err := def.Build(false)
	if err != nil {
		return err
	}
	built.External = true

	l.mu.Lock()
	t, err := l.beginLocked(func() []string { return l.serviceKeysLocked(built.ID, defs) })
	if err != nil {
		l.mu.Unlock()
		return fmt.Errorf("register external service %q: %w", built.ID, err)
	}
	if err := l.externalConflictLocked(built.ID, reg.Node, defs); err != nil {
		t.finishLocked()
		l.mu.Unlock()
		return err
	}
	if l.sameExternalLocked(def, built.ID, statuses) {
		t.finishLocked()
		l.mu.Unlock()
		return nil
	}
	t.saveServiceAndChecks(built.ID, defs)
	removed := l.addServiceLocked(def, built, defs, serviceRawChecks(def), sourceExternal)
	now := l.now()
	for id, st := range statuses {
		c := l.checks[id]
		if c.Status != st.Status {
			c.criticalSince = time.Time{}
			if st.Status == catalog.HealthCritical {
				c.criticalSince = now
			}
		}
		c.Status, c.Output = st.Status, st.Output
	}
	if err := t.commitLocked(true); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("register external service %q: %w", built.ID, err)
	}
	l.mu.Unlock()
	err = t.wait(func() {
		for _, id := range removed {
			l.runner.Remove(id)
		}
		for _, d := range defs {
			st := statuses[d.ID]
			d.Status = st.Status
			if err := l.runner.Add(d); err != nil {
				l.logger.Error("start check", "check", d.ID, "err", err)
				continue
			}
			// Add keeps a replaced check's status; the registration sets
			// it. The local state already holds it, so the report changes
			// nothing.
			if err := l.runner.UpdateTTL(d.ID, st.Status, st.Output); err != nil && !errors.Is(err, checks.ErrStopped) {
				l.logger.Error("set external check status", "check", d.ID, "err", err)
			}
		}
		l.publish()
	})
	if err != nil {
		return fmt.Errorf("register external service %q: %w", built.ID, err)
	}
	l.logger.Debug("external service registered", "service", built.ID, "external_node", reg.Node)
	return nil
}

// externalConflictLocked refuses an external registration of service id
// for node that would take over an agent-registered service, another
// external node's service, or a check ID in use elsewhere.
func (l *State) externalConflictLocked(id, node string, defs []checks.Definition) error {
	if cur := l.services[id]; cur != nil {
		switch {
		case !isExternal(cur):
			return fmt.Errorf("service ID %q is registered on this agent through /v1/agent/service/register: %w", id, ErrInvalid)
		case cur.Service.Meta[ExternalNodeMetaKey] != node:
			return fmt.Errorf("service ID %q is already registered here for external node %q: %w", id, cur.Service.Meta[ExternalNodeMetaKey], ErrInvalid)
		}
	}
	for _, d := range defs {
		if c := l.checks[d.ID]; c != nil && c.Def.ServiceID != id {
			return fmt.Errorf("check ID %q is already used on this agent: %w", d.ID, ErrInvalid)
		}
	}
	return nil
}

// sameExternalLocked reports whether an external registration would
// change nothing: same definition, and every check in place with the
// status and output the registration gives it.
func (l *State) sameExternalLocked(def ServiceDefinition, id string, statuses map[string]ExternalCheck) bool {
	if !l.sameServiceLocked(def, id, serviceRawChecks(def), sourceExternal) {
		return false
	}
	for cid, st := range statuses {
		c := l.checks[cid]
		if c == nil || c.Status != st.Status || c.Output != st.Output {
			return false
		}
	}
	return true
}

// DeregisterExternal removes external services, as Consul's
// /v1/catalog/deregister: with serviceID that service, with checkID only
// that check, with neither every service of node. Removing what does not
// exist is not an error (Consul's deregistration is idempotent too);
// naming an agent-registered service is an error wrapping ErrInvalid.
func (l *State) DeregisterExternal(node, serviceID, checkID string) error {
	if node == "" {
		return fmt.Errorf("Node is required: %w", ErrInvalid)
	}
	l.mu.Lock()
	var ids []string
	var checkOwner *localService
	for id, s := range l.services {
		if !isExternal(s) || s.Service.Meta[ExternalNodeMetaKey] != node {
			if id == serviceID && s != nil && !isExternal(s) {
				l.mu.Unlock()
				return fmt.Errorf("service %q is registered through the agent API: use /v1/agent/service/deregister: %w", serviceID, ErrInvalid)
			}
			continue
		}
		switch {
		case serviceID != "":
			if id == serviceID {
				ids = append(ids, id)
			}
		case checkID != "":
			for _, cid := range s.CheckIDs {
				if cid == checkID {
					checkOwner = s
				}
			}
		default:
			ids = append(ids, id)
		}
	}
	var rereg *ExternalRegistration
	if serviceID == "" && checkOwner != nil {
		rereg = l.externalRegistrationLocked(checkOwner, checkID)
	}
	l.mu.Unlock()
	if rereg != nil {
		return l.RegisterExternal(*rereg)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if err := l.DeregisterService(id); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// externalRegistrationLocked rebuilds the registration of an external
// service without the check drop, keeping its checks' states.
func (l *State) externalRegistrationLocked(s *localService, drop string) *ExternalRegistration {
	svc := s.Service.Clone()
	node := svc.Meta[ExternalNodeMetaKey]
	delete(svc.Meta, ExternalNodeMetaKey)
	reg := &ExternalRegistration{Node: node, Address: svc.Address, Service: svc}
	for _, cid := range s.CheckIDs {
		c := l.checks[cid]
		if cid == drop || c == nil {
			continue
		}
		reg.Checks = append(reg.Checks, ExternalCheck{CheckID: cid, Name: c.Def.Name, Notes: c.Def.Notes, Status: c.Status, Output: c.Output})
	}
	return reg
}

func cloneStrings(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
