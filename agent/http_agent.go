package agent

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/serf/serf"

	"github.com/chorusdns/chorus/catalog"
)

// agentService is Consul's AgentService JSON shape.
type agentService struct {
	Kind              string
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	TaggedAddresses   map[string]any `json:",omitempty"`
	Weights           catalog.Weights
	EnableTagOverride bool
	Datacenter        string
	ContentHash       string `json:",omitempty"`
}

func (a *Agent) toAgentService(s catalog.Service) agentService {
	tags := s.Tags
	if tags == nil {
		tags = []string{}
	}
	meta := s.Meta
	if meta == nil {
		meta = map[string]string{}
	}
	return agentService{
		ID: s.ID, Service: s.Name, Tags: tags, Meta: meta, Port: s.Port, Address: s.Address,
		Weights: s.Weights, Datacenter: a.cfg.Load().Datacenter,
	}
}

// agentMember is Consul's AgentMember JSON shape.
type agentMember struct {
	Name        string
	Addr        string
	Port        uint16
	Tags        map[string]string
	Status      int
	ProtocolMin uint8
	ProtocolMax uint8
	ProtocolCur uint8
	DelegateMin uint8
	DelegateMax uint8
	DelegateCur uint8
}

func toAgentMember(m serf.Member) agentMember {
	return agentMember{
		Name: m.Name, Addr: m.Addr.String(), Port: m.Port, Tags: m.Tags, Status: int(memberStatus(m.Status)),
		ProtocolMin: m.ProtocolMin, ProtocolMax: m.ProtocolMax, ProtocolCur: m.ProtocolCur,
		DelegateMin: m.DelegateMin, DelegateMax: m.DelegateMax, DelegateCur: m.DelegateCur,
	}
}

// nodeID derives a stable UUID-shaped node ID from the node name (Consul
// clients expect one; Chorus identifies nodes by name).
func nodeID(name string) string {
	h := sha256.Sum256([]byte("chorus-node:" + name))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func (a *Agent) apiSelf(w http.ResponseWriter, r *http.Request) (any, error) {
	cfg := a.cfg.Load()
	self := a.serf.LocalMember()
	coord, _ := a.serf.GetCoordinate()
	return map[string]any{
		"Config": map[string]any{
			"Datacenter":        cfg.Datacenter,
			"PrimaryDatacenter": cfg.Datacenter,
			"NodeName":          cfg.NodeName,
			"NodeID":            nodeID(cfg.NodeName),
			"Revision":          "",
			"Server":            false,
			"Version":           Version,
			"Product":           "chorus",
			"Zone":              cfg.Zone,
			"Domain":            strings.TrimSuffix(cfg.Domain, ".") + ".",
		},
		"Coord":  coord,
		"Member": toAgentMember(self),
		"Meta":   orEmpty(cfg.NodeMeta),
		"Stats": map[string]any{
			"agent":    map[string]string{"version": Version},
			"serf_lan": a.serf.Stats(),
		},
	}, nil
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func (a *Agent) apiMembers(w http.ResponseWriter, r *http.Request) (any, error) {
	ms := a.serf.Members()
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	out := make([]agentMember, 0, len(ms))
	for _, m := range ms {
		out = append(out, toAgentMember(m))
	}
	return out, nil
}

func (a *Agent) apiAgentServices(w http.ResponseWriter, r *http.Request) (any, error) {
	l := a.local
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]agentService, len(l.services))
	for id, s := range l.services {
		out[id] = a.toAgentService(s.Service)
	}
	return out, nil
}

func (a *Agent) apiAgentService(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	l := a.local
	l.mu.Lock()
	s := l.services[id]
	l.mu.Unlock()
	if s == nil {
		return nil, errorf(http.StatusNotFound, "unknown service ID %q", id)
	}
	as := a.toAgentService(s.Service)
	b, _ := json.Marshal(as)
	h := sha256.Sum256(b)
	as.ContentHash = fmt.Sprintf("%x", h[:8])
	w.Header().Set("X-Consul-ContentHash", as.ContentHash)
	return as, nil
}

func (a *Agent) apiRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var def ServiceDefinition
	if err := decodeDefinition(b, &def, false); err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	if err := a.RegisterService(def); err != nil {
		return nil, err
	}
	return nil, nil
}

