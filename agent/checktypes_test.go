package agent

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/chorusdns/chorus/test/testutil"
)

// waitCheck waits until the agent's check id has status want and an output
// holding substr, and returns it.
func waitCheck(t *testing.T, c *api.Client, id, want, substr string) *api.AgentCheck {
	t.Helper()
	var got *api.AgentCheck
	testutil.Eventually(t, 20*time.Second, func() error {
		checks, err := c.Agent().Checks()
		if err != nil {
			return err
		}
		got = checks[id]
		if got == nil {
			return fmt.Errorf("no check %q in %v", id, checks)
		}
		if got.Status != want || !strings.Contains(got.Output, substr) {
			return fmt.Errorf("check %q is %s %q, want %s with %q", id, got.Status, got.Output, want, substr)
		}
		return nil
	})
	return got
}

// TestConsulAPIDockerCheck: a check with DockerContainerID runs its Args
// inside the container through the Docker Engine API (/probe exists only
// there: run on the host it would fail), and is refused with a 400 naming
// the field while script checks are off.
func TestConsulAPIDockerCheck(t *testing.T) {
	id := testutil.DockerProbeContainer(t)
	cfg := testConfig(t, "docker")
	cfg.EnableScriptChecks = true
	cfg.DockerSocket = testutil.DockerSocket
	a := startAgent(t, cfg)
	c := consulClient(t, a)
	mustNil(t, "register", c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		Name: "db", Port: 5432,
		Checks: api.AgentServiceChecks{
			{CheckID: "in-container", DockerContainerID: id, Shell: "/bin/sh", Args: []string{"/probe", "0", "inside"}, Interval: "500ms"},
			{CheckID: "warn", DockerContainerID: id, Args: []string{"/probe", "1", "degraded"}, Interval: "500ms"},
		},
	}))
	chk := waitCheck(t, c, "in-container", api.HealthPassing, "out inside")
	if chk.Type != "docker" {
		t.Fatalf("type %q, want docker", chk.Type)
	}
	waitCheck(t, c, "warn", api.HealthWarning, "out degraded")

	offCfg := testConfig(t, "noscripts")
	offCfg.DockerSocket = testutil.DockerSocket
	off := startAgent(t, offCfg)
	reg := &api.AgentCheckRegistration{
		ID: "d", Name: "d", AgentServiceCheck: api.AgentServiceCheck{DockerContainerID: id, Args: []string{"/probe", "0", "reloaded"}, Interval: "500ms"},
	}
	co := consulClient(t, off)
	err := co.Agent().CheckRegister(reg)
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "DockerContainerID") || !strings.Contains(err.Error(), "enable_script_checks") {
		t.Fatalf("docker check with script checks off: %v", err)
	}
	// A reload that turns script checks on lets the check register and run.
	offCfg.EnableScriptChecks = true
	mustNil(t, "reload", off.Reload(offCfg))
	mustNil(t, "register after reload", co.Agent().CheckRegister(reg))
	waitCheck(t, co, "d", api.HealthPassing, "out reloaded")
}

// TestConsulAPICheckTypes registers Consul's UDP, H2PING, TCP+TLS, alias
// and os_service checks through the Go client (os_service, which the
// client lacks, as raw JSON with Consul's key) and watches them work.
func TestConsulAPICheckTypes(t *testing.T) {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	closedUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedUDPAddr := closedUDP.LocalAddr().String()
	closedUDP.Close()
	h2 := httptest.NewUnstartedServer(http.NotFoundHandler())
	h2.EnableHTTP2 = true
	h2.Config.ErrorLog = log.New(io.Discard, "", 0)
	h2.StartTLS()
	t.Cleanup(h2.Close)
	h2Addr := strings.TrimPrefix(h2.URL, "https://")

	a := startAgent(t, testConfig(t, "types"))
	c := consulClient(t, a)
	mustNil(t, "register", c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "edge", Name: "edge", Port: 443,
		Checks: api.AgentServiceChecks{
			{CheckID: "udp", UDP: udp.LocalAddr().String(), Interval: "200ms", Timeout: "300ms"},
			{CheckID: "udp-closed", UDP: closedUDPAddr, Interval: "200ms", Timeout: "300ms", Status: api.HealthPassing},
			// H2PingUseTLS is omitted by the client when false: TLS is on.
			{CheckID: "h2", H2PING: h2Addr, TLSSkipVerify: true, Interval: "200ms"},
			{CheckID: "tcp-tls", TCP: h2Addr, TCPUseTLS: true, TLSSkipVerify: true, Interval: "200ms"},
		},
	}))
	for _, w := range []struct{ id, typ, status, out string }{
		{"udp", "udp", api.HealthPassing, "UDP connect"},
		{"udp-closed", "udp", api.HealthCritical, "connection refused"},
		{"h2", "h2ping", api.HealthPassing, "HTTP2 ping was successful"},
		{"tcp-tls", "tcp", api.HealthPassing, "TCP+TLS connect"},
	} {
		if chk := waitCheck(t, c, w.id, w.status, w.out); chk.Type != w.typ {
			t.Errorf("%s: type %q, want %q", w.id, chk.Type, w.typ)
		}
	}
	checks, err := c.Agent().Checks()
	mustNil(t, "checks", err)
	if d := checks["udp"].Definition; d.UDP != udp.LocalAddr().String() {
		t.Errorf("udp check definition: %+v", d)
	}
	if d := checks["tcp-tls"].Definition; !d.TCPUseTLS {
		t.Errorf("tcp-tls check definition: %+v", d)
	}

	code, body := do(t, a, "PUT", "/v1/agent/check/register", `{"ID":"unit","Name":"unit","os_service":"chorus-test.service","Interval":"200ms"}`)
	if code != 200 {
		t.Fatalf("os_service register: %d %s", code, body)
	}
	chk := waitCheck(t, c, "unit", api.HealthCritical, "chorus-test.service")
	if chk.Type != "os_service" {
		t.Fatalf("os_service type %q", chk.Type)
	}

	// A field Consul no longer takes is refused by name, never ignored.
	code, body = do(t, a, "PUT", "/v1/agent/check/register", `{"ID":"old","Script":"/bin/true","Interval":"1s"}`)
	if code != 400 || !strings.Contains(string(body), "Script") {
		t.Fatalf("Script check: %d %s", code, body)
	}
}

