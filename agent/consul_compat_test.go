package agent

// Consul compatibility held with the real hashicorp/consul/api client
// against real agents: each test fails on a Chorus that answers where
// Consul's client would get a wrong answer and no error.

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/serf/coordinate"

	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/test/testutil"
)

// rawGet sends a GET with an optional Accept header and returns status,
// headers and body.
func rawGet(t *testing.T, a *Agent, path, accept string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+a.HTTPAddr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// statusCode is the HTTP status of an error from the consul/api client.
func statusCode(err error) int {
	var se api.StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// Item 1: the agent health endpoints answer with Consul's status codes
// and shapes; before them the client read every service as critical.
func TestConsulCompatAgentHealthService(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	ag := consulClient(t, a).Agent()
	for _, id := range []string{"web1", "web2"} {
		mustNil(t, "register", ag.ServiceRegister(&api.AgentServiceRegistration{
			ID: id, Name: "web", Port: 80, Tags: []string{"t1"},
			Check: &api.AgentServiceCheck{CheckID: id + "-ttl", TTL: "1h", Status: api.HealthPassing},
		}))
	}

	status, info, err := ag.AgentHealthServiceByID("web1")
	mustNil(t, "health by id", err)
	if status != api.HealthPassing || info == nil || info.Service == nil || info.Service.ID != "web1" ||
		info.AggregatedStatus != api.HealthPassing || len(info.Checks) != 1 || info.Checks[0].CheckID != "web1-ttl" ||
		info.Checks[0].Node != "alpha" || !slices.Equal(info.Checks[0].ServiceTags, []string{"t1"}) {
		t.Fatalf("web1 passing: %q %+v", status, info)
	}
	mustNil(t, "warn", ag.WarnTTL("web2-ttl", "slow"))
	status, info, err = ag.AgentHealthServiceByID("web2")
	mustNil(t, "health by id", err)
	if status != api.HealthWarning || info.AggregatedStatus != api.HealthWarning || info.Checks[0].Output != "slow" {
		t.Fatalf("web2 warning: %q %+v", status, info)
	}
	// By name: every instance, the worst status.
	status, infos, err := ag.AgentHealthServiceByName("web")
	mustNil(t, "health by name", err)
	if status != api.HealthWarning || len(infos) != 2 {
		t.Fatalf("web by name: %q %+v", status, infos)
	}
	mustNil(t, "fail", ag.FailTTL("web1-ttl", "down"))
	if status, _, _ := ag.AgentHealthServiceByName("web"); status != api.HealthCritical {
		t.Fatalf("web by name with web1 critical: %q", status)
	}
	// Unknown: the client's ("critical", nil, nil), from a 404.
	status, info, err = ag.AgentHealthServiceByID("nope")
	if err != nil || status != api.HealthCritical || info != nil {
		t.Fatalf("unknown id: %q %+v %v", status, info, err)
	}
	if status, infos, err := ag.AgentHealthServiceByName("nope"); err != nil || status != api.HealthCritical || infos != nil {
		t.Fatalf("unknown name: %q %+v %v", status, infos, err)
	}

	for _, tc := range []struct {
		path, accept string
		code         int
		body         string
	}{
		{"/v1/agent/health/service/id/web2?format=text", "", 429, "warning"},
		{"/v1/agent/health/service/id/web1", "text/plain", 503, "critical"},
		{"/v1/agent/health/service/name/web?format=text", "", 503, "critical"},
		{"/v1/agent/health/service/id/nope?format=text", "", 404, "ServiceId nope not found"},
		{"/v1/agent/health/service/name/nope?format=text", "", 404, "ServiceName nope Not Found"},
	} {
		code, hdr, body := rawGet(t, a, tc.path, tc.accept)
		if code != tc.code || body != tc.body || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") || hdr.Get("X-Consul-Reason") != tc.body {
			t.Errorf("GET %s (Accept %q): %d %q %v, want %d %q", tc.path, tc.accept, code, body, hdr, tc.code, tc.body)
		}
	}
	if code, _, body := rawGet(t, a, "/v1/agent/health/service/id/nope", ""); code != 404 || !strings.Contains(body, `"AggregatedStatus":"critical"`) {
		t.Errorf("unknown id as JSON: %d %s", code, body)
	}

	// Maintenance is 503 with the status "maintenance", as Consul.
	mustNil(t, "pass", ag.PassTTL("web1-ttl", ""))
	mustNil(t, "maint", ag.EnableServiceMaintenance("web1", "upgrade"))
	status, info, err = ag.AgentHealthServiceByID("web1")
	mustNil(t, "health by id", err)
	if status != api.HealthCritical || info.AggregatedStatus != api.HealthMaint {
		t.Fatalf("web1 in maintenance: %q %+v", status, info)
	}
}

// Item 2: after PUT /v1/agent/leave answers, peers no longer see the
// node alive.
func TestConsulCompatLeaveAnswersAfterBroadcast(t *testing.T) {
	agents := startCluster(t, 2, nil)
	c0 := consulClient(t, agents[0])
	mustNil(t, "leave", consulClient(t, agents[1]).Agent().Leave())
	// No polling: the answer must come after the leave went out.
	ms, err := c0.Agent().Members(false)
	mustNil(t, "members", err)
	for _, m := range ms {
		if m.Name == "node1" && m.Status == int(1) {
			t.Fatalf("node0 still sees node1 alive right after its leave answered: %+v", m)
		}
	}
	select {
	case <-agents[1].Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not stop after its leave")
	}
}

// Item 3: every AgentServiceRegistration field is kept and returned
// where Consul returns it; the ones Chorus cannot honour are refused.
func TestConsulCompatRegistrationFields(t *testing.T) {
	agents := startCluster(t, 2, nil)
	a := agents[0]
	c := consulClient(t, a)
	reg := &api.AgentServiceRegistration{
		ID: "web1", Name: "web", Address: "10.0.0.1", SocketPath: "/run/web.sock",
		Ports: api.ServicePorts{{Name: "http", Port: 8080, Default: true}, {Name: "admin", Port: 9090}},
		TaggedAddresses: map[string]api.ServiceAddress{
			"lan_ipv4": {Address: "10.0.0.1", Port: 8080}, "custom": {Address: "web.example.com", Port: 443},
		},
		EnableTagOverride: true, Locality: &api.Locality{Region: "eu", Zone: "eu-1a"},
	}
	mustNil(t, "register", c.Agent().ServiceRegister(reg))

	checkAgentService := func(where string, s *api.AgentService) {
		t.Helper()
		if s == nil || s.SocketPath != "/run/web.sock" || len(s.Ports) != 2 || s.Ports[0] != reg.Ports[0] || s.Ports[1] != reg.Ports[1] ||
			s.Port != 8080 || !s.EnableTagOverride || s.Locality == nil || *s.Locality != *reg.Locality ||
			s.TaggedAddresses["custom"] != reg.TaggedAddresses["custom"] || s.TaggedAddresses["lan_ipv4"] != reg.TaggedAddresses["lan_ipv4"] ||
			s.TaggedAddresses["wan_ipv4"] != (api.ServiceAddress{Address: "10.0.0.1", Port: 8080}) {
			t.Fatalf("%s: %+v", where, s)
		}
	}
	svc, _, err := c.Agent().Service("web1", nil)
	mustNil(t, "agent service", err)
	checkAgentService("agent service", svc)
	svcs, err := c.Agent().Services()
	mustNil(t, "agent services", err)
	checkAgentService("agent services", svcs["web1"])

	// Every agent: catalog, health and node answers.
	for _, ag := range agents {
		cc := consulClient(t, ag)
		testutil.Eventually(t, 10*time.Second, func() error {
			entries, _, err := cc.Health().Service("web", "", false, nil)
			if err != nil || len(entries) != 1 {
				return fmt.Errorf("health service on %s: %v %v", ag.NodeName(), entries, err)
			}
			return nil
		})
		entries, _, err := cc.Health().Service("web", "", false, nil)
		mustNil(t, "health", err)
		checkAgentService("health service on "+ag.NodeName(), entries[0].Service)
		node, _, err := cc.Catalog().Node("node0", nil)
		mustNil(t, "catalog node", err)
		checkAgentService("catalog node on "+ag.NodeName(), node.Services["web1"])
		cs, _, err := cc.Catalog().Service("web", "", nil)
		mustNil(t, "catalog service", err)
		if len(cs) != 1 || !cs[0].ServiceEnableTagOverride || cs[0].ServiceLocality == nil || *cs[0].ServiceLocality != *reg.Locality ||
			cs[0].ServiceTaggedAddresses["custom"] != reg.TaggedAddresses["custom"] || cs[0].ServicePort != 8080 {
			t.Fatalf("catalog service on %s: %+v", ag.NodeName(), cs)
		}
		code, _, body := rawGet(t, ag, "/v1/catalog/service/web", "")
		if code != 200 || !strings.Contains(body, `"ServiceSocketPath":"/run/web.sock"`) || !strings.Contains(body, `"ServicePorts":[{"Name":"http","Port":8080,"Default":true},{"Name":"admin","Port":9090}]`) {
			t.Fatalf("catalog service JSON on %s: %s", ag.NodeName(), body)
		}
	}

	// A change to one of these fields alone moves the content hash and
	// the catalog's ModifyIndex (blocking queries wake).
	_, meta, err := c.Agent().Service("web1", nil)
	mustNil(t, "agent service", err)
	cs, qm, err := c.Catalog().Service("web", "", nil)
	mustNil(t, "catalog service", err)
	reg2 := *reg
	reg2.Locality = &api.Locality{Region: "eu", Zone: "eu-1b"}
	mustNil(t, "re-register", c.Agent().ServiceRegister(&reg2))
	_, meta2, err := c.Agent().Service("web1", &api.QueryOptions{WaitHash: meta.LastContentHash, WaitTime: 5 * time.Second})
	mustNil(t, "agent service blocking", err)
	if meta2.LastContentHash == meta.LastContentHash {
		t.Fatal("content hash unchanged after a Locality change")
	}
	cs2, qm2, err := c.Catalog().Service("web", "", &api.QueryOptions{WaitIndex: qm.LastIndex, WaitTime: 5 * time.Second})
	mustNil(t, "catalog service blocking", err)
	if qm2.LastIndex == qm.LastIndex || cs2[0].ModifyIndex == cs[0].ModifyIndex || cs2[0].ServiceLocality.Zone != "eu-1b" {
		t.Fatalf("catalog answer did not move with a Locality change: %d→%d %+v", qm.LastIndex, qm2.LastIndex, cs2)
	}

	// Refused loudly, naming the field, and nothing registered.
	for _, tc := range []struct {
		field string
		reg   api.AgentServiceRegistration
	}{
		{"Proxy", api.AgentServiceRegistration{Name: "p1", Proxy: &api.AgentServiceConnectProxyConfig{DestinationServiceName: "web"}}},
		{"Connect", api.AgentServiceRegistration{Name: "p2", Connect: &api.AgentServiceConnect{Native: true}}},
		{"Kind", api.AgentServiceRegistration{Name: "p3", Kind: api.ServiceKindConnectProxy, Port: 1}},
		{"Kind", api.AgentServiceRegistration{Name: "p4", Kind: api.ServiceKindMeshGateway, Port: 1}},
		{"Namespace", api.AgentServiceRegistration{Name: "p5", Namespace: "team-a"}},
		{"Port and Ports", api.AgentServiceRegistration{Name: "p6", Port: 80, Ports: api.ServicePorts{{Name: "a", Port: 1, Default: true}}}},
		{"Ports", api.AgentServiceRegistration{Name: "p7", Ports: api.ServicePorts{{Name: "a", Port: 1}, {Name: "b", Port: 2}}}},
		{"Locality", api.AgentServiceRegistration{Name: "p8", Locality: &api.Locality{Zone: "z"}}},
		{"TaggedAddresses", api.AgentServiceRegistration{Name: "p9", TaggedAddresses: map[string]api.ServiceAddress{"lan_ipv4": {Address: "::1"}}}},
	} {
		err := c.Agent().ServiceRegister(&tc.reg)
		if statusCode(err) != 400 || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("register with %s: %v, want a 400 naming it", tc.field, err)
		}
		if _, _, err := c.Agent().Service(tc.reg.Name, nil); statusCode(err) != 404 {
			t.Errorf("refused %s registered anyway: %v", tc.reg.Name, err)
		}
	}

	// Persisted: a restarted agent has them all.
	cfg := *a.Config()
	a.Kill()
	<-a.Done()
	b := startAgent(t, cfg)
	svc, _, err = consulClient(t, b).Agent().Service("web1", nil)
	mustNil(t, "agent service after restart", err)
	if svc.Locality == nil || svc.Locality.Zone != "eu-1b" {
		t.Fatalf("after restart: %+v", svc)
	}
	svc.Locality = reg.Locality
	checkAgentService("agent service after restart", svc)
}

