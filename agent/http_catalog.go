package agent

import (
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/serf/serf"

	"github.com/chorusdns/chorus/catalog"
)

// catalogNode is Consul's Node JSON shape.
type catalogNode struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     uint64
	ModifyIndex     uint64
}

func toCatalogNode(n *catalog.NodeEntry) catalogNode {
	return catalogNode{
		ID: nodeID(n.Node.Name), Node: n.Node.Name, Address: n.Node.Address, Datacenter: n.Node.Datacenter,
		TaggedAddresses: taggedAddresses(n.Node), Meta: nodeMeta(n.Node),
		CreateIndex: n.Index, ModifyIndex: n.Index,
	}
}

// nodeMeta is the node's meta plus the zone, which Chorus tracks as a
// first-class field and exposes as meta for Consul tools.
func nodeMeta(n catalog.Node) map[string]string {
	m := make(map[string]string, len(n.Meta)+1)
	for k, v := range n.Meta {
		m[k] = v
	}
	if n.Zone != "" {
		if _, ok := m["zone"]; !ok {
			m["zone"] = n.Zone
		}
	}
	return m
}

func taggedAddresses(n catalog.Node) map[string]string {
	t := map[string]string{"lan": n.Address, "wan": n.Address}
	if ip := net.ParseIP(n.Address); ip != nil {
		if ip.To4() != nil {
			t["lan_ipv4"], t["wan_ipv4"] = n.Address, n.Address
		} else {
			t["lan_ipv6"], t["wan_ipv6"] = n.Address, n.Address
		}
	}
	for k, v := range n.TaggedAddresses {
		t[k] = v
	}
	return t
}

// catalogService is Consul's CatalogService JSON shape.
type catalogService struct {
	ID                       string
	Node                     string
	Address                  string
	Datacenter               string
	TaggedAddresses          map[string]string
	NodeMeta                 map[string]string
	ServiceKind              string
	ServiceID                string
	ServiceName              string
	ServiceTags              []string
	ServiceAddress           string
	ServiceWeights           catalog.Weights
	ServiceMeta              map[string]string
	ServicePort              int
	ServiceEnableTagOverride bool
	CreateIndex              uint64
	ModifyIndex              uint64
}

