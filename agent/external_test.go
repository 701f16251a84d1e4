package agent

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"

	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/test/testutil"
)

// metricValue reads an unlabelled counter or gauge from a's registry.
func metricValue(t testing.TB, a *Agent, name string) float64 {
	t.Helper()
	mfs, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) != 1 {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s: no metric %s", a.NodeName(), name)
	return 0
}

// dnsAsk asks a's DNS server over UDP and returns the reply or an error
// (for use inside Eventually).
func dnsAsk(a *Agent, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, a.DNSAddr())
	return r, err
}

// externalSeen checks that agent a answers for the external node db1 as
// registered: catalog node (meta, tagged addresses, both services),
// health node (its node check, no serfHealth), health service, DNS node
// and service answers.
func externalSeen(a *Agent) error {
	c, err := api.NewClient(&api.Config{Address: a.HTTPAddr()})
	if err != nil {
		return err
	}
	cn, _, err := c.Catalog().Node("db1", nil)
	if err != nil {
		return err
	}
	if cn == nil || cn.Node == nil {
		return fmt.Errorf("%s: /v1/catalog/node/db1: not found", a.NodeName())
	}
	if cn.Node.Address != "10.20.0.5" || len(cn.Node.Meta) != 1 || cn.Node.Meta["rack"] != "r1" || cn.Node.Datacenter != "dc1" ||
		len(cn.Node.TaggedAddresses) != 1 || cn.Node.TaggedAddresses["wan"] != "203.0.113.5" { // as registered, nothing an agent adds
		return fmt.Errorf("%s: node %+v", a.NodeName(), cn.Node)
	}
	if len(cn.Services) != 2 || cn.Services["pg"] == nil || cn.Services["pg"].Port != 5432 || cn.Services["exporter"] == nil {
		return fmt.Errorf("%s: services %v", a.NodeName(), cn.Services)
	}
	hc, _, err := c.Health().Node("db1", nil)
	if err != nil {
		return err
	}
	var ids []string
	for _, h := range hc {
		ids = append(ids, h.CheckID+"="+h.Status)
	}
	slices.Sort(ids)
	if want := []string{"db-alive=passing", "pg-ready=passing"}; !slices.Equal(ids, want) {
		return fmt.Errorf("%s: /v1/health/node/db1 checks %v, want %v", a.NodeName(), ids, want)
	}
	es, _, err := c.Health().Service("postgres", "", true, nil)
	if err != nil {
		return err
	}
	var nodes []string
	for _, e := range es {
		nodes = append(nodes, e.Node.Node)
		if e.Node.Node == "db1" && (len(e.Checks) != 2 || e.Service.ID != "pg") {
			return fmt.Errorf("%s: health entry %+v %+v", a.NodeName(), e.Service, e.Checks)
		}
	}
	slices.Sort(nodes)
	if !slices.Equal(nodes, []string{"db1", "db2"}) { // service ID pg on two external nodes
		return fmt.Errorf("%s: postgres on %v", a.NodeName(), nodes)
	}
	r, err := dnsAsk(a, "db1.node.chorus", dns.TypeA)
	if err != nil {
		return err
	}
	if got := answerAddrs(r); !slices.Equal(got, []string{"10.20.0.5"}) {
		return fmt.Errorf("%s: db1.node A %v (rcode %s)", a.NodeName(), got, dns.RcodeToString[r.Rcode])
	}
	r, err = dnsAsk(a, "postgres.service.chorus", dns.TypeSRV)
	if err != nil {
		return err
	}
	if got := srvTargets(r); !slices.Equal(got, []string{"db1.node.chorus.:5432", "db2.node.chorus.:5432"}) {
		return fmt.Errorf("%s: postgres SRV %v", a.NodeName(), got)
	}
	return nil
}