// Item 5: /v1/agent/self has DebugConfig with Consul's key names.
func TestConsulCompatSelfDebugConfig(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	self, err := consulClient(t, a).Agent().Self()
	mustNil(t, "self", err)
	dc := self["DebugConfig"]
	port := func(addr string) float64 {
		_, p, _ := strings.Cut(addr, ":")
		n, _ := strconv.Atoi(p)
		return float64(n)
	}
	want := map[string]any{
		"Datacenter": "dc1", "NodeName": "alpha", "ServerMode": false,
		"SerfPortLAN": port(a.SerfAddr()), "SerfAdvertiseAddrLAN": "tcp://" + a.SerfAddr(),
		"HTTPPort": port(a.HTTPAddr()), "DNSPort": port(a.DNSAddr()), "DNSDomain": "chorus", "AdvertiseAddrLAN": "127.0.0.1",
	}
	for k, v := range want {
		if dc[k] != v {
			t.Errorf("DebugConfig[%q] = %#v, want %#v", k, dc[k], v)
		}
	}
	if meta, _ := self["Meta"]["consul-network-segment"].(string); meta != "" || self["Meta"]["consul-network-segment"] == nil {
		t.Errorf("self Meta lacks consul-network-segment: %v", self["Meta"])
	}
}

// Item 6: the coordinate endpoints.
func TestConsulCompatCoordinates(t *testing.T) {
	agents := startCluster(t, 2, nil)
	c := consulClient(t, agents[0]).Coordinate()
	dcs, err := c.Datacenters()
	mustNil(t, "datacenters", err)
	if len(dcs) != 1 || dcs[0].Datacenter != "dc1" {
		t.Fatalf("coordinate datacenters: %+v", dcs)
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		nodes, qm, err := c.Nodes(nil)
		if err != nil {
			return err
		}
		if len(nodes) != 2 || nodes[0].Node != "node0" || nodes[1].Node != "node1" || qm.LastIndex == 0 {
			return fmt.Errorf("coordinate nodes: %+v", nodes)
		}
		for _, n := range nodes {
			if n.Coord == nil || len(n.Coord.Vec) != 8 {
				return fmt.Errorf("node %s: coordinate %+v", n.Node, n.Coord)
			}
		}
		return nil
	})
	one, _, err := c.Node("node1", nil)
	mustNil(t, "coordinate node", err)
	if len(one) != 1 || one[0].Node != "node1" || one[0].Coord == nil {
		t.Fatalf("coordinate node: %+v", one)
	}
	if _, _, err := c.Node("nope", nil); statusCode(err) != 404 {
		t.Fatalf("unknown node: %v", err)
	}
	// An agent's coordinate is measured, not set; an unknown node is a 404.
	coord := *one[0].Coord
	if _, err := c.Update(&api.CoordinateEntry{Node: "node1", Coord: &coord}, nil); statusCode(err) != 400 || !strings.Contains(err.Error(), "measured") {
		t.Fatalf("update of an agent's coordinate: %v", err)
	}
	if _, err := c.Update(&api.CoordinateEntry{Node: "nope", Coord: &coord}, nil); statusCode(err) != 404 {
		t.Fatalf("update of an unknown node: %v", err)
	}
	if _, err := c.Update(&api.CoordinateEntry{Node: "node1"}, nil); statusCode(err) != 400 || !strings.Contains(err.Error(), "Coord") {
		t.Fatalf("update without a coordinate: %v", err)
	}
	// A node that runs no agent takes the coordinate its monitor sends
	// (consul-esm), and ?near= sorts by it (it would come last by name).
	cl := consulClient(t, agents[0])
	_, err = cl.Catalog().Register(&api.CatalogRegistration{Node: "zzdb", Address: "10.9.9.9"}, nil)
	mustNil(t, "register external node", err)
	ext := coordinateNear(one[0].Coord)
	_, err = c.Update(&api.CoordinateEntry{Node: "zzdb", Coord: ext}, nil)
	mustNil(t, "update external node", err)
	got, _, err := c.Node("zzdb", nil)
	mustNil(t, "coordinate of the external node", err)
	if len(got) != 1 || got[0].Coord == nil || got[0].Coord.Vec[0] != ext.Vec[0] {
		t.Fatalf("external node coordinate: %+v", got)
	}
	nodes, _, err := cl.Catalog().Nodes(&api.QueryOptions{Near: "zzdb"})
	mustNil(t, "nodes near zzdb", err)
	if len(nodes) != 3 || nodes[0].Node != "zzdb" {
		t.Fatalf("nodes near zzdb: %v", nodeNames(nodes))
	}
}