func toCatalogService(i *catalog.Instance) catalogService {
	s := i.Service
	return catalogService{
		ID: nodeID(i.Node.Node.Name), Node: i.Node.Node.Name, Address: i.Node.Node.Address,
		Datacenter: i.Node.Node.Datacenter, TaggedAddresses: taggedAddresses(i.Node.Node), NodeMeta: nodeMeta(i.Node.Node),
		ServiceID: s.ID, ServiceName: s.Name, ServiceTags: nonNil(s.Tags), ServiceAddress: s.Address,
		ServiceWeights: s.Weights, ServiceMeta: orEmpty(s.Meta), ServicePort: s.Port,
		CreateIndex: i.Node.Index, ModifyIndex: i.Node.Index,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// healthService is the Service object inside Consul's ServiceEntry.
type healthService struct {
	ID                string
	Service           string
	Tags              []string
	Address           string
	Meta              map[string]string
	Port              int
	Weights           catalog.Weights
	EnableTagOverride bool
	Datacenter        string
	CreateIndex       uint64
	ModifyIndex       uint64
}

// serviceEntry is Consul's ServiceEntry JSON shape (/v1/health/service).
type serviceEntry struct {
	Node    catalogNode
	Service healthService
	Checks  []healthCheck
}

func toServiceEntry(i *catalog.Instance) serviceEntry {
	s := i.Service
	e := serviceEntry{
		Node: toCatalogNode(i.Node),
		Service: healthService{
			ID: s.ID, Service: s.Name, Tags: nonNil(s.Tags), Address: s.Address, Meta: orEmpty(s.Meta),
			Port: s.Port, Weights: s.Weights, Datacenter: i.Node.Node.Datacenter,
			CreateIndex: i.Node.Index, ModifyIndex: i.Node.Index,
		},
		Checks: make([]healthCheck, 0, len(i.Checks)),
	}
	for _, c := range i.Checks {
		var tags []string
		if c.ServiceID == s.ID {
			tags = s.Tags
		}
		e.Checks = append(e.Checks, toHealthCheck(i.Node.Node.Name, c, tags, i.Node.Index))
	}
	return e
}

// serviceIndex is the blocking index of one service's results.
func serviceIndex(name string) func(*catalog.Snapshot) uint64 {
	return func(s *catalog.Snapshot) uint64 {
		if e, ok := s.Service(name); ok {
			return e.Index
		}
		return s.Index
	}
}

func snapIndex(s *catalog.Snapshot) uint64 { return s.Index }

// instanceFilter selects instances by the common query parameters:
// repeated tag (all must match), node-meta key:value (all must match) and
// passing.
type instanceFilter struct {
	tags     []string
	nodeMeta map[string]string
	passing  bool
}

func parseInstanceFilter(r *http.Request, withPassing bool) (instanceFilter, error) {
	q := r.URL.Query()
	f := instanceFilter{tags: q["tag"]}
	for _, kv := range q["node-meta"] {
		k, v, ok := strings.Cut(kv, ":")
		if !ok || k == "" {
			return f, errorf(http.StatusBadRequest, "node-meta %q: want key:value", kv)
		}
		if f.nodeMeta == nil {
			f.nodeMeta = map[string]string{}
		}
		f.nodeMeta[k] = v
	}
	if withPassing {
		p, err := boolParam(r, "passing")
		if err != nil {
			return f, err
		}
		f.passing = p
	}
	return f, nil
}

func (f instanceFilter) match(i *catalog.Instance) bool {
	for _, t := range f.tags {
		if !i.HasTag(t) {
			return false
		}
	}
	if len(f.nodeMeta) > 0 {
		meta := nodeMeta(i.Node.Node)
		for k, v := range f.nodeMeta {
			if meta[k] != v {
				return false
			}
		}
	}
	if f.passing && i.Health != catalog.HealthPassing {
		return false
	}
	return true
}

func (a *Agent) apiDatacenters(w http.ResponseWriter, r *http.Request) (any, error) {
	return []string{a.cfg.Load().Datacenter}, nil
}

func (a *Agent) apiCatalogServices(w http.ResponseWriter, r *http.Request) (any, error) {
	f, err := parseInstanceFilter(r, false)
	if err != nil {
		return nil, err
	}
	idx := func(s *catalog.Snapshot) uint64 { return s.ServicesIndex() }
	if len(f.nodeMeta) > 0 {
		idx = snapIndex
	}
	return a.blocking(w, r, idx, func(s *catalog.Snapshot) (any, error) {
		out := map[string][]string{}
		for _, se := range s.Services() {
			if len(f.nodeMeta) == 0 {
				out[se.Name] = nonNil(se.Tags)
				continue
			}
			tags := map[string]bool{}
			found := false
			for _, i := range se.Instances {
				if f.match(i) {
					found = true
					for _, t := range i.Service.Tags {
						tags[t] = true
					}
				}
			}
			if found {
				out[se.Name] = sortedKeys(tags)
			}
		}
		return out, nil
	})
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (a *Agent) apiCatalogService(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("name")
	f, err := parseInstanceFilter(r, false)
	if err != nil {
		return nil, err
	}
	return a.blocking(w, r, serviceIndex(name), func(s *catalog.Snapshot) (any, error) {
		out := []catalogService{}
		if se, ok := s.Service(name); ok {
			for _, i := range se.Instances {
				if f.match(i) {
					out = append(out, toCatalogService(i))
				}
			}
		}
		return out, nil
	})
}

func (a *Agent) apiHealthService(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("name")
	f, err := parseInstanceFilter(r, true)
	if err != nil {
		return nil, err
	}
	return a.blocking(w, r, serviceIndex(name), func(s *catalog.Snapshot) (any, error) {
		out := []serviceEntry{}
		if se, ok := s.Service(name); ok {
			for _, i := range se.Instances {
				if f.match(i) {
					out = append(out, toServiceEntry(i))
				}
			}
		}
		return out, nil
	})
}

func (a *Agent) apiHealthChecks(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("name")
	return a.blocking(w, r, serviceIndex(name), func(s *catalog.Snapshot) (any, error) {
		out := []healthCheck{}
		if se, ok := s.Service(name); ok {
			for _, i := range se.Instances {
				for _, c := range i.Checks {
					if c.ServiceID == i.Service.ID {
						out = append(out, toHealthCheck(i.Node.Node.Name, c, i.Service.Tags, i.Node.Index))
					}
				}
			}
		}
		return out, nil
	})
}

func (a *Agent) apiCatalogNodes(w http.ResponseWriter, r *http.Request) (any, error) {
	f, err := parseInstanceFilter(r, false)
	if err != nil {
		return nil, err
	}
	return a.blocking(w, r, func(s *catalog.Snapshot) uint64 { return s.NodesIndex() }, func(s *catalog.Snapshot) (any, error) {
		out := []catalogNode{}
		for _, n := range s.Nodes() {
			if len(f.nodeMeta) > 0 {
				meta := nodeMeta(n.Node)
				ok := true
				for k, v := range f.nodeMeta {
					ok = ok && meta[k] == v
				}
				if !ok {
					continue
				}
			}
			out = append(out, toCatalogNode(n))
		}
		return out, nil
	})
}

func nodeIndex(name string) func(*catalog.Snapshot) uint64 {
	return func(s *catalog.Snapshot) uint64 {
		if n, ok := s.Node(name); ok {
			return n.Index
		}
		return s.Index
	}
}

func (a *Agent) apiCatalogNode(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("node")
	return a.blocking(w, r, nodeIndex(name), func(s *catalog.Snapshot) (any, error) {
		n, ok := s.Node(name)
		if !ok {
			return nil, nil // Consul answers null for an unknown node
		}
		svcs := make(map[string]agentService, len(n.Instances))
		for _, i := range n.Instances {
			svcs[i.Service.ID] = a.toAgentService(*i.Service)
		}
		return map[string]any{"Node": toCatalogNode(n), "Services": svcs}, nil
	})
}

func (a *Agent) apiHealthNode(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("node")
	return a.blocking(w, r, nodeIndex(name), func(s *catalog.Snapshot) (any, error) {
		out := []healthCheck{}
		if n, ok := s.Node(name); ok {
			tags := map[string][]string{}
			for _, i := range n.Instances {
				tags[i.Service.ID] = i.Service.Tags
			}
			for _, c := range n.AllChecks {
				out = append(out, toHealthCheck(n.Node.Name, c, tags[c.ServiceID], n.Index))
			}
		}
		return out, nil
	})
}

func (a *Agent) apiHealthState(w http.ResponseWriter, r *http.Request) (any, error) {
	state := r.PathValue("state")
	if state != "any" && !catalog.ValidStatus(state) {
		return nil, errorf(http.StatusBadRequest, "state %q: want any, passing, warning or critical", state)
	}
	return a.blocking(w, r, snapIndex, func(s *catalog.Snapshot) (any, error) {
		out := []healthCheck{}
		for _, n := range s.Nodes() {
			tags := map[string][]string{}
			for _, i := range n.Instances {
				tags[i.Service.ID] = i.Service.Tags
			}
			for _, c := range n.AllChecks {
				if state == "any" || c.Status == state {
					out = append(out, toHealthCheck(n.Node.Name, c, tags[c.ServiceID], n.Index))
				}
			}
		}
		return out, nil
	})
}

// apiStatusLeader answers for a leaderless cluster: every agent is its own
// authority, so it names itself; tools that probe for a leader stay happy.
func (a *Agent) apiStatusLeader(w http.ResponseWriter, r *http.Request) (any, error) {
	return a.SerfAddr(), nil
}

// apiStatusPeers lists the alive members' gossip addresses.
func (a *Agent) apiStatusPeers(w http.ResponseWriter, r *http.Request) (any, error) {
	out := []string{}
	for _, m := range a.serf.Members() {
		if m.Status == serf.StatusAlive {
			out = append(out, net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))))
		}
	}
	sort.Strings(out)
	return out, nil
}
