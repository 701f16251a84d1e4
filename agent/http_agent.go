package agent

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/chorusdns/chorus/catalog"
)

// serviceAddress is Consul's ServiceAddress JSON shape.
type serviceAddress struct {
	Address string
	Port    int
}

// agentService is Consul's AgentService JSON shape (also NodeService, the
// services of /v1/catalog/node and /v1/catalog/node-services).
type agentService struct {
	Kind              string `json:",omitempty"`
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	TaggedAddresses   map[string]serviceAddress `json:",omitempty"`
	Weights           catalog.Weights
	EnableTagOverride bool
	CreateIndex       uint64 `json:",omitempty"`
	ModifyIndex       uint64 `json:",omitempty"`
	ContentHash       string `json:",omitempty"`
	Datacenter        string `json:",omitempty"`
}

// contentHashValue makes the body's ContentHash and the
// X-Consul-ContentHash header the same value.
func (s agentService) contentHashValue() string { return s.ContentHash }

func (a *httpAPI) toAgentService(s catalog.Service) agentService {
	return agentService{
		ID: s.ID, Service: s.Name, Tags: nonNil(s.Tags), Meta: orEmpty(s.Meta), Port: s.Port, Address: s.Address,
		TaggedAddresses: serviceTaggedAddresses(s), Weights: s.Weights, Datacenter: a.cfg.Load().Datacenter,
	}
}

// serviceIndex returns a catalog service instance's create and modify
// indexes.
func (a *httpAPI) serviceIndex(snap *catalog.Snapshot, node string, s *catalog.Service) (uint64, uint64) {
	h := newHasher().str(s.ID).str(s.Name).strs(s.Tags).str(s.Address).num(int64(s.Port)).strMap(s.Meta).
		num(int64(s.Weights.Passing)).num(int64(s.Weights.Warning))
	c, m, _ := a.objects.get("s\x00"+node+"\x00"+s.ID, snap.Index, snap.Index, h.h)
	return c, m
}

// serviceTaggedAddresses are the lan/wan addresses Consul adds to a service
// registered with an IP address.
func serviceTaggedAddresses(s catalog.Service) map[string]serviceAddress {
	ip := net.ParseIP(s.Address)
	if ip == nil {
		return nil
	}
	sa := serviceAddress{Address: s.Address, Port: s.Port}
	if ip.To4() != nil {
		return map[string]serviceAddress{"lan_ipv4": sa, "wan_ipv4": sa}
	}
	return map[string]serviceAddress{"lan_ipv6": sa, "wan_ipv6": sa}
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
		Name: m.Name, Addr: m.Addr.String(), Port: m.Port, Tags: orEmpty(m.Tags), Status: int(memberStatus(m.Status)),
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

func (a *httpAPI) apiSelf(w http.ResponseWriter, r *http.Request) (any, error) {
	cfg := a.cfg.Load()
	self := a.serf.LocalMember()
	coord := a.coords.mine()
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
			"runtime": map[string]string{
				"arch": runtime.GOARCH, "os": runtime.GOOS, "version": runtime.Version(),
				"cpu_count": strconv.Itoa(runtime.NumCPU()), "goroutines": strconv.Itoa(runtime.NumGoroutine()),
			},
		},
	}, nil
}

// apiHost is a minimal /v1/agent/host: what Chorus knows without probing
// the system (Consul's full answer comes from gopsutil).
func (a *httpAPI) apiHost(w http.ResponseWriter, r *http.Request) (any, error) {
	hostname, err := os.Hostname()
	errs := []string{}
	if err != nil {
		errs = append(errs, fmt.Sprintf("hostname: %v", err))
	}
	return map[string]any{
		"Host": map[string]any{
			"hostname": hostname, "os": runtime.GOOS, "platform": runtime.GOOS, "kernelArch": runtime.GOARCH,
		},
		"CPU":            []map[string]any{{"cores": runtime.NumCPU()}},
		"Memory":         map[string]any{},
		"Disk":           map[string]any{},
		"CollectionTime": time.Now().UnixNano(),
		"Errors":         errs,
	}, nil
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// selfKey is the watch key of this agent's own node: local state reaches
// the catalog through it.
func (a *httpAPI) selfKey() watchKey { return nodeKey(a.NodeName()) }

// queryFilter parses ?filter= for values of type t (nil when absent).
func queryFilter(r *http.Request, t reflect.Type) (*filter, error) {
	expr := params(r).Get("filter")
	if expr == "" {
		return nil, nil
	}
	f, err := parseFilter(expr, t)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", strings.TrimSuffix(err.Error(), ": "+ErrInvalid.Error()))
	}
	return f, nil
}

var (
	typeAgentService   = reflect.TypeOf(agentService{})
	typeAgentMember    = reflect.TypeOf(agentMember{})
	typeHealthCheck    = reflect.TypeOf(healthCheck{})
	typeCatalogService = reflect.TypeOf(catalogService{})
	typeCatalogNode    = reflect.TypeOf(catalogNode{})
	typeServiceEntry   = reflect.TypeOf(serviceEntry{})
)

