package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/catalog"
)

// catalogRegistration is the body of Consul's PUT /v1/catalog/register
// (api.CatalogRegistration, structs.RegisterRequest). Every field the
// consul/api client sends is decoded: those Chorus keeps are applied, the
// others must be empty (zero) or the request is refused naming them.
type catalogRegistration struct {
	ID              string
	Node            string
	Address         string
	TaggedAddresses map[string]string
	NodeMeta        map[string]string
	Datacenter      string
	Service         *registrationService
	Check           *registrationCheck
	Checks          []registrationCheck
	SkipNodeUpdate  bool
	Partition       string
	Namespace       string
	Locality        json.RawMessage
}

// registrationService is Consul's AgentService as a catalog registration
// carries it.
type registrationService struct {
	Kind              string
	ID                string
	Service           string
	Name              string // accepted as a spelling of Service
	Tags              []string
	Meta              map[string]string
	Port              int
	Ports             []catalog.ServicePort
	Address           string
	SocketPath        string
	TaggedAddresses   map[string]catalog.ServiceAddress
	Weights           *catalog.Weights
	EnableTagOverride bool
	Proxy             json.RawMessage
	Connect           json.RawMessage
	AI                json.RawMessage
	Locality          *catalog.Locality
	PeerName          string
	Namespace         string
	Partition         string
	Datacenter        string
	// Read-only fields of the answer shape; a client that registers what
	// it read sends them back.
	CreateIndex, ModifyIndex uint64
	ContentHash              string
}

// registrationCheck is Consul's HealthCheck as a catalog registration
// carries it: a check whose status is set by the registration (Consul
// runs no catalog check either). It shares the answer's fields
// (checkFields) but two: its Definition spells durations as Consul's
// client sends them (registrationCheckDefinition), and it carries
// Namespace, Partition and PeerName, which must be empty.
type registrationCheck struct {
	checkFields
	Definition                     *registrationCheckDefinition
	Namespace, Partition, PeerName string
}

// registrationCheckDefinition is Consul's HealthCheckDefinition as a
// catalog registration carries it: durations as strings or nanoseconds
// (Consul's client sends the *Duration spellings too, older ones only
// those), the rest kept as given (catalog.CheckDefinition).
type registrationCheckDefinition struct {
	catalog.CheckDefinition
	Interval, IntervalDuration                                             json.RawMessage
	Timeout, TimeoutDuration                                               json.RawMessage
	TTL                                                                    json.RawMessage
	DeregisterCriticalServiceAfter, DeregisterCriticalServiceAfterDuration json.RawMessage
	SessionName                                                            string
}

// catalogDeregistration is the body of PUT /v1/catalog/deregister.
type catalogDeregistration struct {
	Node       string
	Datacenter string
	ServiceID  string
	CheckID    string
	Namespace  string
	Partition  string
}

// decodeStrict decodes one JSON object, naming the problem on error.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "%v", local.JSONError(err))
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "malformed JSON: trailing data after the object")
	}
	return nil
}

// checkBodyDC answers a body's Datacenter as checkDC answers ?dc=: any
// datacenter but this agent's has no path (HTTP 500, as Consul answers).
func (a *Server) checkBodyDC(dc string) error { return bodyDC(dc, a.cfg().Datacenter) }

func bodyDC(dc, own string) error {
	if dc == "" || strings.EqualFold(dc, own) {
		return nil
	}
	return errorf(http.StatusInternalServerError, "No path to datacenter")
}

// rawSet reports whether a raw JSON field holds a value (not absent, not
// null, not an empty object or list).
func rawSet(m json.RawMessage) bool {
	s := strings.TrimSpace(string(m))
	return s != "" && s != "null" && s != "{}" && s != "[]"
}

// refuseFields returns a 400 naming the first field that is set but
// that Chorus cannot keep for a catalog registration.
func refuseFields(fields ...struct {
	name string
	set  bool
}) error {
	for _, f := range fields {
		if f.set {
			return errorf(http.StatusBadRequest, "%s is not supported by Chorus's /v1/catalog/register (see docs/api.md)", f.name)
		}
	}
	return nil
}

type field = struct {
	name string
	set  bool
}