// TestConsulAPIAliasCheck: a sidecar's alias check follows a local
// service's health, and another agent's alias of a remote service follows
// it too, turning critical when that agent dies.
func TestConsulAPIAliasCheck(t *testing.T) {
	agents := startCluster(t, 2, nil)
	c0, c1 := consulClient(t, agents[0]), consulClient(t, agents[1])
	mustNil(t, "register web", c0.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web", Name: "web", Port: 80, Check: &api.AgentServiceCheck{CheckID: "web-ttl", TTL: "1m", Status: api.HealthPassing},
	}))
	mustNil(t, "register sidecar", c0.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web-sidecar", Name: "web-sidecar", Port: 21000, Check: &api.AgentServiceCheck{CheckID: "alias", AliasService: "web"},
	}))
	mustNil(t, "register remote alias", c1.Agent().CheckRegister(&api.AgentCheckRegistration{
		ID: "remote-web", Name: "remote web", AgentServiceCheck: api.AgentServiceCheck{AliasNode: "node0", AliasService: "web"},
	}))
	mustNil(t, "register missing alias", c1.Agent().CheckRegister(&api.AgentCheckRegistration{
		ID: "missing", Name: "missing", AgentServiceCheck: api.AgentServiceCheck{AliasNode: "node0", AliasService: "nope", Status: api.HealthPassing},
	}))
	chk := waitCheck(t, c0, "alias", api.HealthPassing, "All checks passing.")
	if chk.Type != "alias" {
		t.Fatalf("alias type %q", chk.Type)
	}
	waitCheck(t, c1, "remote-web", api.HealthPassing, "All checks passing.")
	waitCheck(t, c1, "missing", api.HealthCritical, "Service nope could not be found on node node0")

	mustNil(t, "fail web", c0.Agent().FailTTL("web-ttl", "db down"))
	waitCheck(t, c0, "alias", api.HealthCritical, "db down")
	waitCheck(t, c1, "remote-web", api.HealthCritical, "db down")
	// The sidecar leaves the passing answers with the service it follows.
	testutil.Eventually(t, 10*time.Second, func() error {
		entries, _, err := c1.Health().Service("web-sidecar", "", true, nil)
		if err != nil || len(entries) != 0 {
			return fmt.Errorf("passing sidecars %d, %v", len(entries), err)
		}
		return nil
	})
	mustNil(t, "pass web", c0.Agent().PassTTL("web-ttl", "ok"))
	waitCheck(t, c1, "remote-web", api.HealthPassing, "All checks passing.")

	agents[0].Kill()
	waitCheck(t, c1, "remote-web", api.HealthCritical, "Serf Health Status")
}

// TestCheckTypesSurviveRestart: the new check types are persisted with
// their fields and run again after a restart.
func TestCheckTypesSurviveRestart(t *testing.T) {
	cfg := testConfig(t, "persist")
	a := startAgent(t, cfg)
	c := consulClient(t, a)
	mustNil(t, "register", c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web", Name: "web", Port: 80, Check: &api.AgentServiceCheck{CheckID: "web-ttl", TTL: "10m", Status: api.HealthPassing},
	}))
	mustNil(t, "register edge", c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "edge", Name: "edge", Port: 443,
		Checks: api.AgentServiceChecks{
			{CheckID: "udp", UDP: "127.0.0.1:9", Interval: "10m"},
			{CheckID: "h2", H2PING: "127.0.0.1:9", Interval: "10m"},
		},
	}))
	mustNil(t, "register sidecar", c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "sidecar", Name: "sidecar", Check: &api.AgentServiceCheck{CheckID: "alias", AliasService: "web", AliasNode: "persist"},
	}))
	a.Kill()

	b := startAgent(t, cfg)
	c = consulClient(t, b)
	checks, err := c.Agent().Checks()
	mustNil(t, "checks", err)
	for id, typ := range map[string]string{"udp": "udp", "h2": "h2ping", "alias": "alias"} {
		if checks[id] == nil || checks[id].Type != typ {
			t.Fatalf("after restart, check %s: %+v", id, checks[id])
		}
	}
	if d := checks["udp"].Definition; d.UDP != "127.0.0.1:9" {
		t.Fatalf("udp definition after restart: %+v", d)
	}
	// The alias runs again: it follows web's TTL check.
	waitCheck(t, c, "alias", api.HealthPassing, "All checks passing.")
	mustNil(t, "fail", c.Agent().FailTTL("web-ttl", "down after restart"))
	waitCheck(t, c, "alias", api.HealthCritical, "down after restart")
}
