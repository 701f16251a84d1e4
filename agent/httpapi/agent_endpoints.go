package httpapi

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chorusdns/chorus/agent/filter"
	"github.com/chorusdns/chorus/agent/local"
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
	Ports             []catalog.ServicePort `json:",omitempty" filter:"-"`
	Address           string
	SocketPath        string                    `json:",omitempty"`
	TaggedAddresses   map[string]serviceAddress `json:",omitempty"`
	Weights           catalog.Weights
	EnableTagOverride bool
	CreateIndex       uint64            `json:",omitempty"`
	ModifyIndex       uint64            `json:",omitempty"`
	ContentHash       string            `json:",omitempty"`
	Datacenter        string            `json:",omitempty"`
	Locality          *catalog.Locality `json:",omitempty" filter:"-"`
	// Load is Chorus's own: the instance's load figure for the
	// least-loaded DNS policy (PUT /v1/agent/service/load/<id>); absent
	// when 0, as it is until one is reported.
	Load float64 `json:",omitempty"`
}

// contentHashValue makes the body's ContentHash and the
// X-Consul-ContentHash header the same value.
func (s agentService) contentHashValue() string { return s.ContentHash }

func (a *Server) toAgentService(s catalog.Service) agentService {
	return agentService{
		ID: s.ID, Service: s.Name, Tags: nonNil(s.Tags), Meta: orEmpty(s.Meta), Port: s.Port, Ports: s.Ports,
		Address: s.Address, SocketPath: s.SocketPath, TaggedAddresses: serviceTaggedAddresses(s), Weights: s.Weights,
		EnableTagOverride: s.EnableTagOverride, Datacenter: a.cfg().Datacenter, Locality: s.Locality, Load: s.Load,
	}
}

// serviceIndex returns a catalog service instance's create and modify
// indexes.
func (a *Server) serviceIndex(snap *catalog.Snapshot, node string, s *catalog.Service) (uint64, uint64) {
	h := newHasher().str(s.ID).str(s.Name).strs(s.Tags).str(s.Address).num(int64(s.Port)).strMap(s.Meta).
		num(int64(s.Weights.Passing)).num(int64(s.Weights.Warning)).str(consulFieldsKey(s))
	c, m, _ := a.objects.get("s\x00"+node+"\x00"+s.ID, snap.Index, snap.Index, h.sum())
	return c, m
}

// consulFieldsKey fingerprints the registration fields Chorus keeps only
// for Consul's clients, so that a change to any of them moves the
// service's ModifyIndex ("" when none is set).
func consulFieldsKey(s *catalog.Service) string {
	if len(s.Ports) == 0 && s.SocketPath == "" && len(s.TaggedAddresses) == 0 && !s.EnableTagOverride && s.Locality == nil {
		return ""
	}
	b, _ := json.Marshal([]any{s.Ports, s.SocketPath, s.TaggedAddresses, s.EnableTagOverride, s.Locality})
	return string(b)
}

// serviceTaggedAddresses are the service's tagged addresses as registered,
// plus the lan/wan addresses Consul adds to a service registered with an
// IP address (where the registration gave none of that name).
func serviceTaggedAddresses(s catalog.Service) map[string]serviceAddress {
	var out map[string]serviceAddress
	if len(s.TaggedAddresses) > 0 {
		out = make(map[string]serviceAddress, len(s.TaggedAddresses)+2)
		for k, v := range s.TaggedAddresses {
			out[k] = serviceAddress{Address: v.Address, Port: v.Port}
		}
	}
	ip := net.ParseIP(s.Address)
	if ip == nil {
		return out
	}
	if out == nil {
		out = make(map[string]serviceAddress, 2)
	}
	sa := serviceAddress{Address: s.Address, Port: s.DefaultPort()}
	lan, wan := "lan_ipv4", "wan_ipv4"
	if ip.To4() == nil {
		lan, wan = "lan_ipv6", "wan_ipv6"
	}
	for _, k := range []string{lan, wan} {
		if _, ok := out[k]; !ok {
			out[k] = sa
		}
	}
	return out
}