func enterprise(v string) bool { return v != "" && v != "default" }

// apiCatalogRegister applies Consul's catalog registration: to an
// external node (owned by this agent from then on, see local.Externals),
// or, for this agent's own node, as agent registrations.
func (a *Server) apiCatalogRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	reg, err := decodeCatalogRegistration(b, a.cfg().Datacenter)
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(reg.Node, a.cfg().NodeName) { // node names are case-insensitive, as in Consul
		return nil, a.registerOwnNode(reg)
	}
	x := a.externals
	if x == nil {
		return nil, errorf(http.StatusInternalServerError, "external nodes are not set up on this agent")
	}
	if err := x.Register(reg); err != nil {
		return nil, err
	}
	return true, nil
}

// decodeCatalogRegistration decodes the body of PUT /v1/catalog/register
// for an agent of datacenter dc. Anything it cannot apply is a 400 naming
// the field.
func decodeCatalogRegistration(b []byte, dc string) (local.NodeRegistration, error) {
	var body catalogRegistration
	if err := decodeStrict(b, &body); err != nil {
		return local.NodeRegistration{}, err
	}
	reg, err := body.registration(dc)
	if err != nil {
		return local.NodeRegistration{}, err
	}
	return reg, nil
}

// registration checks a decoded body and turns it into what
// local.Externals applies.
func (body *catalogRegistration) registration(dc string) (local.NodeRegistration, error) {
	var none local.NodeRegistration
	if err := bodyDC(body.Datacenter, dc); err != nil {
		return none, err
	}
	if body.Node == "" {
		return none, errorf(http.StatusBadRequest, "Node is required")
	}
	if err := refuseFields(field{"Partition", enterprise(body.Partition)}, field{"Namespace", enterprise(body.Namespace)},
		field{"Locality", rawSet(body.Locality)}); err != nil {
		return none, err
	}
	if body.ID != "" && !strings.EqualFold(body.ID, nodeID(body.Node)) {
		return none, errorf(http.StatusBadRequest, "ID %q: Chorus derives a node's ID from its name (%q is %s)", body.ID, body.Node, nodeID(body.Node))
	}
	reg := local.NodeRegistration{
		Node: body.Node, Address: body.Address, TaggedAddresses: body.TaggedAddresses,
		NodeMeta: body.NodeMeta, SkipNodeUpdate: body.SkipNodeUpdate,
	}
	if s := body.Service; s != nil {
		if err := refuseFields(
			field{"Service.Kind", s.Kind != ""}, field{"Service.Proxy", rawSet(s.Proxy)}, field{"Service.Connect", rawSet(s.Connect)}, field{"Service.AI", rawSet(s.AI)},
			field{"Service.PeerName", s.PeerName != ""}, field{"Service.Namespace", enterprise(s.Namespace)},
			field{"Service.Partition", enterprise(s.Partition)},
		); err != nil {
			return none, err
		}
		if err := bodyDC(s.Datacenter, dc); err != nil {
			return none, err
		}
		if err := pathID("Service.ID", s.ID); err != nil {
			return none, err
		}
		name := s.Service
		if name == "" {
			name = s.Name
		}
		svc := catalog.Service{ID: s.ID, Name: name, Tags: s.Tags, Address: s.Address, Port: s.Port, Meta: s.Meta,
			SocketPath: s.SocketPath, TaggedAddresses: s.TaggedAddresses, EnableTagOverride: s.EnableTagOverride, Locality: s.Locality}
		if s.Weights != nil {
			svc.Weights = *s.Weights
		}
		if len(s.Ports) > 0 {
			// As for agent registrations: the default port is the Port.
			if s.Port != 0 {
				return none, errorf(http.StatusBadRequest, "Service.Port and Service.Ports: cannot set both (give the default port in Ports)")
			}
			svc.Ports = s.Ports
			svc.Port = svc.DefaultPort()
		}
		reg.Service = &svc
	}
	all := body.Checks
	if body.Check != nil {
		all = append([]registrationCheck{*body.Check}, all...)
	}
	for _, c := range all {
		if err := pathID("CheckID", c.CheckID); err != nil {
			return none, err
		}
		if c.Node != "" && c.Node != body.Node {
			return none, errorf(http.StatusBadRequest, "check %q names node %q, not the registered node %q", c.CheckID, c.Node, body.Node)
		}
		if err := refuseFields(field{"Check.Namespace", enterprise(c.Namespace)}, field{"Check.Partition", enterprise(c.Partition)},
			field{"Check.PeerName", c.PeerName != ""}, field{"Check.ExposedPort", c.ExposedPort != 0}); err != nil {
			return none, err
		}
		chk := catalog.Check{CheckID: c.CheckID, Name: c.Name, Status: c.Status, Notes: c.Notes, Output: c.Output, ServiceID: c.ServiceID, Type: c.Type}
		if d := c.Definition; d != nil {
			var err error
			if chk.Interval, err = definitionDuration("Check.Definition.Interval", d.Interval, d.IntervalDuration); err != nil {
				return none, err
			}
			if chk.Timeout, err = definitionDuration("Check.Definition.Timeout", d.Timeout, d.TimeoutDuration); err != nil {
				return none, err
			}
			if d.SessionName != "" {
				return none, errorf(http.StatusBadRequest, "Check.Definition.SessionName: Chorus does not provide sessions, so a check cannot follow one")
			}
			def := d.CheckDefinition
			if len(def.Header) == 0 {
				def.Header = nil
			}
			if len(def.ScriptArgs) == 0 {
				def.ScriptArgs = nil
			}
			if def.TTL, err = definitionDuration("Check.Definition.TTL", d.TTL); err != nil {
				return none, err
			}
			if def.DeregisterCriticalServiceAfter, err = definitionDuration("Check.Definition.DeregisterCriticalServiceAfter",
				d.DeregisterCriticalServiceAfter, d.DeregisterCriticalServiceAfterDuration); err != nil {
				return none, err
			}
			if !reflect.ValueOf(def).IsZero() {
				chk.Definition = &def
			}
		}
		reg.Checks = append(reg.Checks, chk)
	}
	return reg, nil
}