// coordinateNear is a copy of c moved 0.1 ms away along the first axis.
func coordinateNear(c *coordinate.Coordinate) *coordinate.Coordinate {
	n := c.Clone()
	n.Vec[0] += 0.0001
	return n
}

func nodeNames(ns []*api.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Node
	}
	return out
}

// Item 9: another datacenter, node meta, metrics and monitor.
func TestConsulCompatShapes(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	c := consulClient(t, a)

	// Another dc: Consul's 500 "No path to datacenter".
	_, _, err := c.Catalog().Services(&api.QueryOptions{Datacenter: "dc2"})
	if statusCode(err) != 500 || !strings.Contains(err.Error(), "No path to datacenter") {
		t.Fatalf("dc2: %v", err)
	}
	if _, _, err := c.Catalog().Services(&api.QueryOptions{Datacenter: "dc1"}); err != nil {
		t.Fatalf("dc1: %v", err)
	}
	// Consul's agent answers its own endpoints, the keyring and the lists
	// of datacenters without reading dc, and its Go client sends its
	// configured dc on every request: a client configured for another
	// datacenter still registers with and reads this agent.
	other, err := api.NewClient(&api.Config{Address: a.HTTPAddr(), Datacenter: "dc2"})
	mustNil(t, "client for dc2", err)
	mustNil(t, "agent register with dc2", other.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "dcweb", Name: "dcweb", Port: 81}))
	svcs, err := other.Agent().Services()
	mustNil(t, "agent services with dc2", err)
	if svcs["dcweb"] == nil {
		t.Fatalf("agent services with dc2: %v", svcs)
	}
	_, err = other.Agent().Self()
	mustNil(t, "agent self with dc2", err)
	members, err := other.Agent().Members(false)
	mustNil(t, "agent members with dc2", err)
	if len(members) != 1 {
		t.Fatalf("agent members with dc2: %v", members)
	}
	dcs, err := other.Catalog().Datacenters()
	mustNil(t, "catalog datacenters with dc2", err)
	if !slices.Equal(dcs, []string{"dc1"}) {
		t.Fatalf("catalog datacenters with dc2: %v", dcs)
	}
	_, errHere := c.Operator().KeyringList(nil)
	if _, err := other.Operator().KeyringList(nil); statusCode(err) != statusCode(errHere) {
		t.Fatalf("keyring with dc2: %v; without: %v", err, errHere)
	}
	mustNil(t, "agent deregister with dc2", other.Agent().ServiceDeregister("dcweb"))
	if _, _, err := other.Health().Service("dcweb", "", false, nil); statusCode(err) != 500 {
		t.Fatalf("health read with dc2: %v, want Consul's 500", err)
	}

	node, _, err := c.Catalog().Node("alpha", nil)
	mustNil(t, "catalog node", err)
	if v, ok := node.Node.Meta["consul-network-segment"]; !ok || v != "" {
		t.Fatalf("node meta: %v", node.Node.Meta)
	}

	// Metrics from the Prometheus registry, in Consul's shape.
	mustNil(t, "register", c.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "web", Port: 80}))
	m, err := c.Agent().Metrics()
	mustNil(t, "metrics", err)
	found := false
	for _, cv := range m.Counters {
		if cv.Name == "chorus_http_requests_total" && cv.Labels["method"] == "PUT" && cv.Labels["code"] == "200" && cv.Sum >= 1 {
			found = true
		}
	}
	if m.Timestamp == "" || len(m.Gauges) == 0 || len(m.Samples) == 0 || !found {
		t.Fatalf("metrics: timestamp %q, %d gauges, %d samples, PUT 200 counter found %v", m.Timestamp, len(m.Gauges), len(m.Samples), found)
	}
	if code, hdr, body := rawGet(t, a, "/v1/agent/metrics?format=prometheus", ""); code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") || !strings.Contains(body, "chorus_http_requests_total") {
		t.Fatalf("metrics as Prometheus text: %d %s", code, hdr)
	}

	// Monitor: debug lines, below the level the agent logs at.
	for _, asJSON := range []bool{false, true} {
		stop := make(chan struct{})
		monitor := c.Agent().Monitor
		if asJSON {
			monitor = c.Agent().MonitorJSON
		}
		lines, err := monitor("debug", stop, nil)
		mustNil(t, "monitor", err)
		id := fmt.Sprintf("mon-%v", asJSON)
		// The stream is open once the answer's headers came; the
		// registration's debug line is logged after that.
		mustNil(t, "register", c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: "web", Port: 80}))
		deadline := time.After(10 * time.Second)
	wait:
		for {
			select {
			case l := <-lines:
				if strings.Contains(l, "service registered") && strings.Contains(l, id) {
					if asJSON != strings.HasPrefix(l, "{") || (!asJSON && !strings.Contains(l, "[DEBUG]")) {
						t.Fatalf("monitor line (json %v): %s", asJSON, l)
					}
					break wait
				}
			case <-deadline:
				t.Fatalf("no 'service registered' line for %s on the monitor stream", id)
			}
		}
		close(stop)
	}
	if _, err := c.Agent().Monitor("loud", nil, nil); statusCode(err) != 400 {
		t.Fatalf("unknown log level: %v", err)
	}
}