func (a *httpAPI) apiMembers(w http.ResponseWriter, r *http.Request) (any, error) {
	f, err := queryFilter(r, typeAgentMember)
	if err != nil {
		return nil, err
	}
	wan, err := boolParam(r, "wan")
	if err != nil {
		return nil, err
	}
	return a.serve(w, r, readQuery{key: keyNodes, local: true, render: func(*catalog.Snapshot) (any, error) {
		out := []agentMember{}
		if wan {
			return out, nil // Chorus has no WAN pool
		}
		ms := a.serf.Members()
		sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
		for _, m := range ms {
			am := toAgentMember(m)
			if f.match(&am) {
				out = append(out, am)
			}
		}
		return out, nil
	}})
}

func (a *httpAPI) apiAgentServices(w http.ResponseWriter, r *http.Request) (any, error) {
	f, err := queryFilter(r, typeAgentService)
	if err != nil {
		return nil, err
	}
	return a.serve(w, r, readQuery{key: a.selfKey(), local: true, render: func(*catalog.Snapshot) (any, error) {
		l := a.local
		l.mu.Lock()
		svcs := make([]catalog.Service, 0, len(l.services))
		for _, s := range l.services {
			if !isExternal(s) {
				svcs = append(svcs, s.Service)
			}
		}
		l.mu.Unlock()
		out := make(map[string]agentService, len(svcs))
		for _, s := range svcs {
			as := a.toAgentService(s)
			if f.match(&as) {
				out[s.ID] = as
			}
		}
		return out, nil
	}})
}

func (a *httpAPI) apiAgentService(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	return a.serve(w, r, readQuery{key: a.selfKey(), local: true, render: func(*catalog.Snapshot) (any, error) {
		l := a.local
		l.mu.Lock()
		s := l.services[id]
		var svc catalog.Service
		if s != nil && !isExternal(s) {
			svc = s.Service
		}
		l.mu.Unlock()
		if svc.ID == "" {
			return nil, errorf(http.StatusNotFound, "unknown service ID %q", id)
		}
		as := a.toAgentService(svc)
		b, err := json.Marshal(as)
		if err != nil {
			return nil, err
		}
		as.ContentHash = fmt.Sprintf("%016x", bodyHash(b))
		return as, nil
	}})
}

func (a *httpAPI) apiRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var def ServiceDefinition
	if err := decodeDefinition(b, &def, false); err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	if err := a.refuseExternalID(def); err != nil {
		return nil, err
	}
	if err := a.RegisterService(def); err != nil {
		return nil, err
	}
	return nil, nil
}

func (a *httpAPI) apiDeregister(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	if a.isExternalID(id) {
		return nil, errorf(http.StatusNotFound, "service %q is an external service: remove it with PUT /v1/catalog/deregister", id)
	}
	if err := a.DeregisterService(id); err != nil {
		return nil, err
	}
	return nil, nil
}

func (a *httpAPI) apiServiceMaint(w http.ResponseWriter, r *http.Request) (any, error) {
	enable, err := enableParam(r)
	if err != nil {
		return nil, err
	}
	return nil, a.SetServiceMaintenance(r.PathValue("id"), enable, params(r).Get("reason"))
}

func (a *httpAPI) apiNodeMaint(w http.ResponseWriter, r *http.Request) (any, error) {
	enable, err := enableParam(r)
	if err != nil {
		return nil, err
	}
	return nil, a.SetNodeMaintenance(enable, params(r).Get("reason"))
}

func enableParam(r *http.Request) (bool, error) {
	v := params(r).Get("enable")
	if v == "" {
		return false, errorf(http.StatusBadRequest, "missing value for enable (true or false)")
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errorf(http.StatusBadRequest, "enable=%q: want true or false", v)
	}
	return b, nil
}

func (a *httpAPI) apiServiceLoad(w http.ResponseWriter, r *http.Request) (any, error) {
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

// healthCheck is Consul's HealthCheck JSON shape (AgentCheck in
// /v1/agent/checks, which has the same fields but ServiceTags and the
// indexes).
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
	Definition  checkDefinition
	CreateIndex uint64
	ModifyIndex uint64
}

// checkDefinition is Consul's HealthCheckDefinition JSON shape: how the
// check runs. Catalog reads of other agents' checks know only the
// interval and timeout; the owning agent's /v1/agent/checks has it all.
type checkDefinition struct {
	HTTP                           string              `json:",omitempty"`
	Header                         map[string][]string `json:",omitempty"`
	Method                         string              `json:",omitempty"`
	Body                           string              `json:",omitempty"`
	TLSServerName                  string              `json:",omitempty"`
	TLSSkipVerify                  bool                `json:",omitempty"`
	TCP                            string              `json:",omitempty"`
	GRPC                           string              `json:",omitempty"`
	GRPCUseTLS                     bool                `json:",omitempty"`
	ScriptArgs                     []string            `json:",omitempty"`
	Interval                       string              `json:",omitempty"`
	Timeout                        string              `json:",omitempty"`
	DeregisterCriticalServiceAfter string              `json:",omitempty"`
}