// definitionDuration reads a check definition's interval or timeout, as
// Consul's client sends it (a duration string, or nanoseconds), as a Go
// duration string; "" when absent.
func definitionDuration(name string, vals ...json.RawMessage) (string, error) {
	for _, v := range vals {
		if !rawSet(v) {
			continue
		}
		var d local.Duration
		if err := json.Unmarshal(v, &d); err != nil {
			return "", errorf(http.StatusBadRequest, "%s: %v", name, err)
		}
		if time.Duration(d) != 0 {
			return time.Duration(d).String(), nil
		}
	}
	return "", nil
}

// ownCheckTTL is the TTL of a static check registered for this agent's
// own node through the catalog: its status is what registrations (or the
// agent's TTL endpoints) set, and it never expires.
const ownCheckTTL = 100 * 365 * 24 * time.Hour

// registerOwnNode applies a catalog registration of this agent's own
// node: the service becomes an agent-registered service and the checks
// static agent checks, persisted like any (Consul's agent would remove
// them from the catalog at its next anti-entropy sync instead). The node's
// own fields come from the agent's configuration: a registration may
// repeat them but not change them.
func (a *Server) registerOwnNode(reg local.NodeRegistration) error {
	self := a.local.Node()
	if reg.Address != "" && reg.Address != self.Address {
		return errorf(http.StatusBadRequest, "node %q is this agent, whose address %q comes from its configuration (advertise): it cannot be changed to %q", self.Name, self.Address, reg.Address)
	}
	// A client that read the node may send back what it read (Chorus's
	// rendering adds consul-network-segment, the zone and lan/wan
	// addresses), or what the configuration says: either is no change.
	if len(reg.NodeMeta) > 0 && !maps.Equal(reg.NodeMeta, self.Meta) && !maps.Equal(reg.NodeMeta, nodeMeta(self)) {
		return errorf(http.StatusBadRequest, "node %q is this agent, whose NodeMeta comes from its configuration (node_meta): it cannot be changed here", self.Name)
	}
	if len(reg.TaggedAddresses) > 0 && !maps.Equal(reg.TaggedAddresses, self.TaggedAddresses) && !maps.Equal(reg.TaggedAddresses, taggedAddresses(self)) {
		return errorf(http.StatusBadRequest, "node %q is this agent, whose TaggedAddresses come from its configuration: they cannot be changed here", self.Name)
	}
	// Checks are validated before anything is registered.
	defs := make([]local.CheckDefinition, 0, len(reg.Checks))
	outputs := make([]string, 0, len(reg.Checks))
	for _, c := range reg.Checks {
		id := c.CheckID
		if id == "" {
			id = c.Name
		}
		if id == "" {
			return errorf(http.StatusBadRequest, "a check needs a CheckID or a Name")
		}
		status := c.Status
		if status == "" {
			status = catalog.HealthCritical
		}
		if !catalog.ValidStatus(status) {
			return errorf(http.StatusBadRequest, "check %q: status %q: want passing, warning or critical", id, status)
		}
		if c.ServiceID != "" && (reg.Service == nil || reg.Service.ID != c.ServiceID && !(reg.Service.ID == "" && reg.Service.Name == c.ServiceID)) {
			if _, ok := a.local.Service(c.ServiceID); !ok {
				return errorf(http.StatusBadRequest, "check %q names service %q, which node %q does not have", id, c.ServiceID, self.Name)
			}
		}
		defs = append(defs, local.CheckDefinition{CheckID: id, Name: c.Name, Notes: c.Notes, ServiceID: c.ServiceID, Status: status, TTL: local.Duration(ownCheckTTL)})
		outputs = append(outputs, c.Output)
	}
	if s := reg.Service; s != nil {
		def := local.ServiceDefinition{ID: s.ID, Name: s.Name, Tags: s.Tags, Address: s.Address, Port: s.Port, Meta: s.Meta}
		def.SocketPath, def.TaggedAddresses, def.EnableTagOverride, def.Locality = s.SocketPath, s.TaggedAddresses, s.EnableTagOverride, s.Locality
		if len(s.Ports) > 0 {
			def.Port, def.Ports = 0, s.Ports
		}
		if s.Weights != (catalog.Weights{}) {
			w := s.Weights
			def.Weights = &w
		}
		if err := a.local.RegisterService(def); err != nil {
			return err
		}
	}
	for i, def := range defs {
		if err := a.local.RegisterCheck(def); err != nil {
			return err
		}
		if err := a.local.UpdateTTL(def.CheckID, def.Status, outputs[i]); err != nil {
			return err
		}
	}
	return nil
}