// TestExternalNodesOutliveTheirAgent: an external node registered through
// one agent with the consul/api client (node meta, tagged addresses, a
// node check, two services with a check) is answered by every agent over
// HTTP and DNS; when its owner dies, the agent every survivor computes
// adopts it and it stays answered; the returning owner yields to the
// adopter; deregistration (a service, a check, the node) works from an
// agent that does not own it.
func TestExternalNodesOutliveTheirAgent(t *testing.T) {
	agents := startCluster(t, 3, nil)
	c0 := consulClient(t, agents[0])
	_, err := c0.Catalog().Register(&api.CatalogRegistration{
		Node: "db1", Address: "10.20.0.5",
		NodeMeta:        map[string]string{"rack": "r1"},
		TaggedAddresses: map[string]string{"wan": "203.0.113.5"},
		Check:           &api.AgentCheck{CheckID: "db-alive", Name: "db host alive", Status: api.HealthPassing},
	}, nil)
	mustNil(t, "register bare node with a node check", err)
	_, err = c0.Catalog().Register(&api.CatalogRegistration{
		Node: "db1", Address: "10.20.0.5",
		NodeMeta:        map[string]string{"rack": "r1"},
		TaggedAddresses: map[string]string{"wan": "203.0.113.5"},
		Service:         &api.AgentService{ID: "pg", Service: "postgres", Port: 5432, Tags: []string{"primary"}},
		Checks:          api.HealthChecks{{CheckID: "pg-ready", Name: "pg ready", Status: api.HealthPassing, ServiceID: "pg"}},
	}, nil)
	mustNil(t, "register service", err)
	_, err = c0.Catalog().Register(&api.CatalogRegistration{
		Node: "db1", Address: "10.20.0.5", SkipNodeUpdate: true,
		Service: &api.AgentService{ID: "exporter", Service: "pg-exporter", Port: 9187},
	}, nil)
	mustNil(t, "register second service", err)
	// The same service ID on another external node, through another agent.
	_, err = consulClient(t, agents[1]).Catalog().Register(&api.CatalogRegistration{
		Node: "db2", Address: "10.20.0.6",
		Service: &api.AgentService{ID: "pg", Service: "postgres", Port: 5432},
	}, nil)
	mustNil(t, "same service ID on a second external node", err)

	testutil.Eventually(t, 15*time.Second, func() error {
		for _, a := range agents {
			if err := externalSeen(a); err != nil {
				return err
			}
		}
		return nil
	})
	if o := agents[2].Store().Record("db1").Owner; o != "node0" {
		t.Fatalf("db1 owned by %q, want node0 (the accepting agent)", o)
	}

	// The owner dies: the agent every survivor computes adopts db1.
	cfg0 := *agents[0].Config()
	_, port, _ := net.SplitHostPort(agents[0].SerfAddr())
	cfg0.SerfPort, _ = strconv.Atoi(port)
	agents[0].Kill()
	killed := time.Now()
	live := agents[1:]
	want := adopter("db1", []string{"node1", "node2"})
	testutil.Eventually(t, 30*time.Second, func() error {
		for _, a := range live {
			if rec := a.Store().Record("db1"); rec == nil || rec.Owner != want {
				return fmt.Errorf("%s: db1 record %+v, want owner %s", a.NodeName(), rec, want)
			}
			if err := externalSeen(a); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("adopted by %s and answered by every survivor %v after the owner was killed", want, time.Since(killed).Round(time.Millisecond))
	adopted := agents[1].Store().Record("db1").Version
	for _, a := range live {
		if got, wantN := metricValue(t, a, "chorus_external_adoptions_total"), map[bool]float64{true: 1}[a.NodeName() == want]; got != wantN {
			t.Fatalf("%s counted %g adoptions, want %g", a.NodeName(), got, wantN)
		}
	}

	// The owner returns with its journal: it yields to the adopter.
	b := startAgent(t, cfg0)
	if _, err := b.Join([]string{agents[1].SerfAddr()}); err != nil {
		t.Fatal(err)
	}
	all := []*Agent{b, agents[1], agents[2]}
	testutil.Eventually(t, 30*time.Second, func() error {
		if owned := b.Local().Externals().Owned(); len(owned) != 0 {
			return fmt.Errorf("returning owner still owns %v", owned)
		}
		for _, a := range all {
			rec := a.Store().Record("db1")
			if rec == nil || rec.Owner != want || rec.Version != adopted {
				return fmt.Errorf("%s: db1 record %+v, want owner %s version %d", a.NodeName(), rec, want, adopted)
			}
			if err := externalSeen(a); err != nil {
				return err
			}
		}
		return nil
	})

	if n := metricValue(t, b, "chorus_external_yields_total"); n != 1 {
		t.Fatalf("returning owner counted %g yields, want 1", n)
	}

	// Deregistration through an agent that does not own db1.
	other := b
	cb := consulClient(t, other)
	_, err = cb.Catalog().Deregister(&api.CatalogDeregistration{Node: "db1", ServiceID: "exporter"}, nil)
	mustNil(t, "deregister a service", err)
	_, err = cb.Catalog().Deregister(&api.CatalogDeregistration{Node: "db1", CheckID: "db-alive"}, nil)
	mustNil(t, "deregister a node check", err)
	testutil.Eventually(t, 15*time.Second, func() error {
		for _, a := range all {
			c := consulClient(t, a)
			cn, _, err := c.Catalog().Node("db1", nil)
			if err != nil {
				return err
			}
			if cn == nil || len(cn.Services) != 1 || cn.Services["pg"] == nil {
				return fmt.Errorf("%s: db1 after service deregistration: %+v", a.NodeName(), cn)
			}
			hc, _, err := c.Health().Node("db1", nil)
			if err != nil {
				return err
			}
			if len(hc) != 1 || hc[0].CheckID != "pg-ready" {
				return fmt.Errorf("%s: db1 checks after check deregistration: %d", a.NodeName(), len(hc))
			}
		}
		return nil
	})
	_, err = cb.Catalog().Deregister(&api.CatalogDeregistration{Node: "db1"}, nil)
	mustNil(t, "deregister the node", err)
	testutil.Eventually(t, 15*time.Second, func() error {
		for _, a := range all {
			c := consulClient(t, a)
			nodes, _, err := c.Catalog().Nodes(nil)
			if err != nil {
				return err
			}
			for _, n := range nodes {
				if n.Node == "db1" {
					return fmt.Errorf("%s still lists db1", a.NodeName())
				}
			}
			r, err := dnsAsk(a, "db1.node.chorus", dns.TypeA)
			if err != nil {
				return err
			}
			if r.Rcode != dns.RcodeNameError {
				return fmt.Errorf("%s: db1.node rcode %s", a.NodeName(), dns.RcodeToString[r.Rcode])
			}
			es, _, err := c.Health().Service("postgres", "", false, nil)
			if err != nil {
				return err
			}
			if len(es) != 1 || es[0].Node.Node != "db2" {
				return fmt.Errorf("%s: postgres entries %d after db1 left", a.NodeName(), len(es))
			}
		}
		return nil
	})
}

// TestCatalogRegisterSemantics: Consul's rules for catalog registrations
// that do not need a cluster: a bare node is listed; a check of an
// unknown service, an agent's node name, fields Chorus cannot keep are
// 400s naming the problem; the agent's own node takes the registration
// as agent services and checks; deregistering what does not exist is a
// no-op.
func TestCatalogRegisterSemantics(t *testing.T) {
	agents := startCluster(t, 2, nil)
	c := consulClient(t, agents[0])
	cat := c.Catalog()

	_, err := cat.Register(&api.CatalogRegistration{Node: "switch1", Address: "10.9.0.1"}, nil)
	mustNil(t, "bare node", err)
	nodes, _, err := cat.Nodes(nil)
	mustNil(t, "nodes", err)
	found := false
	for _, n := range nodes {
		found = found || n.Node == "switch1" && n.Address == "10.9.0.1"
	}
	if !found {
		t.Fatalf("bare external node not listed: %+v", nodes)
	}
	// The service's Consul fields are kept, as for agent registrations.
	_, err = cat.Register(&api.CatalogRegistration{Node: "switch1", Address: "10.9.0.1", SkipNodeUpdate: true,
		Service: &api.AgentService{ID: "snmp", Service: "snmp", Port: 161, SocketPath: "/run/snmp.sock", EnableTagOverride: true,
			TaggedAddresses: map[string]api.ServiceAddress{"wan": {Address: "203.0.113.9", Port: 1161}},
			Locality:        &api.Locality{Region: "eu", Zone: "a"}}}, nil)
	mustNil(t, "service with Consul's fields", err)
	cs, _, err := cat.Service("snmp", "", nil)
	mustNil(t, "catalog service", err)
	cn, _, err := cat.Node("switch1", nil)
	mustNil(t, "catalog node", err)
	if cn == nil || cn.Services["snmp"] == nil || cn.Services["snmp"].SocketPath != "/run/snmp.sock" {
		t.Fatalf("external service's SocketPath: %+v", cn)
	}
	if len(cs) != 1 || !cs[0].ServiceEnableTagOverride ||
		cs[0].ServiceTaggedAddresses["wan"].Port != 1161 || cs[0].ServiceLocality == nil || cs[0].ServiceLocality.Zone != "a" {
		t.Fatalf("external service's fields: %+v", cs)
	}
	hc, _, err := c.Health().Node("switch1", nil)
	mustNil(t, "health node", err)
	if len(hc) != 0 {
		t.Fatalf("external node has checks it was not given (serfHealth?): %+v", hc)
	}

	for _, tc := range []struct {
		name string
		reg  *api.CatalogRegistration
		want string
	}{
		{"no address", &api.CatalogRegistration{Node: "x1"}, "Address is required"},
		{"check of unknown service", &api.CatalogRegistration{Node: "x1", Address: "10.0.0.1",
			Check: &api.AgentCheck{CheckID: "c", ServiceID: "nope", Status: api.HealthPassing}}, "which node"},
		{"another agent's node", &api.CatalogRegistration{Node: "node1", Address: "10.0.0.1",
			Service: &api.AgentService{Service: "web"}}, "is an agent"},
		{"connect proxy", &api.CatalogRegistration{Node: "x1", Address: "10.0.0.1",
			Service: &api.AgentService{Service: "web", Kind: api.ServiceKindConnectProxy}}, "Service.Kind"},
		{"bad status", &api.CatalogRegistration{Node: "x1", Address: "10.0.0.1",
			Check: &api.AgentCheck{CheckID: "c", Status: "ok"}}, "want passing, warning or critical"},
		{"bad node name", &api.CatalogRegistration{Node: "has space", Address: "10.0.0.1"}, "node name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cat.Register(tc.reg, nil)
			if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a 400 saying %q", err, tc.want)
			}
			if rec := agents[0].Store().Record("x1"); rec != nil {
				t.Fatalf("a refused registration created x1: %+v", rec)
			}
		})
	}

	// The agent's own node: an agent service and a static agent check.
	_, err = cat.Register(&api.CatalogRegistration{
		Node: "node0", Address: agents[0].Local().Node().Address,
		Service: &api.AgentService{ID: "web1", Service: "web", Port: 8080},
		Check:   &api.AgentCheck{CheckID: "web1-up", ServiceID: "web1", Status: api.HealthWarning, Output: "slow"},
	}, nil)
	mustNil(t, "register onto the agent's own node", err)
	svcs, err := c.Agent().Services()
	mustNil(t, "agent services", err)
	if svcs["web1"] == nil || svcs["web1"].Port != 8080 {
		t.Fatalf("own-node registration is not an agent service: %+v", svcs)
	}
	checks, err := c.Agent().Checks()
	mustNil(t, "agent checks", err)
	if ch := checks["web1-up"]; ch == nil || ch.Status != api.HealthWarning || ch.Output != "slow" {
		t.Fatalf("own-node check: %+v", ch)
	}
	_, err = cat.Register(&api.CatalogRegistration{Node: "node0", Address: "10.255.0.1"}, nil)
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("changing the agent's own address: %v", err)
	}
	// What a client read of the node, sent back, changes nothing; a
	// bad check refuses the whole registration.
	self, _, err := cat.Node("NODE0", nil)
	mustNil(t, "own node", err)
	_, err = cat.Register(&api.CatalogRegistration{Node: "NODE0", Address: self.Node.Address, NodeMeta: self.Node.Meta,
		TaggedAddresses: self.Node.TaggedAddresses}, nil)
	mustNil(t, "own node as read", err)
	_, err = cat.Register(&api.CatalogRegistration{Node: "node0", Service: &api.AgentService{ID: "web2", Service: "web"},
		Check: &api.AgentCheck{CheckID: "c", ServiceID: "nope"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("own node with a check of an unknown service: %v", err)
	}
	if svcs, _ := c.Agent().Services(); svcs["web2"] != nil {
		t.Fatal("a refused own-node registration registered its service")
	}
	_, err = cat.Deregister(&api.CatalogDeregistration{Node: "node0", ServiceID: "web1"}, nil)
	mustNil(t, "deregister own service", err)
	if svcs, _ := c.Agent().Services(); svcs["web1"] != nil {
		t.Fatal("own service still registered after catalog deregistration")
	}

	// Idempotent deregistrations.
	_, err = cat.Deregister(&api.CatalogDeregistration{Node: "never-registered"}, nil)
	mustNil(t, "deregister unknown node", err)
	_, err = cat.Deregister(&api.CatalogDeregistration{Node: "switch1", ServiceID: "nope"}, nil)
	mustNil(t, "deregister unknown service", err)
}

// BenchmarkCatalogRegisterExternal: one /v1/catalog/register of a new
// external node with a service and a check through the consul/api client,
// answered after the owner's journal is fsynced (figures in
// BENCHMARKS.md).
func BenchmarkCatalogRegisterExternal(b *testing.B) {
	a := startAgent(b, testConfig(b, "node0"))
	cat := consulClient(b, a).Catalog()
	b.ResetTimer()
	for i := range b.N {
		_, err := cat.Register(&api.CatalogRegistration{
			Node: fmt.Sprintf("db%d", i), Address: "10.20.0.5",
			Service: &api.AgentService{ID: "pg", Service: "postgres", Port: 5432},
			Check:   &api.AgentCheck{CheckID: "pg-ready", ServiceID: "pg", Status: api.HealthPassing},
		}, nil)
		if err != nil {
			b.Fatal(err)
		}
	}
}

// TestExternalNodeAdoptedAfterLeave: an owner that leaves gracefully
// hands its external nodes to the adopter as one that dies does.
func TestExternalNodeAdoptedAfterLeave(t *testing.T) {
	agents := startCluster(t, 2, nil)
	_, err := consulClient(t, agents[0]).Catalog().Register(&api.CatalogRegistration{
		Node: "saas1", Address: "198.51.100.7",
		Service: &api.AgentService{ID: "api", Service: "partner-api", Port: 443},
	}, nil)
	mustNil(t, "register", err)
	testutil.Eventually(t, 10*time.Second, func() error {
		if rec := agents[1].Store().Record("saas1"); rec == nil || rec.Owner != "node0" {
			return fmt.Errorf("saas1 not replicated: %+v", rec)
		}
		return nil
	})
	if err := agents[0].Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, func() error {
		if rec := agents[1].Store().Record("saas1"); rec == nil || rec.Owner != "node1" {
			return fmt.Errorf("saas1 not adopted: %+v", rec)
		}
		r, err := dnsAsk(agents[1], "partner-api.service.chorus", dns.TypeA)
		if err != nil {
			return err
		}
		if got := answerAddrs(r); !slices.Equal(got, []string{"198.51.100.7"}) {
			return fmt.Errorf("partner-api A %v", got)
		}
		return nil
	})
}

// adopter is the agent among alive that adopts node: the one with the
// highest rendezvous score (the rule agent/local applies and tests;
// restated here as these tests' oracle).
func adopter(node string, alive []string) string {
	return slices.MaxFunc(alive, func(a, b string) int {
		return cmp.Compare(catalog.RendezvousScore(node, a), catalog.RendezvousScore(node, b))
	})
}

// TestExternalNodeSurvivesRestart: an agent alone in its cluster comes
// back from its data dir with the external nodes it owned, at the same
// versions, and deregisters them.
func TestExternalNodeSurvivesRestart(t *testing.T) {
	cfg := testConfig(t, "solo")
	a := startAgent(t, cfg)
	_, err := consulClient(t, a).Catalog().Register(&api.CatalogRegistration{
		Node: "nas1", Address: "10.30.0.2", Check: &api.AgentCheck{CheckID: "ping", Status: api.HealthWarning, Output: "slow"},
		Service: &api.AgentService{ID: "nfs", Service: "nfs", Port: 2049},
	}, nil)
	mustNil(t, "register", err)
	v := a.Store().Version("nas1")
	if err := a.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := startAgent(t, cfg)
	if got := b.Store().Version("nas1"); got != v {
		t.Fatalf("after restart version %d, want %d", got, v)
	}
	hc, _, err := consulClient(t, b).Health().Node("nas1", nil)
	mustNil(t, "health node", err)
	if len(hc) != 1 || hc[0].Status != api.HealthWarning || hc[0].Output != "slow" {
		t.Fatalf("checks after restart: %+v", hc)
	}
	_, err = consulClient(t, b).Catalog().Deregister(&api.CatalogDeregistration{Node: "nas1"}, nil)
	mustNil(t, "deregister", err)
	if n, _, _ := consulClient(t, b).Catalog().Node("nas1", nil); n != nil {
		t.Fatalf("deregistered node still answered: %+v", n)
	}
}

// TestExternalNodePartitionConvergesToOneOwner: while a partition cuts
// the owner off, the other side adopts its external node; the owner,
// still accepting writes on its side, writes a newer version; after the
// heal the newest version wins everywhere and the others yield, so the
// node has exactly one owner again. (Which side wins depends on which
// wrote last: a false failure on the other side during the partition
// may make a later adoption there, which then wins, by the same rule.)
func TestExternalNodePartitionConvergesToOneOwner(t *testing.T) {
	agents := startCluster(t, 3, nil)
	c0 := consulClient(t, agents[0])
	_, err := c0.Catalog().Register(&api.CatalogRegistration{Node: "db1", Address: "10.20.0.5",
		Service: &api.AgentService{ID: "pg", Service: "postgres", Port: 5432}}, nil)
	mustNil(t, "register", err)
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, a := range agents {
			if rec := a.Store().Record("db1"); rec == nil {
				return fmt.Errorf("%s lacks db1", a.NodeName())
			}
		}
		return nil
	})
	left, right := agents[:1], agents[1:]
	addrs := func(as []*Agent) map[string]bool {
		m := map[string]bool{}
		for _, a := range as {
			m[a.SerfAddr()] = true
		}
		return m
	}
	for _, a := range left {
		to := addrs(right)
		a.gossip.Transport().SetDrop(func(addr string) bool { return to[addr] })
	}
	for _, a := range right {
		to := addrs(left)
		a.gossip.Transport().SetDrop(func(addr string) bool { return to[addr] })
	}
	// The other side adopts (the computed adopter; another one of that
	// side only if a false failure there made it adopt again).
	testutil.Eventually(t, 20*time.Second, func() error {
		for _, a := range right {
			if rec := a.Store().Record("db1"); rec == nil || rec.Owner == "node0" {
				return fmt.Errorf("%s: db1 not adopted on its side (want %s)", a.NodeName(), adopter("db1", []string{"node1", "node2"}))
			}
		}
		return nil
	})
	// The cut-off owner keeps accepting writes: a newer version.
	_, err = c0.Catalog().Register(&api.CatalogRegistration{Node: "db1", Address: "10.20.0.5", SkipNodeUpdate: true,
		Service: &api.AgentService{ID: "late", Service: "pg-exporter", Port: 9187}}, nil)
	mustNil(t, "write during the partition", err)
	newest := agents[0].Store().Record("db1").Version

	for _, a := range agents {
		a.gossip.Transport().SetDrop(nil)
	}
	// One owner again: every agent holds the same version, written by
	// the one agent that owns it; the others yielded. The newest version
	// wins: the owner's write if nothing on the other side wrote later.
	testutil.Eventually(t, 30*time.Second, func() error {
		want := agents[0].Store().Record("db1")
		if want == nil {
			return fmt.Errorf("node0 lacks db1")
		}
		var owners []string
		for _, a := range agents {
			rec := a.Store().Record("db1")
			if rec == nil {
				return fmt.Errorf("%s lacks db1", a.NodeName())
			}
			if rec.Version != want.Version || rec.Owner != want.Owner {
				return fmt.Errorf("%s: db1 %d by %s, node0 holds %d by %s", a.NodeName(), rec.Version, rec.Owner, want.Version, want.Owner)
			}
			if slices.Contains(a.Local().Externals().Owned(), "db1") {
				owners = append(owners, a.NodeName())
			}
		}
		if len(owners) != 1 || owners[0] != want.Owner {
			return fmt.Errorf("db1 owned by %v, its record names %s", owners, want.Owner)
		}
		if want.Version < newest {
			return fmt.Errorf("db1 at %d, older than node0's write %d", want.Version, newest)
		}
		if want.Version == newest && want.Services.Len() != 2 {
			return fmt.Errorf("node0's write lost its service: %+v", want.Services)
		}
		return nil
	})
	t.Logf("after the heal db1 is owned by %s", agents[0].Store().Record("db1").Owner)
}

