package agent

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/chorusdns/chorus/test/testutil"
)

// consulClient returns the real Consul Go client pointed at an agent.
func consulClient(t testing.TB, a *Agent) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: a.HTTPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustNil(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestConsulAPIAgentServices(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	c := consulClient(t, a)
	agent := c.Agent()

	mustNil(t, "register", agent.ServiceRegister(&api.AgentServiceRegistration{
		ID: "web1", Name: "web", Port: 8080, Tags: []string{"v1", "primary"}, Meta: map[string]string{"version": "1"},
		Address: "10.0.0.1", Weights: &api.AgentWeights{Passing: 3, Warning: 1},
		Check: &api.AgentServiceCheck{TTL: "30s", Status: api.HealthPassing},
	}))
	mustNil(t, "register", agent.ServiceRegisterOpts(&api.AgentServiceRegistration{
		ID: "web2", Name: "web", Port: 8081, Tags: []string{"v2"},
		Checks: api.AgentServiceChecks{{CheckID: "web2-ttl", TTL: "30s"}, {CheckID: "web2-tcp", TCP: "127.0.0.1:1", Interval: "10s", Timeout: "1s"}},
	}, api.ServiceRegisterOpts{ReplaceExistingChecks: true}))

	name, err := agent.NodeName()
	mustNil(t, "node name", err)
	if name != "alpha" {
		t.Fatalf("NodeName = %q", name)
	}
	self, err := agent.Self()
	mustNil(t, "self", err)
	if self["Config"]["Datacenter"] != "dc1" || self["Member"]["Name"] != "alpha" {
		t.Fatalf("self: %v", self)
	}
	host, err := agent.Host()
	mustNil(t, "host", err)
	if _, ok := host["Host"]; !ok {
		t.Fatalf("host: %v", host)
	}

	svcs, err := agent.Services()
	mustNil(t, "services", err)
	w1 := svcs["web1"]
	if len(svcs) != 2 || w1 == nil || w1.Service != "web" || w1.Port != 8080 || w1.Address != "10.0.0.1" ||
		w1.Weights.Passing != 3 || w1.Meta["version"] != "1" || !slices.Equal(w1.Tags, []string{"v1", "primary"}) ||
		w1.TaggedAddresses["lan_ipv4"].Address != "10.0.0.1" || w1.Datacenter != "dc1" {
		t.Fatalf("services: %+v", svcs)
	}
	filtered, err := agent.ServicesWithFilter(`v2 in Tags`)
	mustNil(t, "services filter", err)
	if len(filtered) != 1 || filtered["web2"] == nil {
		t.Fatalf("filtered services: %+v", filtered)
	}

	// Hash-based blocking on one service: the hash holds until it changes.
	svc, meta, err := agent.Service("web1", nil)
	mustNil(t, "service", err)
	if svc.ContentHash == "" || meta.LastContentHash != svc.ContentHash {
		t.Fatalf("content hash: body %q header %q", svc.ContentHash, meta.LastContentHash)
	}
	start := time.Now()
	_, meta2, err := agent.Service("web1", &api.QueryOptions{WaitHash: meta.LastContentHash, WaitTime: 300 * time.Millisecond})
	mustNil(t, "service wait", err)
	if meta2.LastContentHash != meta.LastContentHash || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("hash wait returned after %v with %q", time.Since(start), meta2.LastContentHash)
	}
	done := make(chan *api.AgentService, 1)
	go func() {
		s, _, err := agent.Service("web1", &api.QueryOptions{WaitHash: meta.LastContentHash, WaitTime: 10 * time.Second})
		if err != nil {
			t.Error(err)
		}
		done <- s
	}()
	waitParked(t, a, 1)
	mustNil(t, "re-register", agent.ServiceRegister(&api.AgentServiceRegistration{ID: "web1", Name: "web", Port: 9090, Check: &api.AgentServiceCheck{TTL: "30s"}}))
	select {
	case s := <-done:
		if s == nil || s.Port != 9090 {
			t.Fatalf("hash wait woke with %+v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hash wait did not return on change")
	}
	if _, _, err := agent.Service("nope", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown service: %v", err)
	}

	checks, err := agent.Checks()
	mustNil(t, "checks", err)
	if c := checks["web2-tcp"]; c == nil || c.Type != "tcp" || c.Definition.TCP != "127.0.0.1:1" || c.Definition.IntervalDuration != 10*time.Second || c.ServiceName != "web" {
		t.Fatalf("checks: %+v", checks["web2-tcp"])
	}

	mustNil(t, "deregister", agent.ServiceDeregister("web2"))
	svcs, err = agent.Services()
	mustNil(t, "services", err)
	if len(svcs) != 1 {
		t.Fatalf("after deregister: %+v", svcs)
	}
	checks, err = agent.Checks()
	mustNil(t, "checks", err)
	if _, ok := checks["web2-ttl"]; ok {
		t.Fatalf("check of a deregistered service remains: %+v", checks)
	}
}

func TestConsulAPITTLAndMaintenance(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	c := consulClient(t, a)
	agent, health := c.Agent(), c.Health()
	mustNil(t, "register", agent.ServiceRegister(&api.AgentServiceRegistration{ID: "db", Name: "db", Port: 5432, Check: &api.AgentServiceCheck{CheckID: "db-ttl", TTL: "1m"}}))

	status := func() string {
		t.Helper()
		es, _, err := health.Service("db", "", false, nil)
		mustNil(t, "health", err)
		if len(es) != 1 {
			t.Fatalf("entries: %d", len(es))
		}
		return es[0].Checks.AggregatedStatus()
	}
	if s := status(); s != api.HealthCritical {
		t.Fatalf("initial status %q", s)
	}
	mustNil(t, "pass", agent.PassTTL("db-ttl", "ok"))
	if s := status(); s != api.HealthPassing {
		t.Fatalf("after PassTTL: %q", s)
	}
	mustNil(t, "warn", agent.WarnTTL("db-ttl", "slow"))
	if s := status(); s != api.HealthWarning {
		t.Fatalf("after WarnTTL: %q", s)
	}
	mustNil(t, "update", agent.UpdateTTL("db-ttl", "replica lag 3s", "fail"))
	checks, _, err := health.Checks("db", nil)
	mustNil(t, "checks", err)
	if len(checks) != 1 || checks[0].Status != api.HealthCritical || checks[0].Output != "replica lag 3s" {
		t.Fatalf("after UpdateTTL: %+v", checks)
	}
	mustNil(t, "update", agent.UpdateTTL("db-ttl", "fine", api.HealthPassing))
	if err := agent.UpdateTTL("nope", "", "pass"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown check: %v", err)
	}

	mustNil(t, "service maintenance", agent.EnableServiceMaintenance("db", "upgrade"))
	es, _, err := health.Service("db", "", false, nil)
	mustNil(t, "health", err)
	if es[0].Checks.AggregatedStatus() != api.HealthMaint {
		t.Fatalf("maintenance status: %q", es[0].Checks.AggregatedStatus())
	}
	var notes string
	for _, ch := range es[0].Checks {
		if ch.CheckID == api.ServiceMaintPrefix+"db" {
			notes = ch.Notes
		}
	}
	if notes != "upgrade" {
		t.Fatalf("maintenance reason %q", notes)
	}
	if es, _, _ := health.Service("db", "", true, nil); len(es) != 0 {
		t.Fatalf("passing-only answers include a service in maintenance: %d", len(es))
	}
	mustNil(t, "service maintenance off", agent.DisableServiceMaintenance("db"))
	if s := status(); s != api.HealthPassing {
		t.Fatalf("after maintenance: %q", s)
	}
	mustNil(t, "node maintenance", agent.EnableNodeMaintenance("rack work"))
	if s := status(); s != api.HealthMaint {
		t.Fatalf("node maintenance status: %q", s)
	}
	nodeChecks, _, err := health.Node("alpha", nil)
	mustNil(t, "health node", err)
	found := false
	for _, ch := range nodeChecks {
		found = found || (ch.CheckID == api.NodeMaint && ch.Notes == "rack work")
	}
	if !found {
		t.Fatalf("node checks: %+v", nodeChecks)
	}
	mustNil(t, "node maintenance off", agent.DisableNodeMaintenance())
	if s := status(); s != api.HealthPassing {
		t.Fatalf("after node maintenance: %q", s)
	}
}

func TestConsulAPIHealthQueries(t *testing.T) {
	agents := startCluster(t, 3, nil)
	for i, a := range agents {
		c := consulClient(t, a)
		meta := map[string]string{"version": fmt.Sprint(i % 2), "team": "blue"}
		tags := []string{"v1", fmt.Sprintf("n%d", i)}
		if i == 2 {
			tags = append(tags, "canary")
		}
		mustNil(t, "register", c.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: "api", Name: "api", Port: 9000 + i, Tags: tags, Meta: meta,
			Check: &api.AgentServiceCheck{CheckID: "api-ttl", TTL: "1m", Status: api.HealthPassing},
		}))
	}
	// node2's instance fails its check.
	mustNil(t, "fail", consulClient(t, agents[2]).Agent().FailTTL("api-ttl", "down"))
	c := consulClient(t, agents[0])
	health := c.Health()
	testutil.Eventually(t, 10*time.Second, func() error {
		es, _, err := health.Service("api", "", false, nil)
		if err != nil {
			return err
		}
		if len(es) != 3 || es[2].Checks.AggregatedStatus() != api.HealthCritical {
			return fmt.Errorf("%d entries", len(es))
		}
		return nil
	})

	nodes := func(es []*api.ServiceEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Node.Node)
		}
		return out
	}
	cases := []struct {
		name    string
		tags    []string
		passing bool
		filter  string
		want    []string
	}{
		{name: "all", want: []string{"node0", "node1", "node2"}},
		{name: "passing", passing: true, want: []string{"node0", "node1"}},
		{name: "tag", tags: []string{"canary"}, want: []string{"node2"}},
		{name: "tags all match", tags: []string{"v1", "n1"}, want: []string{"node1"}},
		{name: "tags none match", tags: []string{"n0", "n1"}, want: nil},
		{name: "tag case-insensitive", tags: []string{"CANARY"}, want: []string{"node2"}},
		{name: "filter meta", filter: `Service.Meta.version == "1"`, want: []string{"node1"}},
		{name: "filter tags", filter: `"canary" in Service.Tags`, want: []string{"node2"}},
		{name: "filter not", filter: `not (Service.Tags contains canary)`, want: []string{"node0", "node1"}},
		{name: "filter checks", filter: `Checks.Status == critical`, want: []string{"node2"}},
		{name: "filter node", filter: `Node.Node == node0 or Node.Node == "node2"`, want: []string{"node0", "node2"}},
		{name: "filter and passing", filter: `Service.Meta.team == blue and Service.Port != 9000`, passing: true, want: []string{"node1"}},
		{name: "filter absent meta", filter: `Service.Meta.missing is empty`, want: []string{"node0", "node1", "node2"}},
		{name: "filter node meta", filter: `Node.Meta is not empty or Node.Address == "127.0.0.1"`, want: []string{"node0", "node1", "node2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			es, meta, err := health.ServiceMultipleTags("api", tc.tags, tc.passing, &api.QueryOptions{Filter: tc.filter, AllowStale: true})
			mustNil(t, "health", err)
			if got := nodes(es); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if meta.LastIndex == 0 || !meta.KnownLeader || meta.LastContact != 0 {
				t.Fatalf("query meta: %+v", meta)
			}
		})
	}

	// A bad filter is a 400 that names the problem.
	_, _, err := health.Service("api", "", false, &api.QueryOptions{Filter: `Service.Nope == 1`})
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "Nope") {
		t.Fatalf("bad filter: %v", err)
	}

	// near=_agent puts the asking agent's own instance first.
	for i, a := range agents {
		es, _, err := consulClient(t, a).Health().Service("api", "", false, &api.QueryOptions{Near: "_agent"})
		mustNil(t, "near", err)
		if len(es) != 3 || es[0].Node.Node != a.NodeName() {
			t.Fatalf("agent %d near: %v", i, nodes(es))
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		// Once coordinates are known every node has an estimate and the
		// answer is sorted by it.
		es, _, err := health.Service("api", "", false, &api.QueryOptions{Near: "node1"})
		if err != nil {
			return err
		}
		if len(es) != 3 || es[0].Node.Node != "node1" {
			return fmt.Errorf("near node1: %v", nodes(es))
		}
		return nil
	})

	// Catalog views of the same service.
	cs, _, err := c.Catalog().Service("api", "canary", nil)
	mustNil(t, "catalog service", err)
	if len(cs) != 1 || cs[0].Node != "node2" || cs[0].ServicePort != 9002 || cs[0].ServiceMeta["team"] != "blue" || cs[0].Datacenter != "dc1" {
		t.Fatalf("catalog service: %+v", cs)
	}
	cs, _, err = c.Catalog().Service("api", "", &api.QueryOptions{Filter: `ServiceMeta.version == "0" and ServiceTags contains n2`})
	mustNil(t, "catalog service filter", err)
	if len(cs) != 1 || cs[0].Node != "node2" {
		t.Fatalf("catalog service filter: %+v", cs)
	}
	cs, _, err = c.Catalog().Service("api", "", &api.QueryOptions{Filter: `NodeMeta is not empty and NodeMeta["consul-network-segment"] == "" and Node matches "^node[01]$"`})
	mustNil(t, "catalog service filter", err)
	if len(cs) != 2 {
		t.Fatalf("catalog service NodeMeta filter: %+v", cs)
	}
	states, _, err := health.State(api.HealthCritical, nil)
	mustNil(t, "state", err)
	if len(states) != 1 || states[0].Node != "node2" || states[0].ServiceName != "api" || !slices.Contains(states[0].ServiceTags, "canary") {
		t.Fatalf("critical checks: %+v", states)
	}
	states, _, err = health.State("any", &api.QueryOptions{Filter: `CheckID == serfHealth`})
	mustNil(t, "state filter", err)
	if len(states) != 3 {
		t.Fatalf("serfHealth checks: %+v", states)
	}
	members, err := c.Agent().Members(false)
	mustNil(t, "members", err)
	if len(members) != 3 || members[0].Name != "node0" || members[0].Status != 1 || members[0].Addr != "127.0.0.1" || members[0].Port == 0 {
		t.Fatalf("members: %+v", members[0])
	}
	members, err = c.Agent().MembersOpts(api.MembersOpts{Filter: `Name != node0`})
	mustNil(t, "members filter", err)
	if len(members) != 2 {
		t.Fatalf("members filter: %d", len(members))
	}
	peers, err := c.Status().Peers()
	mustNil(t, "peers", err)
	leader, err := c.Status().Leader()
	mustNil(t, "leader", err)
	if len(peers) != 3 || leader != agents[0].SerfAddr() {
		t.Fatalf("peers %v leader %q", peers, leader)
	}
}

