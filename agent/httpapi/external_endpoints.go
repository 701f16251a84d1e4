package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/catalog"
)

// catalogRegistration is the body of Consul's PUT /v1/catalog/register
// (api.CatalogRegistration). Fields Chorus has no use for (ID,
// TaggedAddresses, NodeMeta, SkipNodeUpdate, Check.Definition…) are
// accepted and ignored.
type catalogRegistration struct {
	Node       string
	Address    string
	Datacenter string
	Service    *struct {
		ID      string
		Service string
		Name    string // accepted as a spelling of Service
		Tags    []string
		Address string
		Port    int
		Meta    map[string]string
		Weights *catalog.Weights
	}
	Check  *registrationCheck
	Checks []registrationCheck
}

type registrationCheck struct {
	Node      string
	CheckID   string
	Name      string
	Status    string
	Notes     string
	Output    string
	ServiceID string
}

// catalogDeregistration is the body of PUT /v1/catalog/deregister.
type catalogDeregistration struct {
	Node       string
	Datacenter string
	ServiceID  string
	CheckID    string
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

func (a *Server) checkBodyDC(dc string) error {
	if dc == "" || dc == a.cfg().Datacenter {
		return nil
	}
	return errorf(http.StatusBadRequest, "datacenter %q: this agent serves only datacenter %q", dc, a.cfg().Datacenter)
}

// apiCatalogRegister registers an external service, owned by this agent.
func (a *Server) apiCatalogRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var body catalogRegistration
	if err := decodeStrict(b, &body); err != nil {
		return nil, err
	}
	if err := a.checkBodyDC(body.Datacenter); err != nil {
		return nil, err
	}
	if body.Service == nil {
		return nil, errorf(http.StatusBadRequest, "Service is required: Chorus registers external services, not bare nodes or node-level checks (see docs/api.md)")
	}
	s := body.Service
	if err := pathID("Service.ID", s.ID); err != nil {
		return nil, err
	}
	name := s.Service
	if name == "" {
		name = s.Name
	}
	reg := local.ExternalRegistration{
		Node: body.Node, Address: body.Address,
		Service: catalog.Service{ID: s.ID, Name: name, Tags: s.Tags, Address: s.Address, Port: s.Port, Meta: s.Meta},
	}
	if s.Weights != nil {
		reg.Service.Weights = *s.Weights
	}
	svcID := s.ID
	if svcID == "" {
		svcID = name
	}
	all := body.Checks
	if body.Check != nil {
		all = append([]registrationCheck{*body.Check}, all...)
	}
	for _, c := range all {
		if c.ServiceID != "" && c.ServiceID != svcID {
			return nil, errorf(http.StatusBadRequest, "check %q names service %q, not the registered service %q", c.CheckID, c.ServiceID, svcID)
		}
		if err := pathID("CheckID", c.CheckID); err != nil {
			return nil, err
		}
		if c.Node != "" && c.Node != body.Node {
			return nil, errorf(http.StatusBadRequest, "check %q names node %q, not the registered node %q", c.CheckID, c.Node, body.Node)
		}
		reg.Checks = append(reg.Checks, local.ExternalCheck{CheckID: c.CheckID, Name: c.Name, Notes: c.Notes, Status: c.Status, Output: c.Output})
	}
	if err := a.local.RegisterExternal(reg); err != nil {
		return nil, err
	}
	return true, nil
}

// apiCatalogDeregister removes external services owned by this agent.
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
	if err := a.local.DeregisterExternal(body.Node, body.ServiceID, body.CheckID); err != nil {
		return nil, err
	}
	return true, nil
}