// apiCatalogDeregister applies Consul's catalog deregistration from any
// agent: to an external node (whoever owns it), or to this agent's own
// services and checks.
func (a *Server) apiCatalogDeregister(w http.ResponseWriter, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var body catalogDeregistration
	if err := decodeStrict(b, &body); err != nil {
		return nil, err
	}
	if err := a.checkBodyDC(body.Datacenter); err != nil {
		return nil, err
	}
	if err := refuseFields(field{"Partition", enterprise(body.Partition)}, field{"Namespace", enterprise(body.Namespace)}); err != nil {
		return nil, err
	}
	if body.Node == "" {
		return nil, errorf(http.StatusBadRequest, "Node is required")
	}
	if body.ServiceID != "" && body.CheckID != "" {
		return nil, errorf(http.StatusBadRequest, "give ServiceID or CheckID, not both")
	}
	if strings.EqualFold(body.Node, a.cfg().NodeName) {
		var err error
		switch {
		case body.ServiceID != "":
			err = a.local.DeregisterService(body.ServiceID)
		case body.CheckID != "":
			err = a.local.DeregisterCheck(body.CheckID)
		default:
			return nil, errorf(http.StatusBadRequest, "node %q is this agent: it leaves the catalog with PUT /v1/agent/leave", body.Node)
		}
		if err != nil && !errors.Is(err, local.ErrNotFound) {
			return nil, err
		}
		return true, nil
	}
	x := a.externals
	if x == nil {
		return nil, errorf(http.StatusInternalServerError, "external nodes are not set up on this agent")
	}
	if err := x.Deregister(body.Node, body.ServiceID, body.CheckID); err != nil {
		return nil, fmt.Errorf("deregister: %w", err)
	}
	return true, nil
}
