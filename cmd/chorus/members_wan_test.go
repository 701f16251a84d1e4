package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/chorusdns/chorus/agent"
	"github.com/chorusdns/chorus/test/testutil"
)

// chorus members --wan lists the WAN pool on a speaker (each datacenter's
// speakers, their WAN address and datacenter) and says so, listing
// nothing, on an agent that does not speak; nodes and services
// --datacenter read another datacenter's catalog from the summary.
func TestMembersWAN(t *testing.T) {
	p1, p2 := testutil.FreePort(t), testutil.FreePort(t)
	site := func(name, dc string, port, other int) string {
		return startTestAgent(t, name, func(c *agent.Config) {
			c.Datacenter, c.SerfWANPort = dc, port
			c.RetryJoinWAN = []string{fmt.Sprintf("127.0.0.1:%d", other)}
		})
	}
	alpha := site("alpha", "dc1", p1, p2)
	betaAddr := site("beta", "dc2", p2, p1)
	lone := startTestAgent(t, "gamma", func(c *agent.Config) { c.Datacenter = "dc3" })

	testutil.Eventually(t, 20*time.Second, func() error {
		var ms []api.AgentMember
		out, errOut, code := runCLI(t.Context(), "members", "--wan", "--format", "json", "--http-addr", alpha)
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, errOut)
		}
		if err := json.Unmarshal([]byte(out), &ms); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if len(ms) != 2 || ms[0].Name != "alpha.dc1" || ms[1].Name != "beta.dc2" || ms[0].Status != 1 || ms[1].Status != 1 {
			return fmt.Errorf("WAN members %+v", ms)
		}
		return nil
	})
	out := cli(t, alpha, 0, "members", "--wan")
	wantLines(t, out, "Node Address Status Datacenter Build",
		fmt.Sprintf("alpha.dc1 127.0.0.1:%d alive dc1 %s", p1, agent.Version),
		fmt.Sprintf("beta.dc2 127.0.0.1:%d alive dc2 %s", p2, agent.Version))

	// Another datacenter's catalog through this agent's replica.
	beta := apiClient(t, betaAddr)
	if err := beta.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "api", Address: "10.2.0.7", Port: 81}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		out, _, _ := runCLI(t.Context(), "services", "api", "--datacenter", "dc2", "--http-addr", alpha)
		if !strings.Contains(out, "10.2.0.7:81") || !strings.Contains(out, "beta") {
			return fmt.Errorf("services api --datacenter dc2:\n%s", out)
		}
		return nil
	})
	out = cli(t, alpha, 0, "services", "--datacenter", "dc2")
	if !strings.Contains(out, "api") {
		t.Fatalf("services --datacenter dc2:\n%s", out)
	}
	out = cli(t, alpha, 0, "nodes", "--datacenter", "dc2")
	wantLines(t, out, "Node Address Status Datacenter Zone")
	if !strings.Contains(out, "beta") || !strings.Contains(out, "dc2") || strings.Contains(out, "alpha") {
		t.Fatalf("nodes --datacenter dc2:\n%s", out)
	}
	if out := cli(t, alpha, 1, "nodes", "--datacenter", "dc9"); !strings.Contains(out, "No path to datacenter") {
		t.Fatalf("nodes --datacenter dc9:\n%s", out)
	}

	out = cli(t, lone, 0, "members", "--wan")
	if !strings.Contains(out, "not one of its datacenter's WAN speakers") || strings.Contains(out, "gamma") {
		t.Fatalf("members --wan on an agent that does not speak:\n%s", out)
	}
	var ms []api.AgentMember
	cliJSON(t, lone, &ms, "members", "--wan")
	if len(ms) != 0 {
		t.Fatalf("members --wan --format json on an agent that does not speak: %+v", ms)
	}
}