func TestConsulAPICatalog(t *testing.T) {
	cfg := testConfig(t, "alpha")
	cfg.NodeMeta = map[string]string{"rack": "r1"}
	a := startAgent(t, cfg)
	c := consulClient(t, a)
	mustNil(t, "register", c.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "web", Port: 80, Tags: []string{"http", "prom"}}))
	mustNil(t, "register", c.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "cache", Port: 6379}))
	cat := c.Catalog()

	dcs, err := cat.Datacenters()
	mustNil(t, "datacenters", err)
	if !slices.Equal(dcs, []string{"dc1"}) {
		t.Fatalf("datacenters %v", dcs)
	}
	svcs, meta, err := cat.Services(&api.QueryOptions{AllowStale: true})
	mustNil(t, "services", err)
	if !slices.Equal(svcs["web"], []string{"http", "prom"}) || svcs["cache"] == nil || len(svcs["cache"]) != 0 || meta.LastIndex == 0 {
		t.Fatalf("services %v %+v", svcs, meta)
	}
	svcs, _, err = cat.Services(&api.QueryOptions{Filter: `ServiceTags contains prom`})
	mustNil(t, "services filter", err)
	if len(svcs) != 1 || svcs["web"] == nil {
		t.Fatalf("services filter %v", svcs)
	}
	svcs, _, err = cat.Services(&api.QueryOptions{NodeMeta: map[string]string{"rack": "r2"}})
	mustNil(t, "services node-meta", err)
	if len(svcs) != 0 {
		t.Fatalf("services node-meta %v", svcs)
	}
	nodes, _, err := cat.Nodes(&api.QueryOptions{NodeMeta: map[string]string{"rack": "r1"}})
	mustNil(t, "nodes", err)
	if len(nodes) != 1 || nodes[0].Node != "alpha" || nodes[0].Meta["rack"] != "r1" || nodes[0].TaggedAddresses["lan"] != "127.0.0.1" || nodes[0].ID == "" {
		t.Fatalf("nodes %+v", nodes)
	}
	nodes, _, err = cat.Nodes(&api.QueryOptions{Filter: `Meta.rack != r1`})
	mustNil(t, "nodes filter", err)
	if len(nodes) != 0 {
		t.Fatalf("nodes filter %+v", nodes)
	}
	node, _, err := cat.Node("alpha", nil)
	mustNil(t, "node", err)
	// web, cache and the agent's built-in "chorus" service.
	if node.Node.Node != "alpha" || len(node.Services) != 3 || node.Services["web"].Port != 80 || node.Services["chorus"] == nil {
		t.Fatalf("node %+v", node)
	}
	node, _, err = cat.Node("alpha", &api.QueryOptions{Filter: `Service == cache`})
	mustNil(t, "node filter", err)
	if len(node.Services) != 1 || node.Services["cache"] == nil {
		t.Fatalf("node filter %+v", node.Services)
	}
	node, _, err = cat.Node("ghost", nil)
	mustNil(t, "unknown node", err)
	if node != nil {
		t.Fatalf("unknown node: %+v", node)
	}
	list, _, err := cat.NodeServiceList("alpha", nil)
	mustNil(t, "node services", err)
	if list.Node == nil || list.Node.Node != "alpha" || len(list.Services) != 3 || list.Services[0].ID != "cache" || list.Services[1].ID != "chorus" {
		t.Fatalf("node services %+v", list)
	}
	list, _, err = cat.NodeServiceList("ghost", nil)
	mustNil(t, "node services of an unknown node", err)
	if list.Node != nil || len(list.Services) != 0 {
		t.Fatalf("unknown node services %+v", list)
	}
	if _, err := c.KV().Put(&api.KVPair{Key: "k", Value: []byte("v")}, nil); err == nil || !strings.Contains(err.Error(), "does not provide") {
		t.Fatalf("KV: %v", err)
	}
	if _, _, err := cat.Services(&api.QueryOptions{Datacenter: "dc9"}); err == nil || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "No path to datacenter") {
		t.Fatalf("other datacenter: %v", err)
	}
}

