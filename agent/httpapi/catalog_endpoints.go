package httpapi

import (
	"maps"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chorusdns/chorus/agent/filter"
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

// toCatalogNode renders a node. Its indexes move only when the node's own
// fields change, not with its services and checks, as in Consul.
func (a *Server) toCatalogNode(snap *catalog.Snapshot, n *catalog.NodeEntry) catalogNode {
	cn := catalogNode{
		ID: nodeID(n.Node.Name), Node: n.Node.Name, Address: n.Node.Address, Datacenter: n.Node.Datacenter,
		TaggedAddresses: taggedAddresses(n.Node), Meta: nodeMeta(n.Node),
	}
	h := newHasher().str(cn.Node).str(cn.Address).str(cn.Datacenter).strMap(cn.TaggedAddresses).strMap(cn.Meta)
	cn.CreateIndex, cn.ModifyIndex, _ = a.objects.get("n\x00"+cn.Node, snap.Index, snap.Index, h.sum())
	return cn
}

// segmentMetaKey is the node meta key Consul gives every node: its
// network segment, "" for the default one (Chorus has no other).
const segmentMetaKey = "consul-network-segment"

// nodeMeta is the node's meta plus the zone, which Chorus tracks as a
// first-class field and exposes as meta for Consul tools, and Consul's
// consul-network-segment (empty).
func nodeMeta(n catalog.Node) map[string]string {
	if n.External { // as registered, as Consul keeps it
		return maps.Clone(orEmpty(n.Meta))
	}
	m := make(map[string]string, len(n.Meta)+2)
	m[segmentMetaKey] = ""
	maps.Copy(m, n.Meta)
	if n.Zone != "" {
		if _, ok := m["zone"]; !ok {
			m["zone"] = n.Zone
		}
	}
	return m
}

func taggedAddresses(n catalog.Node) map[string]string {
	if n.External { // as registered, as Consul keeps it
		return maps.Clone(orEmpty(n.TaggedAddresses))
	}
	t := map[string]string{"lan": n.Address, "wan": n.Address}
	if ip := net.ParseIP(n.Address); ip != nil {
		if ip.To4() != nil {
			t["lan_ipv4"], t["wan_ipv4"] = n.Address, n.Address
		} else {
			t["lan_ipv6"], t["wan_ipv6"] = n.Address, n.Address
		}
	}
	maps.Copy(t, n.TaggedAddresses)
	return t
}

// catalogService is Consul's CatalogService JSON shape (a ServiceNode:
// node and service fields flattened).
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
	ServiceTaggedAddresses   map[string]serviceAddress `json:",omitempty"`
	ServiceWeights           catalog.Weights
	ServiceMeta              map[string]string
	ServicePort              int
	ServicePorts             []catalog.ServicePort `json:",omitempty" filter:"-"`
	ServiceSocketPath        string                `json:",omitempty"`
	ServiceEnableTagOverride bool
	ServiceLocality          *catalog.Locality `json:",omitempty" filter:"-"`
	CreateIndex              uint64
	ModifyIndex              uint64
}

func (a *Server) toCatalogService(snap *catalog.Snapshot, i *catalog.Instance) catalogService {
	s := i.Service
	n := i.Node.Node
	create, modify := a.serviceIndex(snap, n.Name, s)
	return catalogService{
		ID: nodeID(n.Name), Node: n.Name, Address: n.Address, Datacenter: n.Datacenter,
		TaggedAddresses: taggedAddresses(n), NodeMeta: nodeMeta(n),
		ServiceID: s.ID, ServiceName: s.Name, ServiceTags: nonNil(s.Tags), ServiceAddress: s.Address,
		ServiceTaggedAddresses: serviceTaggedAddresses(*s), ServiceWeights: s.Weights, ServiceMeta: orEmpty(s.Meta),
		ServicePort: s.Port, ServicePorts: s.Ports, ServiceSocketPath: s.SocketPath,
		ServiceEnableTagOverride: s.EnableTagOverride, ServiceLocality: s.Locality, CreateIndex: create, ModifyIndex: modify,
	}
}