func toHealthCheck(node string, c catalog.Check, tags []string) healthCheck {
	return healthCheck{
		Node: node, CheckID: c.CheckID, Name: c.Name, Status: c.Status, Notes: c.Notes, Output: c.Output,
		ServiceID: c.ServiceID, ServiceName: c.ServiceName, ServiceTags: nonNil(tags), Type: c.Type,
		Interval: c.Interval, Timeout: c.Timeout,
		Definition: checkDefinition{Interval: c.Interval, Timeout: c.Timeout},
	}
}

// catalogCheck is toHealthCheck with the check's catalog indexes.
func (a *httpAPI) catalogCheck(snap *catalog.Snapshot, node string, c catalog.Check, tags []string) healthCheck {
	hc := toHealthCheck(node, c, tags)
	h := newHasher().str(c.CheckID).str(c.Name).str(c.Status).str(c.Notes).str(c.Output).str(c.ServiceID).
		str(c.ServiceName).str(c.Type).str(c.Interval).str(c.Timeout).strs(tags)
	hc.CreateIndex, hc.ModifyIndex, _ = a.objects.get("c\x00"+node+"\x00"+c.CheckID, snap.Index, snap.Index, h.h)
	return hc
}

func durationString(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}

func (a *httpAPI) apiAgentChecks(w http.ResponseWriter, r *http.Request) (any, error) {
	f, err := queryFilter(r, typeHealthCheck)
	if err != nil {
		return nil, err
	}
	return a.serve(w, r, readQuery{key: a.selfKey(), local: true, render: func(*catalog.Snapshot) (any, error) {
		l := a.local
		l.mu.Lock()
		rec := l.recordLocked()
		tags := map[string][]string{}
		defs := map[string]checkDefinition{}
		external := map[string]bool{}
		for id, s := range l.services {
			tags[id] = s.Service.Tags
			external[id] = isExternal(s)
		}
		for id, c := range l.checks {
			d := c.Def
			defs[id] = checkDefinition{
				HTTP: d.HTTP, Header: d.Header, Method: d.Method, Body: d.Body, TLSServerName: d.TLSServerName,
				TLSSkipVerify: d.TLSSkipVerify, TCP: d.TCP, GRPC: d.GRPC, GRPCUseTLS: d.GRPCUseTLS, ScriptArgs: d.Args,
				Interval: durationString(d.Interval), Timeout: durationString(d.Timeout),
				DeregisterCriticalServiceAfter: durationString(d.DeregisterCriticalServiceAfter),
			}
		}
		l.mu.Unlock()
		out := make(map[string]healthCheck, len(rec.Checks))
		for _, c := range rec.Checks {
			if external[c.ServiceID] {
				continue
			}
			hc := toHealthCheck(rec.Node.Name, c, tags[c.ServiceID])
			if d, ok := defs[c.CheckID]; ok {
				hc.Definition = d
			}
			if f.match(&hc) {
				out[c.CheckID] = hc
			}
		}
		return out, nil
	}})
}

func (a *httpAPI) apiCheckRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var def CheckDefinition
	if err := decodeDefinition(b, &def, false); err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	if def.ServiceID != "" && a.isExternalID(def.ServiceID) {
		return nil, errorf(http.StatusBadRequest, "service %q is an external service: give its checks in PUT /v1/catalog/register", def.ServiceID)
	}
	return nil, a.RegisterCheck(def)
}

func (a *httpAPI) apiCheckDeregister(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	l := a.local
	l.mu.Lock()
	c := l.checks[id]
	external := c != nil && isExternal(l.services[c.Def.ServiceID])
	l.mu.Unlock()
	if external {
		return nil, errorf(http.StatusBadRequest, "check %q belongs to an external service: remove it with PUT /v1/catalog/deregister", id)
	}
	return nil, a.DeregisterCheck(id)
}

func (a *httpAPI) apiCheckTTL(status string) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		return nil, a.UpdateTTL(r.PathValue("id"), status, params(r).Get("note"))
	}
}

func (a *httpAPI) apiCheckUpdate(w http.ResponseWriter, r *http.Request) (any, error) {
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

func (a *httpAPI) apiJoin(w http.ResponseWriter, r *http.Request) (any, error) {
	addr := r.PathValue("addr")
	if _, err := a.Join([]string{addr}); err != nil {
		return nil, errorf(http.StatusInternalServerError, "%v", err)
	}
	return nil, nil
}

func (a *httpAPI) apiLeave(w http.ResponseWriter, r *http.Request) (any, error) {
	a.Leave()
	return nil, nil
}

func (a *httpAPI) apiForceLeave(w http.ResponseWriter, r *http.Request) (any, error) {
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