// Item 10: what Chorus does not provide fails loudly with 501 (never a
// 404 the client reads as "no such key"), and the Serf tags Consul's CLI
// reads tell the truth.
func TestConsulCompatNotProvidedAndMemberTags(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	c := consulClient(t, a)
	pair, _, err := c.KV().Get("foo", nil)
	if pair != nil || statusCode(err) != 501 || !strings.Contains(err.Error(), "Chorus does not provide the KV store") {
		t.Fatalf("KV get: %+v %v", pair, err)
	}
	for name, call := range map[string]func() error{
		"acl":      func() error { _, _, err := c.ACL().TokenList(nil); return err },
		"session":  func() error { _, _, err := c.Session().List(nil); return err },
		"raft":     func() error { _, err := c.Operator().RaftGetConfiguration(nil); return err },
		"query":    func() error { _, _, err := c.PreparedQuery().List(nil); return err },
		"snapshot": func() error { _, _, err := c.Snapshot().Save(nil); return err },
		"connect":  func() error { _, _, err := c.Connect().CARoots(nil); return err },
		"txn":      func() error { _, _, _, err := c.Txn().Txn(api.TxnOps{}, nil); return err },
	} {
		// (The client's Txn error shows the body but not the status.)
		if err := call(); err == nil || !strings.Contains(err.Error(), "Chorus does not provide") || (name != "txn" && !strings.Contains(err.Error(), "501")) {
			t.Errorf("%s: %v, want a 501 saying Chorus does not provide it", name, err)
		}
	}

	ms, err := c.Agent().Members(false)
	mustNil(t, "members", err)
	if len(ms) != 1 {
		t.Fatalf("members: %+v", ms)
	}
	tags := ms[0].Tags
	if tags["role"] != api.MemberTagValueRoleClient || tags["build"] != Version || tags["vsn"] != strconv.Itoa(int(catalog.RecordFormat)) || tags["dc"] != "dc1" {
		t.Fatalf("member tags: %v", tags)
	}
}

// PUT /v1/agent/reload (consul reload) reloads from the agent's
// configuration source, as SIGHUP does; an agent without one says so.
func TestConsulCompatReload(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	c := consulClient(t, a)
	if err := c.Agent().Reload(); statusCode(err) != 500 || !strings.Contains(err.Error(), "nothing to reload") {
		t.Fatalf("reload without a source: %v", err)
	}
	a.SetReloadSource(func() error {
		next := *a.Config()
		def, err := local.DecodeServiceDefinition([]byte(`{"Name":"from-file","Port":9}`), true)
		if err != nil {
			return err
		}
		next.Services = append(next.Services, def)
		return a.Reload(next)
	})
	mustNil(t, "reload", c.Agent().Reload())
	svcs, err := c.Agent().Services()
	mustNil(t, "services", err)
	if svcs["from-file"] == nil {
		t.Fatalf("after reload: %+v", svcs)
	}
	a.SetReloadSource(func() error { next := *a.Config(); next.SerfPort = 1; return a.Reload(next) })
	if err := c.Agent().Reload(); statusCode(err) != 500 || !strings.Contains(err.Error(), "serf_port cannot change") {
		t.Fatalf("reload with a setting that needs a restart: %v", err)
	}
}