// TestCatalogCheckDefinitionKept registers an external node's check with
// a full definition through consul/api (as Terraform's consul_service
// does) and reads it back from another agent: every field of the
// definition is returned as registered, and a registration that changes
// only the definition moves the check's ModifyIndex. Before, all but
// Interval and Timeout were dropped with a 200, so Terraform saw a
// difference on every plan.
func TestCatalogCheckDefinitionKept(t *testing.T) {
	agents := startCluster(t, 2, nil)
	cat := consulClient(t, agents[0]).Catalog()
	reader := consulClient(t, agents[1]).Health()

	def := api.HealthCheckDefinition{
		HTTP: "https://10.30.0.5:8443/health", Method: "POST", Body: `{"deep":true}`,
		Header:        map[string][]string{"Authorization": {"Bearer x"}, "X-Probe": {"a", "b"}},
		TLSServerName: "db.example", TLSSkipVerify: true,
		Interval: api.ReadableDuration(15 * time.Second), Timeout: api.ReadableDuration(3 * time.Second),
		DeregisterCriticalServiceAfter: api.ReadableDuration(90 * time.Minute),
	}
	reg := func(d api.HealthCheckDefinition) {
		t.Helper()
		_, err := cat.Register(&api.CatalogRegistration{Node: "db9", Address: "10.30.0.5",
			Service: &api.AgentService{ID: "pg", Service: "pg", Port: 5432},
			Checks: api.HealthChecks{
				{CheckID: "pg-http", Name: "pg over http", ServiceID: "pg", Status: api.HealthPassing, Definition: d},
				{CheckID: "pg-tcp", Name: "pg port", ServiceID: "pg", Status: api.HealthPassing,
					Definition: api.HealthCheckDefinition{TCP: "10.30.0.5:5432", TCPUseTLS: true, Interval: api.ReadableDuration(time.Minute)}},
				{CheckID: "bare", Name: "no definition", Status: api.HealthPassing},
			}}, nil)
		mustNil(t, "register", err)
	}
	reg(def)

	var got map[string]*api.HealthCheck
	read := func() error {
		hc, _, err := reader.Checks("pg", nil)
		if err != nil {
			return err
		}
		got = map[string]*api.HealthCheck{}
		for _, c := range hc {
			got[c.CheckID] = c
		}
		if len(got) != 2 || got["pg-http"] == nil || got["pg-tcp"] == nil {
			return fmt.Errorf("checks of pg on %s: %v", agents[1].NodeName(), got)
		}
		return nil
	}
	testutil.Eventually(t, 10*time.Second, read)
	h := got["pg-http"].Definition
	if h.HTTP != def.HTTP || h.Method != "POST" || h.Body != def.Body || h.TLSServerName != "db.example" || !h.TLSSkipVerify ||
		len(h.Header) != 2 || !slices.Equal(h.Header["X-Probe"], []string{"a", "b"}) || h.Header["Authorization"][0] != "Bearer x" ||
		time.Duration(h.Interval) != 15*time.Second || time.Duration(h.Timeout) != 3*time.Second ||
		time.Duration(h.DeregisterCriticalServiceAfter) != 90*time.Minute {
		t.Fatalf("http check's definition read back: %+v, registered %+v", h, def)
	}
	if tc := got["pg-tcp"].Definition; tc.TCP != "10.30.0.5:5432" || !tc.TCPUseTLS || time.Duration(tc.Interval) != time.Minute || tc.HTTP != "" {
		t.Fatalf("tcp check's definition read back: %+v", tc)
	}
	hn, _, err := reader.Node("db9", nil)
	mustNil(t, "health node", err)
	for _, c := range hn {
		if c.CheckID == "bare" && (c.Definition.HTTP != "" || c.Definition.TCP != "" || c.Definition.Interval != 0) {
			t.Fatalf("a check registered without a definition has one: %+v", c.Definition)
		}
	}

	// A registration that changes only the definition is a change.
	before := got["pg-http"].ModifyIndex
	def.HTTP = "https://10.30.0.5:8443/ready"
	reg(def)
	testutil.Eventually(t, 10*time.Second, func() error {
		if err := read(); err != nil {
			return err
		}
		if c := got["pg-http"]; c.Definition.HTTP != def.HTTP || c.ModifyIndex == before {
			return fmt.Errorf("after changing the definition: HTTP %q, ModifyIndex %d (was %d)", c.Definition.HTTP, c.ModifyIndex, before)
		}
		return nil
	})

	// Sessions are not provided: a check that follows one is refused by name.
	_, err = cat.Register(&api.CatalogRegistration{Node: "db9", Address: "10.30.0.5",
		Check: &api.AgentCheck{CheckID: "s", Status: api.HealthPassing, Definition: api.HealthCheckDefinition{SessionName: "lock"}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "SessionName") {
		t.Fatalf("check following a session: got %v, want a 400 naming SessionName", err)
	}
}