func (a *Agent) apiDeregister(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	if err := a.DeregisterService(id); err != nil {
		return nil, err
	}
	return nil, nil
}

func (a *Agent) apiServiceMaint(w http.ResponseWriter, r *http.Request) (any, error) {
	enable, err := enableParam(r)
	if err != nil {
		return nil, err
	}
	return nil, a.SetServiceMaintenance(r.PathValue("id"), enable, r.URL.Query().Get("reason"))
}

func (a *Agent) apiNodeMaint(w http.ResponseWriter, r *http.Request) (any, error) {
	enable, err := enableParam(r)
	if err != nil {
		return nil, err
	}
	return nil, a.SetNodeMaintenance(enable, r.URL.Query().Get("reason"))
}

func enableParam(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("enable")
	if v == "" {
		return false, errorf(http.StatusBadRequest, "missing value for enable (true or false)")
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errorf(http.StatusBadRequest, "enable=%q: want true or false", v)
	}
	return b, nil
}

func (a *Agent) apiServiceLoad(w http.ResponseWriter, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var body struct{ Load *float64 }
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", jsonError(err))
	}
	if body.Load == nil {
		return nil, errorf(http.StatusBadRequest, `body must be {"Load": <number>}`)
	}
	return nil, a.SetServiceLoad(r.PathValue("id"), *body.Load)
}

// healthCheck is Consul's HealthCheck JSON shape.
type healthCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	Interval    string `json:",omitempty"`
	Timeout     string `json:",omitempty"`
	ExposedPort int
	Definition  map[string]any
	CreateIndex uint64
	ModifyIndex uint64
}

func toHealthCheck(node string, c catalog.Check, tags []string, idx uint64) healthCheck {
	if tags == nil {
		tags = []string{}
	}
	return healthCheck{
		Node: node, CheckID: c.CheckID, Name: c.Name, Status: c.Status, Notes: c.Notes, Output: c.Output,
		ServiceID: c.ServiceID, ServiceName: c.ServiceName, ServiceTags: tags, Type: c.Type,
		Interval: c.Interval, Timeout: c.Timeout, Definition: map[string]any{}, CreateIndex: idx, ModifyIndex: idx,
	}
}

func (a *Agent) apiAgentChecks(w http.ResponseWriter, r *http.Request) (any, error) {
	l := a.local
	l.mu.Lock()
	rec := l.recordLocked()
	tags := map[string][]string{}
	for id, s := range l.services {
		tags[id] = s.Service.Tags
	}
	l.mu.Unlock()
	out := make(map[string]healthCheck, len(rec.Checks))
	for _, c := range rec.Checks {
		out[c.CheckID] = toHealthCheck(rec.Node.Name, c, tags[c.ServiceID], 0)
	}
	return out, nil
}

func (a *Agent) apiCheckRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var def CheckDefinition
	if err := decodeDefinition(b, &def, false); err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	return nil, a.RegisterCheck(def)
}

func (a *Agent) apiCheckDeregister(w http.ResponseWriter, r *http.Request) (any, error) {
	return nil, a.DeregisterCheck(r.PathValue("id"))
}

func (a *Agent) apiCheckTTL(status string) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		return nil, a.UpdateTTL(r.PathValue("id"), status, r.URL.Query().Get("note"))
	}
}

func (a *Agent) apiCheckUpdate(w http.ResponseWriter, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var body struct{ Status, Output string }
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", jsonError(err))
	}
	return nil, a.UpdateTTL(r.PathValue("id"), body.Status, body.Output)
}

func (a *Agent) apiJoin(w http.ResponseWriter, r *http.Request) (any, error) {
	addr := r.PathValue("addr")
	if _, err := a.Join([]string{addr}); err != nil {
		return nil, errorf(http.StatusInternalServerError, "%v", err)
	}
	return nil, nil
}

func (a *Agent) apiLeave(w http.ResponseWriter, r *http.Request) (any, error) {
	a.Leave()
	return nil, nil
}

func (a *Agent) apiForceLeave(w http.ResponseWriter, r *http.Request) (any, error) {
	prune, err := boolParam(r, "prune")
	if err != nil {
		return nil, err
	}
	node := r.PathValue("node")
	if err := a.ForceLeave(node, prune); err != nil {
		return nil, errorf(http.StatusInternalServerError, "%v", err)
	}
	return nil, nil
}