func TestConsulAPIBlockingQueries(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	c := consulClient(t, a)
	mustNil(t, "register", c.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "web", Port: 80, Check: &api.AgentServiceCheck{CheckID: "web-ttl", TTL: "1m", Status: api.HealthPassing}}))
	mustNil(t, "register", c.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "other", Port: 81, Check: &api.AgentServiceCheck{CheckID: "other-ttl", TTL: "1m"}}))
	health := c.Health()
	_, meta, err := health.Service("web", "", false, nil)
	mustNil(t, "health", err)
	idx := meta.LastIndex

	type result struct {
		es   []*api.ServiceEntry
		meta *api.QueryMeta
		err  error
		took time.Duration
	}
	watch := func(q *api.QueryOptions, passing bool) <-chan result {
		ch := make(chan result, 1)
		go func() {
			start := time.Now()
			es, meta, err := health.Service("web", "", passing, q)
			ch <- result{es, meta, err, time.Since(start)}
		}()
		return ch
	}

	t.Run("returns on change, not on unrelated changes", func(t *testing.T) {
		ch := watch(&api.QueryOptions{WaitIndex: idx, WaitTime: 20 * time.Second}, false)
		waitParked(t, a, 1)
		for i := 0; i < 5; i++ { // another service flaps
			mustNil(t, "flap", c.Agent().UpdateTTL("other-ttl", fmt.Sprint(i), []string{"pass", "fail"}[i%2]))
		}
		// That nothing wakes the query can only be shown over a window
		// (here and below): 300 ms, far longer than a wake takes.
		select {
		case r := <-ch:
			t.Fatalf("woke on an unrelated change: %+v", r.meta)
		case <-time.After(300 * time.Millisecond):
		}
		mustNil(t, "warn", c.Agent().WarnTTL("web-ttl", "slow"))
		select {
		case r := <-ch:
			mustNil(t, "watch", r.err)
			if r.meta.LastIndex <= idx || r.es[0].Checks.AggregatedStatus() != api.HealthWarning {
				t.Fatalf("woke with index %d (was %d), status %q", r.meta.LastIndex, idx, r.es[0].Checks.AggregatedStatus())
			}
			idx = r.meta.LastIndex
		case <-time.After(5 * time.Second):
			t.Fatal("did not return on change")
		}
	})

	t.Run("returns on timeout with the same index", func(t *testing.T) {
		r := <-watch(&api.QueryOptions{WaitIndex: idx, WaitTime: 300 * time.Millisecond}, false)
		mustNil(t, "watch", r.err)
		if r.meta.LastIndex != idx || r.took < 250*time.Millisecond {
			t.Fatalf("timeout: index %d (was %d) after %v", r.meta.LastIndex, idx, r.took)
		}
	})

	t.Run("a change that does not change the answer does not end the wait", func(t *testing.T) {
		// With ?passing, the warning instance is not in the answer;
		// changing its output touches the service but not the answer.
		_, meta, err := health.Service("web", "", true, nil)
		mustNil(t, "health", err)
		ch := watch(&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 20 * time.Second}, true)
		waitParked(t, a, 1)
		mustNil(t, "fail", c.Agent().FailTTL("web-ttl", "down"))
		select {
		case r := <-ch:
			t.Fatalf("woke though the passing answer stayed empty: %+v", r.es)
		case <-time.After(300 * time.Millisecond):
		}
		mustNil(t, "pass", c.Agent().PassTTL("web-ttl", "ok"))
		select {
		case r := <-ch:
			mustNil(t, "watch", r.err)
			if len(r.es) != 1 {
				t.Fatalf("passing answer: %+v", r.es)
			}
			idx = r.meta.LastIndex
		case <-time.After(5 * time.Second):
			t.Fatal("did not return when the instance passed")
		}
	})

	t.Run("returns at once when the client's index is ahead", func(t *testing.T) {
		r := <-watch(&api.QueryOptions{WaitIndex: idx + 1e12, WaitTime: 20 * time.Second}, false)
		mustNil(t, "watch", r.err)
		if r.took > 2*time.Second || r.meta.LastIndex != idx {
			t.Fatalf("index ahead: %v, index %d", r.took, r.meta.LastIndex)
		}
	})

	t.Run("catalog services and nodes block too", func(t *testing.T) {
		_, meta, err := c.Catalog().Services(nil)
		mustNil(t, "services", err)
		done := make(chan uint64, 1)
		go func() {
			_, m, err := c.Catalog().Services(&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 20 * time.Second})
			if err != nil {
				t.Error(err)
			}
			done <- m.LastIndex
		}()
		waitParked(t, a, 1)
		// Health changes do not change the list of names and tags.
		mustNil(t, "flap", c.Agent().FailTTL("other-ttl", "x"))
		select {
		case <-done:
			t.Fatal("services woke on a health change")
		case <-time.After(300 * time.Millisecond):
		}
		mustNil(t, "register", c.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "new", Port: 1}))
		select {
		case got := <-done:
			if got <= meta.LastIndex {
				t.Fatalf("services index %d, was %d", got, meta.LastIndex)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("services did not return on a new service")
		}

		_, nmeta, err := c.Catalog().Nodes(nil)
		mustNil(t, "nodes", err)
		start := time.Now()
		mustNil(t, "flap", c.Agent().PassTTL("other-ttl", "y")) // node list unchanged
		_, nmeta2, err := c.Catalog().Nodes(&api.QueryOptions{WaitIndex: nmeta.LastIndex, WaitTime: 400 * time.Millisecond})
		mustNil(t, "nodes", err)
		if time.Since(start) < 350*time.Millisecond || nmeta2.LastIndex < nmeta.LastIndex {
			t.Fatalf("nodes returned after %v with index %d (was %d)", time.Since(start), nmeta2.LastIndex, nmeta.LastIndex)
		}
	})

	t.Run("agent services block on the content hash", func(t *testing.T) {
		get := func(path string) (string, time.Duration) {
			start := time.Now()
			resp, err := http.Get("http://" + a.HTTPAddr() + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d", path, resp.StatusCode)
			}
			return resp.Header.Get("X-Consul-ContentHash"), time.Since(start)
		}
		h, _ := get("/v1/agent/services")
		if h == "" {
			t.Fatal("no X-Consul-ContentHash")
		}
		if h2, took := get("/v1/agent/services?hash=" + h + "&wait=300ms"); h2 != h || took < 250*time.Millisecond {
			t.Fatalf("hash wait: %q after %v", h2, took)
		}
		if h2, took := get("/v1/agent/services?hash=stale&wait=10s"); h2 != h || took > 2*time.Second {
			t.Fatalf("stale hash: %q after %v", h2, took)
		}
		done := make(chan string, 1)
		go func() {
			h2, _ := get("/v1/agent/services?hash=" + h + "&wait=20s")
			done <- h2
		}()
		waitParked(t, a, 1)
		mustNil(t, "register", c.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "newer", Port: 2}))
		select {
		case h2 := <-done:
			if h2 == h {
				t.Fatal("woke with the same hash")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("hash wait did not return on change")
		}
	})
}

