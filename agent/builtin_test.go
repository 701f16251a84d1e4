package agent

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"

	"github.com/chorusdns/chorus/test/testutil"
)

// httpPort is the port an agent's HTTP API is bound to.
func httpPort(t testing.TB, a *Agent) int {
	t.Helper()
	_, p, err := net.SplitHostPort(a.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// TestBuiltinService: every agent is an instance of the built-in service
// "chorus" at its HTTP endpoint, in the catalog, health and DNS answers of
// every agent, passing while it is alive; with builtin_service_consul also
// as "consul". It is not one of the agent's own registrations.
func TestBuiltinService(t *testing.T) {
	agents := startCluster(t, 3, func(_ int, c *Config) { c.BuiltinServiceConsul = true })
	var ports []int
	for _, a := range agents {
		ports = append(ports, httpPort(t, a))
	}
	slices.Sort(ports)

	for _, a := range agents {
		c := consulClient(t, a)
		testutil.Eventually(t, 10*time.Second, func() error {
			for _, name := range []string{"chorus", "consul"} {
				entries, _, err := c.Health().Service(name, "", true, nil)
				if err != nil {
					return err
				}
				var got []int
				for _, e := range entries {
					if e.Service.ID != name || e.Service.Address != "127.0.0.1" || e.Service.Meta["version"] != Version {
						return fmt.Errorf("%s: instance %+v", name, e.Service)
					}
					got = append(got, e.Service.Port)
				}
				slices.Sort(got)
				if !slices.Equal(got, ports) {
					return fmt.Errorf("%s: passing %s instances at ports %v, want the agents' HTTP ports %v", a.NodeName(), name, got, ports)
				}
			}
			svcs, _, err := c.Catalog().Services(nil)
			if err != nil {
				return err
			}
			if _, ok := svcs["chorus"]; !ok {
				return fmt.Errorf("catalog services %v lack chorus", svcs)
			}
			r := query(t, a, "udp", "chorus.service.chorus", dns.TypeSRV)
			if n := len(srvTargets(r)); n != len(agents) {
				return fmt.Errorf("%s: DNS chorus.service.chorus has %d SRV answers, want %d", a.NodeName(), n, len(agents))
			}
			return nil
		})
		own, err := c.Agent().Services()
		mustNil(t, "agent services", err)
		if len(own) != 0 {
			t.Fatalf("the built-in service is listed as a registration: %v", own)
		}
	}

	// The instance of an agent that dies turns critical everywhere.
	dead := agents[2]
	deadPort := httpPort(t, dead)
	dead.Kill()
	c := consulClient(t, agents[0])
	testutil.Eventually(t, 20*time.Second, func() error {
		entries, _, err := c.Health().Service("chorus", "", false, nil)
		if err != nil {
			return err
		}
		for _, e := range entries {
			status := e.Checks.AggregatedStatus()
			if e.Service.Port == deadPort && status != api.HealthCritical {
				return fmt.Errorf("the dead agent's instance is %s", status)
			}
		}
		passing, _, err := c.Health().Service("chorus", "", true, nil)
		if err != nil {
			return err
		}
		if len(passing) != 2 {
			return fmt.Errorf("%d passing instances, want 2", len(passing))
		}
		return nil
	})
}

// TestBuiltinServiceConfig: builtin_service names the service, "" turns
// it off, an invalid name is refused naming the key, and a registration
// with the built-in service's ID takes its place.
func TestBuiltinServiceConfig(t *testing.T) {
	cfg := testConfig(t, "named")
	cfg.BuiltinService = "discovery"
	a := startAgent(t, cfg)
	c := consulClient(t, a)
	testutil.Eventually(t, 5*time.Second, func() error {
		svcs, _, err := c.Catalog().Service("discovery", "", nil)
		if err != nil {
			return err
		}
		if len(svcs) != 1 || svcs[0].ServicePort != httpPort(t, a) {
			return fmt.Errorf("discovery: %+v", svcs)
		}
		return nil
	})
	mustNil(t, "register", c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "discovery", Name: "discovery", Port: 1234}))
	testutil.Eventually(t, 5*time.Second, func() error {
		svcs, _, err := c.Catalog().Service("discovery", "", nil)
		if err != nil {
			return err
		}
		if len(svcs) != 1 || svcs[0].ServicePort != 1234 {
			return fmt.Errorf("discovery after a registration with its ID: %+v", svcs)
		}
		return nil
	})
	mustNil(t, "deregister", c.Agent().ServiceDeregister("discovery"))
	testutil.Eventually(t, 5*time.Second, func() error {
		svcs, _, err := c.Catalog().Service("discovery", "", nil)
		if err != nil {
			return err
		}
		if len(svcs) != 1 || svcs[0].ServicePort != httpPort(t, a) {
			return fmt.Errorf("discovery after the registration left: %+v", svcs)
		}
		return nil
	})

	off := testConfig(t, "off")
	off.BuiltinService = ""
	b := startAgent(t, off)
	svcs, _, err := consulClient(t, b).Catalog().Services(nil)
	mustNil(t, "catalog services", err)
	if len(svcs) != 0 {
		t.Fatalf("builtin_service \"\": catalog services %v", svcs)
	}

	bad := testConfig(t, "bad")
	bad.BuiltinService = "no spaces"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "builtin_service") {
		t.Fatalf("invalid builtin_service: %v", err)
	}
}