// serviceEntry is Consul's ServiceEntry JSON shape (/v1/health/service).
type serviceEntry struct {
	Node    catalogNode
	Service agentService
	Checks  []healthCheck
}

// toServiceEntry builds a health entry.
func (a *Server) toServiceEntry(snap *catalog.Snapshot, i *catalog.Instance) serviceEntry {
	e := serviceEntry{
		Node: a.toCatalogNode(snap, i.Node), Service: a.nodeService(snap, i.Node, i.Service),
		Checks: make([]healthCheck, 0, i.NumChecks()),
	}
	e.Service.Datacenter = i.Node.Node.Datacenter
	for c := range i.Checks() {
		var tags []string
		if c.ServiceID == i.Service.ID {
			tags = i.Service.Tags
		}
		e.Checks = append(e.Checks, a.catalogCheck(snap, i.Node.Node.Name, *c, tags))
	}
	return e
}

// nodeService renders a catalog service instance as Consul's NodeService.
func (a *Server) nodeService(snap *catalog.Snapshot, n *catalog.NodeEntry, s *catalog.Service) agentService {
	as := a.toAgentService(*s)
	as.Datacenter = ""
	as.CreateIndex, as.ModifyIndex = a.serviceIndex(snap, n.Node.Name, s)
	return as
}

// instanceFilter selects instances by the common query parameters:
// repeated tag (all must match, case-insensitive), node-meta key:value
// (all must match) and passing.
type instanceFilter struct {
	tags     []string
	nodeMeta map[string]string
	passing  bool
}

func parseInstanceFilter(r *http.Request, withPassing bool) (instanceFilter, error) {
	q := params(r)
	f := instanceFilter{tags: q["tag"]}
	nm, err := parseNodeMeta(r)
	if err != nil {
		return f, err
	}
	f.nodeMeta = nm
	if withPassing {
		p, err := boolParam(r, "passing")
		if err != nil {
			return f, err
		}
		f.passing = p
	}
	return f, nil
}