func TestConsulAPIErrorsAreJSON(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	cases := []struct{ path, want string }{
		{"/v1/health/service/x?filter=" + urlEscape(`Service.ID ==`), "expected a selector or value"},
		{"/v1/health/service/x?filter=" + urlEscape(`Service.Tags == "a"`), "use in, contains or is empty"},
		{"/v1/catalog/service/x?filter=" + urlEscape(`ServicePort == "eighty"`), "integer"},
		{"/v1/catalog/service/x?filter=" + urlEscape(`Node matches "("`), "regular expression"},
		{"/v1/catalog/services?stale&consistent", "conflicting"},
		{"/v1/health/service/x?index=abc", "index"},
		{"/v1/health/service/x?wait=soon", "wait"},
		{"/v1/health/service/x?node-meta=nocolon", "key:value"},
		{"/v1/session/list", "does not provide"},
	}
	for _, tc := range cases {
		code, body := do(t, a, "GET", tc.path, nil)
		if (code/100 != 4 && code != 501) || !strings.Contains(string(body), tc.want) || !strings.HasPrefix(string(body), `{"error":`) {
			t.Errorf("%s: %d %s (want %q)", tc.path, code, body, tc.want)
		}
	}
}

func urlEscape(s string) string { return url.QueryEscape(s) }