// nodeID derives a stable UUID-shaped node ID from the node name (Consul
// clients expect one; Chorus identifies nodes by name).
func nodeID(name string) string {
	h := sha256.Sum256([]byte("chorus-node:" + name))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func (a *Server) apiSelf(w http.ResponseWriter, r *http.Request) (any, error) {
	cfg := a.cfg()
	self := a.gossip.LocalMember()
	coord, _ := a.gossip.Coordinate("")
	debug := map[string]any{}
	if cfg.DebugConfig != nil {
		debug = cfg.DebugConfig()
	}
	return map[string]any{
		"DebugConfig": debug,
		"Config": map[string]any{
			"Datacenter":        cfg.Datacenter,
			"PrimaryDatacenter": cfg.Datacenter,
			"NodeName":          cfg.NodeName,
			"NodeID":            nodeID(cfg.NodeName),
			"Revision":          "",
			"Server":            false,
			"Version":           cfg.Version,
			"Product":           "chorus",
			"Zone":              cfg.Zone,
			"Domain":            strings.TrimSuffix(cfg.Domain, ".") + ".",
		},
		"Coord":  coord,
		"Member": self,
		"Meta":   selfMeta(cfg.NodeMeta),
		"Stats": map[string]any{
			"agent":    map[string]string{"version": cfg.Version},
			"serf_lan": a.gossip.Stats(),
			"runtime": map[string]string{
				"arch": runtime.GOARCH, "os": runtime.GOOS, "version": runtime.Version(),
				"cpu_count": strconv.Itoa(runtime.NumCPU()), "goroutines": strconv.Itoa(runtime.NumGoroutine()),
			},
		},
	}, nil
}

// apiHost is a minimal /v1/agent/host: what Chorus knows without probing
// the system (Consul's full answer comes from gopsutil).
func (a *Server) apiHost(w http.ResponseWriter, r *http.Request) (any, error) {
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

// selfMeta is the agent's node meta as /v1/agent/self reports it, with
// Consul's consul-network-segment.
func selfMeta(meta map[string]string) map[string]string {
	m := make(map[string]string, len(meta)+1)
	m[segmentMetaKey] = ""
	maps.Copy(m, meta)
	return m
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
func (a *Server) selfKey() watchKey { return nodeKey(a.NodeName()) }

// queryFilter parses ?filter= for values of type t (nil when absent).
func queryFilter(r *http.Request, t reflect.Type) (*filter.Filter, error) {
	expr := params(r).Get("filter")
	if expr == "" {
		return nil, nil // a nil filter matches everything
	}
	f, err := filter.New(expr, t)
	if errors.Is(err, filter.ErrInvalid) {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	return f, err
}

var (
	typeAgentService   = reflect.TypeOf(agentService{})
	typeAgentMember    = reflect.TypeOf(Member{})
	typeHealthCheck    = reflect.TypeOf(healthCheck{})
	typeCatalogService = reflect.TypeOf(catalogService{})
	typeCatalogNode    = reflect.TypeOf(catalogNode{})
	typeServiceEntry   = reflect.TypeOf(serviceEntry{})
)

func (a *Server) apiMembers(w http.ResponseWriter, r *http.Request) (any, error) {
	f, err := queryFilter(r, typeAgentMember)
	if err != nil {
		return nil, err
	}
	wan, err := boolParam(r, "wan")
	if err != nil {
		return nil, err
	}
	return a.serve(w, r, readQuery{key: keyNodes, local: true, render: func(*catalog.Snapshot) (any, error) {
		out := []Member{}
		if wan {
			return a.wanMembers(f), nil
		}
		ms := a.gossip.Members()
		sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
		for _, m := range ms {
			if f.Match(&m) {
				out = append(out, m)
			}
		}
		return out, nil
	}})
}

func (a *Server) apiAgentServices(w http.ResponseWriter, r *http.Request) (any, error) {
	f, err := queryFilter(r, typeAgentService)
	if err != nil {
		return nil, err
	}
	return a.serve(w, r, readQuery{key: a.selfKey(), local: true, render: func(*catalog.Snapshot) (any, error) {
		svcs := a.local.Services()
		out := make(map[string]agentService, len(svcs))
		for _, s := range svcs {
			as := a.toAgentService(s)
			if f.Match(&as) {
				out[s.ID] = as
			}
		}
		return out, nil
	}})
}

func (a *Server) apiAgentService(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	return a.serve(w, r, readQuery{key: a.selfKey(), local: true, render: func(*catalog.Snapshot) (any, error) {
		svc, ok := a.local.Service(id)
		if !ok {
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

func (a *Server) apiRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var def local.ServiceDefinition
	if err := local.DecodeDefinition(b, &def, false); err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	if err := serviceDefPathIDs(def); err != nil {
		return nil, err
	}
	if err := a.local.RegisterService(def); err != nil {
		return nil, err
	}
	return nil, nil
}

// pathID refuses "." and ".." as an ID: the paths that name an ID
// (/v1/agent/service/deregister/<id>, /v1/agent/check/pass/<id>, …) cannot
// carry them, since clients and the server resolve them as directory
// steps, so such a service or check could be registered but never be
// addressed. field names the offending field in the 400.
func pathID(field, id string) error {
	if id == "." || id == ".." {
		return errorf(http.StatusBadRequest, "%s %q: not a usable ID: URL paths such as /v1/agent/service/deregister/<id> cannot name it", field, id)
	}
	return nil
}

// serviceDefPathIDs applies pathID to a service definition's ID and its
// checks' IDs. (A service's ID defaults to its name, a DNS label, which
// is never "." or "..".)
func serviceDefPathIDs(def local.ServiceDefinition) error {
	if err := pathID("ID", def.ID); err != nil {
		return err
	}
	if def.Check != nil {
		if err := checkDefPathID("Check.", *def.Check, false); err != nil {
			return err
		}
	}
	for i, c := range def.Checks {
		if err := checkDefPathID(fmt.Sprintf("Checks[%d].", i), c, false); err != nil {
			return err
		}
	}
	return nil
}

// checkDefPathID applies pathID to a check definition's ID: CheckID, else
// ID, else (for a check registered on its own, byName) its Name.
func checkDefPathID(prefix string, def local.CheckDefinition, byName bool) error {
	field, id := "CheckID", def.CheckID
	if id == "" {
		field, id = "ID", def.ID
	}
	if id == "" && byName {
		field, id = "Name", def.Name
	}
	return pathID(prefix+field, id)
}

func (a *Server) apiDeregister(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	if a.local.IsExternal(id) {
		return nil, errorf(http.StatusNotFound, "service %q is an external service: remove it with PUT /v1/catalog/deregister", id)
	}
	if err := a.local.DeregisterService(id); err != nil {
		return nil, err
	}
	return nil, nil
}

func (a *Server) apiServiceMaint(w http.ResponseWriter, r *http.Request) (any, error) {
	enable, err := enableParam(r)
	if err != nil {
		return nil, err
	}
	return nil, a.local.SetServiceMaintenance(r.PathValue("id"), enable, params(r).Get("reason"))
}

func (a *Server) apiNodeMaint(w http.ResponseWriter, r *http.Request) (any, error) {
	enable, err := enableParam(r)
	if err != nil {
		return nil, err
	}
	return nil, a.local.SetNodeMaintenance(enable, params(r).Get("reason"))
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

func (a *Server) apiServiceLoad(w http.ResponseWriter, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var body struct{ Load *float64 }
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", local.JSONError(err))
	}
	if body.Load == nil {
		return nil, errorf(http.StatusBadRequest, `body must be {"Load": <number>}`)
	}
	return nil, a.local.SetServiceLoad(r.PathValue("id"), *body.Load)
}

// checkFields are the fields of Consul's HealthCheck JSON shape that an
// answer (healthCheck) and a catalog registration (registrationCheck)
// share.
type checkFields struct {
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
	ExposedPort int
	CreateIndex uint64
	ModifyIndex uint64
}

// healthCheck is Consul's HealthCheck JSON shape (AgentCheck in
// /v1/agent/checks, which has the same fields but ServiceTags and the
// indexes).
type healthCheck struct {
	checkFields
	Interval   string `json:",omitempty"`
	Timeout    string `json:",omitempty"`
	Definition checkDefinition
}

// checkDefinition is Consul's HealthCheckDefinition JSON shape: how the
// check runs. The owning agent's /v1/agent/checks has it all for the
// checks it runs; catalog reads of other agents' checks know only the
// interval and timeout; a catalog-registered check (an external node's)
// has the definition it was registered with. It is the catalog's
// definition with the interval and timeout, which catalog.Check keeps
// beside it.
type checkDefinition struct {
	catalog.CheckDefinition
	Interval string `json:",omitempty"`
	Timeout  string `json:",omitempty"`
}

func toHealthCheck(node string, c catalog.Check, tags []string) healthCheck {
	hc := healthCheck{
		checkFields: checkFields{
			Node: node, CheckID: c.CheckID, Name: c.Name, Status: c.Status, Notes: c.Notes, Output: c.Output,
			ServiceID: c.ServiceID, ServiceName: c.ServiceName, ServiceTags: nonNil(tags), Type: c.Type,
		},
		Interval: c.Interval, Timeout: c.Timeout,
		Definition: checkDefinition{Interval: c.Interval, Timeout: c.Timeout},
	}
	if d := c.Definition; d != nil {
		hc.Definition.CheckDefinition = *d
	}
	return hc
}

// catalogCheck is toHealthCheck with the check's catalog indexes.
func (a *Server) catalogCheck(snap *catalog.Snapshot, node string, c catalog.Check, tags []string) healthCheck {
	hc := toHealthCheck(node, c, tags)
	h := newHasher().str(c.CheckID).str(c.Name).str(c.Status).str(c.Notes).str(c.Output).str(c.ServiceID).
		str(c.ServiceName).str(c.Type).str(c.Interval).str(c.Timeout).strs(tags)
	if c.Definition != nil {
		// A definition changes only with a registration: its JSON (the
		// record's own encoding of it) is hashed then, not per check read.
		b, _ := json.Marshal(c.Definition)
		h.str(string(b))
	}
	hc.CreateIndex, hc.ModifyIndex, _ = a.objects.get("c\x00"+node+"\x00"+c.CheckID, snap.Index, snap.Index, h.sum())
	return hc
}

func durationString(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}

func (a *Server) apiAgentChecks(w http.ResponseWriter, r *http.Request) (any, error) {
	f, err := queryFilter(r, typeHealthCheck)
	if err != nil {
		return nil, err
	}
	return a.serve(w, r, readQuery{key: a.selfKey(), local: true, render: func(*catalog.Snapshot) (any, error) {
		views := a.local.Checks()
		node := a.NodeName()
		out := make(map[string]healthCheck, len(views))
		for _, v := range views {
			if v.External {
				continue
			}
			c := v.Check
			hc := toHealthCheck(node, c, v.ServiceTags)
			if d := v.Def; d.ID != "" {
				hc.Definition = checkDefinition{
					CheckDefinition: catalog.CheckDefinition{
						HTTP: d.HTTP, Header: d.Header, Method: d.Method, Body: d.Body, TLSServerName: d.TLSServerName,
						TLSSkipVerify: d.TLSSkipVerify, DisableRedirects: d.DisableRedirects, TCP: d.TCP, GRPC: d.GRPC,
						GRPCUseTLS: d.GRPCUseTLS, ScriptArgs: d.Args, TCPUseTLS: d.TCPUseTLS, UDP: d.UDP, OSService: d.OSService,
						H2PING: d.H2PING, H2PingUseTLS: d.H2PingUseTLS, DockerContainerID: d.DockerContainerID, Shell: d.Shell,
						AliasNode: d.AliasNode, AliasService: d.AliasService, OutputMaxSize: uint(max(d.OutputMaxSize, 0)),
						DeregisterCriticalServiceAfter: durationString(d.DeregisterCriticalServiceAfter),
					},
					Interval: durationString(d.Interval), Timeout: durationString(d.Timeout),
				}
			}
			if f.Match(&hc) {
				out[c.CheckID] = hc
			}
		}
		return out, nil
	}})
}

func (a *Server) apiCheckRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var def local.CheckDefinition
	if err := local.DecodeDefinition(b, &def, false); err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	if err := checkDefPathID("", def, true); err != nil {
		return nil, err
	}
	if def.ServiceID != "" && a.local.IsExternal(def.ServiceID) {
		return nil, errorf(http.StatusBadRequest, "service %q is an external service: give its checks in PUT /v1/catalog/register", def.ServiceID)
	}
	return nil, a.local.RegisterCheck(def)
}

func (a *Server) apiCheckDeregister(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	if a.local.CheckIsExternal(id) {
		return nil, errorf(http.StatusBadRequest, "check %q belongs to an external service: remove it with PUT /v1/catalog/deregister", id)
	}
	return nil, a.local.DeregisterCheck(id)
}

func (a *Server) apiCheckTTL(status string) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		return nil, a.local.UpdateTTL(r.PathValue("id"), status, params(r).Get("note"))
	}
}

func (a *Server) apiCheckUpdate(w http.ResponseWriter, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var body struct{ Status, Output string }
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", local.JSONError(err))
	}
	return nil, a.local.UpdateTTL(r.PathValue("id"), body.Status, body.Output)
}

func (a *Server) apiJoin(w http.ResponseWriter, r *http.Request) (any, error) {
	addr := r.PathValue("addr")
	if _, err := a.gossip.Join([]string{addr}); err != nil {
		return nil, errorf(http.StatusInternalServerError, "%v", err)
	}
	return nil, nil
}

func (a *Server) apiLeave(w http.ResponseWriter, r *http.Request) (any, error) {
	a.gossip.Leave(r.Context())
	return nil, nil
}

func (a *Server) apiForceLeave(w http.ResponseWriter, r *http.Request) (any, error) {
	prune, err := boolParam(r, "prune")
	if err != nil {
		return nil, err
	}
	node := r.PathValue("node")
	if err := a.gossip.ForceLeave(node, prune); err != nil {
		return nil, errorf(http.StatusInternalServerError, "%v", err)
	}
	return nil, nil
}