func parseNodeMeta(r *http.Request) (map[string]string, error) {
	var out map[string]string
	for _, kv := range params(r)["node-meta"] {
		k, v, ok := strings.Cut(kv, ":")
		if !ok || k == "" {
			return nil, errorf(http.StatusBadRequest, "node-meta %q: want key:value", kv)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out, nil
}

func matchNodeMeta(want map[string]string, n catalog.Node) bool {
	if len(want) == 0 {
		return true
	}
	meta := nodeMeta(n)
	for k, v := range want {
		if got, ok := meta[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func (f instanceFilter) match(i *catalog.Instance) bool {
	for _, t := range f.tags {
		if !i.HasTag(t) {
			return false
		}
	}
	if !matchNodeMeta(f.nodeMeta, i.Node.Node) {
		return false
	}
	return !f.passing || i.Health == catalog.HealthPassing
}

// nearOrder returns the per-request reordering for ?near=, or nil.
// "_agent" sorts by estimated round-trip time from this agent, "_ip" from
// the node whose address the request came from (this agent if none), any
// other value from that node. Nodes without a coordinate go last, in
// their original order.
func (a *Server) nearOrder(r *http.Request) func(node string) (time.Duration, bool) {
	near := params(r).Get("near")
	switch near {
	case "":
		return nil
	case "_agent":
		return a.gossip.RTT
	case "_ip":
		near = a.NodeName()
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			if ip := net.ParseIP(host); ip != nil {
				if ns := a.store.Snapshot().NodesByAddress(ip); len(ns) > 0 {
					near = ns[0].Node.Name
				}
			}
		}
		if near == a.NodeName() {
			return a.gossip.RTT
		}
	}
	return a.rttFrom(near)
}

// rttFrom estimates round-trip times from node origin with the cached
// network coordinates; nil when origin has no coordinate.
func (a *Server) rttFrom(origin string) func(string) (time.Duration, bool) {
	if strings.EqualFold(origin, a.NodeName()) {
		return a.gossip.RTT
	}
	oc, ok := a.coordOf(origin)
	if !ok || oc == nil {
		return nil
	}
	return func(node string) (time.Duration, bool) {
		if node == origin {
			return 0, true
		}
		c, ok := a.coordOf(node) // this agent's own too
		if !ok || c == nil || !oc.IsCompatibleWith(c) {
			return 0, false
		}
		return oc.DistanceTo(c), true
	}
}

// sortNear returns a copy of items ordered by rtt of each item's node.
func sortNear[T any](items []T, node func(*T) string, rtt func(string) (time.Duration, bool)) []T {
	type keyed struct {
		d  time.Duration
		ok bool
	}
	out := slices.Clone(items)
	keys := make(map[string]keyed, len(out))
	for i := range out {
		n := node(&out[i])
		if _, done := keys[n]; !done {
			d, ok := rtt(n)
			keys[n] = keyed{d, ok}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		ki, kj := keys[node(&out[i])], keys[node(&out[j])]
		if ki.ok != kj.ok {
			return ki.ok
		}
		return ki.ok && ki.d < kj.d
	})
	return out
}

// orderBy builds a readQuery.order for a list answer of T.
func orderBy[T any](rtt func(string) (time.Duration, bool), node func(*T) string) func(any) any {
	if rtt == nil {
		return nil
	}
	return func(v any) any { return sortNear(v.([]T), node, rtt) }
}

// lister is the one shape of the catalog and health list endpoints: walk
// the snapshot, emit an item of the answer type T for each thing that
// passes the endpoint's own selection, keep the items ?filter= matches,
// and order the answer by ?near= for this request. It never answers null:
// an empty list is [].
type lister[T any] struct {
	key    watchKey
	filter *filter.Filter
	node   func(*T) string // the node an item belongs to, for ?near=
	walk   func(s *catalog.Snapshot, emit func(T))
}

// query builds the readQuery of a list answer for request r.
func (l lister[T]) query(a *Server, r *http.Request) readQuery {
	return readQuery{
		key: l.key,
		render: func(s *catalog.Snapshot) (any, error) {
			out := []T{}
			l.walk(s, func(v T) {
				if l.filter.Match(&v) {
					out = append(out, v)
				}
			})
			return out, nil
		},
		order: orderBy(a.nearOrder(r), l.node),
	}
}

// instancesOf calls fn for every instance of the named service that keep
// passes.
func instancesOf(s *catalog.Snapshot, name string, keep func(*catalog.Instance) bool, fn func(*catalog.Instance)) {
	se, ok := s.Service(name)
	if !ok {
		return
	}
	for _, i := range se.Instances.Values() {
		if keep(i) {
			fn(i)
		}
	}
}

func (a *Server) apiDatacenters(w http.ResponseWriter, r *http.Request) (any, error) {
	return a.datacenterNames(), nil
}

func (a *Server) apiCatalogServices(w http.ResponseWriter, r *http.Request) (any, error) {
	nm, err := parseNodeMeta(r)
	if err != nil {
		return nil, err
	}
	f, err := queryFilter(r, typeCatalogService)
	if err != nil {
		return nil, err
	}
	key := keyServices
	if f != nil || len(nm) > 0 {
		key = keyAll // the answer then depends on every instance
	}
	return a.serve(w, r, readQuery{key: key, render: func(s *catalog.Snapshot) (any, error) {
		out := map[string][]string{}
		for _, se := range s.Services() {
			if f == nil && len(nm) == 0 {
				out[se.Name] = nonNil(se.Tags)
				continue
			}
			tags := map[string]bool{}
			found := false
			for _, i := range se.Instances.Values() {
				if !matchNodeMeta(nm, i.Node.Node) {
					continue
				}
				if f != nil {
					cs := a.toCatalogService(s, i)
					if !f.Match(&cs) {
						continue
					}
				}
				found = true
				for _, t := range i.Service.Tags {
					tags[t] = true
				}
			}
			if found {
				out[se.Name] = sortedKeys(tags)
			}
		}
		return out, nil
	}})
}

func sortedKeys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }

func (a *Server) apiCatalogService(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("name")
	inst, err := parseInstanceFilter(r, false)
	if err != nil {
		return nil, err
	}
	f, err := queryFilter(r, typeCatalogService)
	if err != nil {
		return nil, err
	}
	return a.serve(w, r, lister[catalogService]{
		key: svcKey(name), filter: f,
		node: func(c *catalogService) string { return c.Node },
		walk: func(s *catalog.Snapshot, emit func(catalogService)) {
			instancesOf(s, name, inst.match, func(i *catalog.Instance) { emit(a.toCatalogService(s, i)) })
		},
	}.query(a, r))
}

func (a *Server) apiHealthService(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("name")
	inst, err := parseInstanceFilter(r, true)
	if err != nil {
		return nil, err
	}
	f, err := queryFilter(r, typeServiceEntry)
	if err != nil {
		return nil, err
	}
	q, err := a.withFailover(w, r, name, lister[serviceEntry]{
		key: svcKey(name), filter: f,
		node: func(e *serviceEntry) string { return e.Node.Node },
		walk: func(s *catalog.Snapshot, emit func(serviceEntry)) {
			instancesOf(s, name, inst.match, func(i *catalog.Instance) { emit(a.toServiceEntry(s, i)) })
		},
	}.query(a, r))
	if err != nil {
		return nil, err
	}
	return a.serve(w, r, q)
}

func (a *Server) apiHealthChecks(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("name")
	nm, err := parseNodeMeta(r)
	if err != nil {
		return nil, err
	}
	f, err := queryFilter(r, typeHealthCheck)
	if err != nil {
		return nil, err
	}
	keep := func(i *catalog.Instance) bool { return matchNodeMeta(nm, i.Node.Node) }
	return a.serve(w, r, lister[healthCheck]{
		key: svcKey(name), filter: f,
		node: checkNode,
		walk: func(s *catalog.Snapshot, emit func(healthCheck)) {
			instancesOf(s, name, keep, func(i *catalog.Instance) {
				for _, c := range i.OwnChecks() {
					emit(a.catalogCheck(s, i.Node.Node.Name, c, i.Service.Tags))
				}
			})
		},
	}.query(a, r))
}

func (a *Server) apiCatalogNodes(w http.ResponseWriter, r *http.Request) (any, error) {
	nm, err := parseNodeMeta(r)
	if err != nil {
		return nil, err
	}
	f, err := queryFilter(r, typeCatalogNode)
	if err != nil {
		return nil, err
	}
	return a.serve(w, r, lister[catalogNode]{
		key: keyNodes, filter: f,
		node: func(n *catalogNode) string { return n.Node },
		walk: func(s *catalog.Snapshot, emit func(catalogNode)) {
			for _, n := range s.Nodes() {
				if matchNodeMeta(nm, n.Node) {
					emit(a.toCatalogNode(s, n))
				}
			}
		},
	}.query(a, r))
}

// nodeServices renders a node's services for the catalog node endpoints.
func (a *Server) nodeServices(snap *catalog.Snapshot, n *catalog.NodeEntry, f *filter.Filter) []agentService {
	out := make([]agentService, 0, n.Instances.Len())
	for _, i := range n.Instances.Values() {
		as := a.nodeService(snap, n, i.Service)
		if f.Match(&as) {
			out = append(out, as)
		}
	}
	return out
}

func (a *Server) apiCatalogNode(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("node")
	f, err := queryFilter(r, typeAgentService)
	if err != nil {
		return nil, err
	}
	return a.serve(w, r, readQuery{key: nodeKey(name), render: func(s *catalog.Snapshot) (any, error) {
		n, ok := s.Node(name)
		if !ok {
			return nil, nil // Consul answers null for an unknown node
		}
		svcs := map[string]agentService{}
		for _, as := range a.nodeServices(s, n, f) {
			svcs[as.ID] = as
		}
		return struct {
			Node     catalogNode
			Services map[string]agentService
		}{a.toCatalogNode(s, n), svcs}, nil
	}})
}

func (a *Server) apiCatalogNodeServices(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("node")
	f, err := queryFilter(r, typeAgentService)
	if err != nil {
		return nil, err
	}
	return a.serve(w, r, readQuery{key: nodeKey(name), render: func(s *catalog.Snapshot) (any, error) {
		type nodeServiceList struct {
			Node     *catalogNode
			Services []agentService
		}
		n, ok := s.Node(name)
		if !ok {
			return nodeServiceList{Services: []agentService{}}, nil
		}
		cn := a.toCatalogNode(s, n)
		return nodeServiceList{Node: &cn, Services: a.nodeServices(s, n, f)}, nil
	}})
}

// nodeChecks emits every check of node n (node and service level) that
// keep passes (nil keeps all).
func (a *Server) nodeChecks(snap *catalog.Snapshot, n *catalog.NodeEntry, keep func(catalog.Check) bool, emit func(healthCheck)) {
	tags := map[string][]string{}
	for _, i := range n.Instances.Values() {
		tags[i.Service.ID] = i.Service.Tags
	}
	for c := range n.AllChecks() {
		if keep == nil || keep(*c) {
			emit(a.catalogCheck(snap, n.Node.Name, *c, tags[c.ServiceID]))
		}
	}
}

// checkNode is the node of a check, for ?near=.
func checkNode(c *healthCheck) string { return c.Node }

func (a *Server) apiHealthNode(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("node")
	f, err := queryFilter(r, typeHealthCheck)
	if err != nil {
		return nil, err
	}
	return a.serve(w, r, lister[healthCheck]{
		key: nodeKey(name), filter: f, node: checkNode,
		walk: func(s *catalog.Snapshot, emit func(healthCheck)) {
			if n, ok := s.Node(name); ok {
				a.nodeChecks(s, n, nil, emit)
			}
		},
	}.query(a, r))
}

func (a *Server) apiHealthState(w http.ResponseWriter, r *http.Request) (any, error) {
	state := r.PathValue("state")
	if state != "any" && !catalog.ValidStatus(state) {
		return nil, errorf(http.StatusBadRequest, "state %q: want any, passing, warning or critical", state)
	}
	nm, err := parseNodeMeta(r)
	if err != nil {
		return nil, err
	}
	f, err := queryFilter(r, typeHealthCheck)
	if err != nil {
		return nil, err
	}
	keep := func(c catalog.Check) bool { return state == "any" || c.Status == state }
	return a.serve(w, r, lister[healthCheck]{
		key: keyAll, filter: f, node: checkNode,
		walk: func(s *catalog.Snapshot, emit func(healthCheck)) {
			for _, n := range s.Nodes() {
				if matchNodeMeta(nm, n.Node) {
					a.nodeChecks(s, n, keep, emit)
				}
			}
		},
	}.query(a, r))
}

// apiStatusLeader answers for a leaderless cluster: every agent is its own
// authority, so it names itself; tools that probe for a leader stay happy.
func (a *Server) apiStatusLeader(w http.ResponseWriter, r *http.Request) (any, error) {
	return a.gossip.Addr(), nil
}

// apiStatusPeers lists the alive members' gossip addresses.
func (a *Server) apiStatusPeers(w http.ResponseWriter, r *http.Request) (any, error) {
	out := []string{}
	for _, m := range a.gossip.Members() {
		if m.Status == int(catalog.MemberAlive) {
			out = append(out, net.JoinHostPort(m.Addr, strconv.Itoa(int(m.Port))))
		}
	}
	sort.Strings(out)
	return out, nil
}
