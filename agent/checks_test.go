package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/miekg/dns"

	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/test/testutil"
)

// flipServer is an HTTP check target whose status can be changed.
func flipServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	code := &atomic.Int32{}
	code.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(code.Load()))
		fmt.Fprintf(w, "status %d", code.Load())
	}))
	t.Cleanup(srv.Close)
	return srv, code
}

func TestHTTPCheckFailureLeavesOtherAgentsAnswers(t *testing.T) {
	agents := startCluster(t, 2, nil)
	srv, code := flipServer(t)
	mustDo(t, agents[0], "PUT", "/v1/agent/service/register",
		fmt.Sprintf(`{"Name":"web","Port":80,"Check":{"HTTP":%q,"Interval":"200ms"}}`, srv.URL))
	mustDo(t, agents[1], "PUT", "/v1/agent/service/register", `{"Name":"web","ID":"web-b","Port":81}`)
	waitDNS(t, agents, "web", 2, 5*time.Second)

	code.Store(500)
	start := time.Now()
	waitDNS(t, agents, "web", 1, 5*time.Second)
	t.Logf("failed check left agent B's answers in %v", time.Since(start))
	var hs []api.ServiceEntry
	json.Unmarshal(mustDo(t, agents[1], "GET", "/v1/health/service/web", nil), &hs)
	found := false
	for _, e := range hs {
		for _, c := range e.Checks {
			if c.CheckID == "service:web" {
				found = true
				if c.Status != "critical" || c.Type != "http" || !strings.Contains(c.Output, "500") {
					t.Fatalf("remote view of the check: %+v", c)
				}
			}
		}
	}
	if !found {
		t.Fatal("check not replicated")
	}
	json.Unmarshal(mustDo(t, agents[1], "GET", "/v1/health/service/web?passing", nil), &hs)
	if len(hs) != 1 || hs[0].Service.ID != "web-b" {
		t.Fatalf("passing filter: %+v", hs)
	}

	code.Store(429) // warning: answered, with the warning weight
	waitDNS(t, agents, "web", 2, 5*time.Second)
	code.Store(200)
	waitDNS(t, agents, "web", 2, 5*time.Second)
}

func TestTTLChecksAndStatusEndpoints(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	mustDo(t, a, "PUT", "/v1/agent/service/register",
		`{"Name":"job","Port":1,"Weights":{"Passing":10,"Warning":2},"Check":{"TTL":"1s","Status":"passing"}}`)
	srv := func() []uint16 {
		r := query(t, a, "udp", "job.service.chorus", dns.TypeSRV)
		var ws []uint16
		for _, rr := range r.Answer {
			ws = append(ws, rr.(*dns.SRV).Weight)
		}
		return ws
	}
	if w := srv(); len(w) != 1 || w[0] != 10 {
		t.Fatalf("passing weight: %v", w)
	}
	mustDo(t, a, "PUT", "/v1/agent/check/warn/service:job?note=busy", nil)
	if w := srv(); len(w) != 1 || w[0] != 2 {
		t.Fatalf("warning weight: %v", w)
	}
	mustDo(t, a, "PUT", "/v1/agent/check/update/service:job", `{"Status":"critical","Output":"down"}`)
	if w := srv(); len(w) != 0 {
		t.Fatalf("critical answered: %v", w)
	}
	var state []api.HealthCheck
	json.Unmarshal(mustDo(t, a, "GET", "/v1/health/state/critical", nil), &state)
	if len(state) != 1 || state[0].Output != "down" {
		t.Fatalf("state critical: %+v", state)
	}
	mustDo(t, a, "PUT", "/v1/agent/check/pass/service:job", nil)
	if w := srv(); len(w) != 1 {
		t.Fatalf("passing again: %v", w)
	}
	// No update within the TTL: critical.
	testutil.Eventually(t, 5*time.Second, func() error {
		if w := srv(); len(w) != 0 {
			return fmt.Errorf("still answered after TTL")
		}
		return nil
	})
	var checks []api.HealthCheck
	json.Unmarshal(mustDo(t, a, "GET", "/v1/health/checks/job", nil), &checks)
	if len(checks) != 1 || !strings.Contains(checks[0].Output, "TTL expired") {
		t.Fatalf("checks: %+v", checks)
	}
	json.Unmarshal(mustDo(t, a, "GET", "/v1/health/node/alpha", nil), &checks)
	if len(checks) != 2 { // serfHealth + the TTL check
		t.Fatalf("node checks: %+v", checks)
	}
}

func TestStandaloneChecksAndBadCheckInput(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"api","Port":9}`)
	mustDo(t, a, "PUT", "/v1/agent/check/register", `{"Name":"api-ttl","ServiceID":"api","TTL":"30s"}`)
	r := query(t, a, "udp", "api.service.chorus", dns.TypeA)
	if len(r.Answer) != 0 {
		t.Fatal("instance with a critical (initial) TTL check answered")
	}
	mustDo(t, a, "PUT", "/v1/agent/check/pass/api-ttl", nil)
	if r := query(t, a, "udp", "api.service.chorus", dns.TypeA); len(r.Answer) != 1 {
		t.Fatalf("after pass: %v", r)
	}
	// A node-level check affects every instance on the node.
	mustDo(t, a, "PUT", "/v1/agent/check/register", `{"Name":"disk","TTL":"30s","Status":"critical"}`)
	if r := query(t, a, "udp", "api.service.chorus", dns.TypeA); len(r.Answer) != 0 {
		t.Fatal("node-level critical check did not take the instance out")
	}
	mustDo(t, a, "PUT", "/v1/agent/check/deregister/disk", nil)
	if r := query(t, a, "udp", "api.service.chorus", dns.TypeA); len(r.Answer) != 1 {
		t.Fatal("instance not back after the node check went away")
	}

	before := a.Store().Snapshot().Digest()
	defer func() {
		if a.Store().Snapshot().Digest() != before {
			t.Error("bad check input changed the catalog")
		}
	}()
	for _, tc := range []struct{ name, path, body, want string }{
		{"no type", "/v1/agent/check/register", `{"Name":"x","Interval":"1s"}`, "check"},
		{"two types", "/v1/agent/check/register", `{"Name":"x","TTL":"1s","TCP":"127.0.0.1:1","Interval":"1s"}`, "TCP"},
		{"short interval", "/v1/agent/check/register", `{"Name":"x","TCP":"127.0.0.1:1","Interval":"10ms"}`, "Interval"},
		{"bad duration", "/v1/agent/check/register", `{"Name":"x","TCP":"127.0.0.1:1","Interval":"often"}`, "duration"},
		{"script off", "/v1/agent/check/register", `{"Name":"x","Args":["/bin/true"],"Interval":"1s"}`, "enable_script_checks"},
		{"unknown service", "/v1/agent/check/register", `{"Name":"x","TTL":"1s","ServiceID":"nope"}`, "nope"},
		{"ttl update of http check", "/v1/agent/check/pass/api-ttl-missing", ``, "not found"},
		{"bad status", "/v1/agent/check/update/api-ttl", `{"Status":"fine"}`, "status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, a, "PUT", tc.path, tc.body)
			if code < 400 || code >= 500 || !strings.Contains(string(body), tc.want) {
				t.Fatalf("%d %s (want 4xx naming %q)", code, body, tc.want)
			}
		})
	}
}

func TestTTLUpdateOfNonTTLCheck(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	srv, _ := flipServer(t)
	mustDo(t, a, "PUT", "/v1/agent/check/register", fmt.Sprintf(`{"Name":"web-http","HTTP":%q,"Interval":"1s"}`, srv.URL))
	if code, body := do(t, a, "PUT", "/v1/agent/check/pass/web-http", nil); code != 400 || !strings.Contains(string(body), "not a TTL check") {
		t.Fatalf("TTL update of an HTTP check: %d %s", code, body)
	}
}

func TestMaintenanceMode(t *testing.T) {
	agents := startCluster(t, 2, nil)
	mustDo(t, agents[0], "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80}`)
	mustDo(t, agents[0], "PUT", "/v1/agent/service/register", `{"Name":"db","Port":5432}`)
	waitDNS(t, agents, "web", 1, 5*time.Second)

	mustDo(t, agents[0], "PUT", "/v1/agent/service/maintenance/web?enable=true&reason=deploy", nil)
	waitDNS(t, agents, "web", 0, 5*time.Second)
	waitDNS(t, agents, "db", 1, 5*time.Second)
	var hs []api.ServiceEntry
	json.Unmarshal(mustDo(t, agents[1], "GET", "/v1/health/service/web", nil), &hs)
	if len(hs) != 1 || hs[0].Checks[len(hs[0].Checks)-1].Notes != "deploy" {
		t.Fatalf("maintenance check: %+v", hs)
	}
	json.Unmarshal(mustDo(t, agents[1], "GET", "/v1/health/service/web?passing", nil), &hs)
	if len(hs) != 0 {
		t.Fatal("maintenance instance in passing answers")
	}
	mustDo(t, agents[0], "PUT", "/v1/agent/service/maintenance/web?enable=false", nil)
	waitDNS(t, agents, "web", 1, 5*time.Second)

	mustDo(t, agents[0], "PUT", "/v1/agent/maintenance?enable=true", nil)
	waitDNS(t, agents, "web", 0, 5*time.Second)
	waitDNS(t, agents, "db", 0, 5*time.Second)
	mustDo(t, agents[0], "PUT", "/v1/agent/maintenance?enable=false", nil)
	waitDNS(t, agents, "db", 1, 5*time.Second)

	if code, _ := do(t, agents[0], "PUT", "/v1/agent/maintenance", nil); code != 400 {
		t.Fatalf("missing enable: %d", code)
	}
	if code, _ := do(t, agents[0], "PUT", "/v1/agent/service/maintenance/nope?enable=true", nil); code != 404 {
		t.Fatalf("unknown service: %d", code)
	}
}

func TestDeregisterCriticalServiceAfter(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	mustDo(t, a, "PUT", "/v1/agent/service/register",
		`{"Name":"temp","Port":1,"Check":{"TTL":"10s","DeregisterCriticalServiceAfter":"300ms"}}`)
	testutil.Eventually(t, 5*time.Second, func() error {
		var svcs map[string]api.AgentService
		json.Unmarshal(mustDo(t, a, "GET", "/v1/agent/services", nil), &svcs)
		if len(svcs) != 0 {
			return fmt.Errorf("still registered: %v", svcs)
		}
		return nil
	})
}

// TestDeregisterCriticalAfterIdle: a check that turns critical after the
// agent's timers have gone idle (nothing due) still deregisters its
// service on time.
func TestDeregisterCriticalAfterIdle(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	mustDo(t, a, "PUT", "/v1/agent/service/register",
		`{"Name":"temp","Port":1,"Check":{"CheckID":"temp-ttl","TTL":"10s","Status":"passing","DeregisterCriticalServiceAfter":"300ms"}}`)
	// Past a few timer ticks with nothing due: the passing service stays.
	var svcs map[string]api.AgentService
	testutil.Consistently(t, time.Second, func() error {
		svcs = nil
		json.Unmarshal(mustDo(t, a, "GET", "/v1/agent/services", nil), &svcs)
		if len(svcs) != 1 {
			return fmt.Errorf("a passing service was deregistered: %v", svcs)
		}
		return nil
	})
	mustDo(t, a, "PUT", "/v1/agent/check/fail/temp-ttl", nil)
	testutil.Eventually(t, 5*time.Second, func() error {
		svcs = nil
		json.Unmarshal(mustDo(t, a, "GET", "/v1/agent/services", nil), &svcs)
		if len(svcs) != 0 {
			return fmt.Errorf("still registered: %v", svcs)
		}
		return nil
	})
}

func TestScriptChecksWhenEnabled(t *testing.T) {
	cfg := testConfig(t, "alpha")
	cfg.EnableScriptChecks = true
	a := startAgent(t, cfg)
	mustDo(t, a, "PUT", "/v1/agent/service/register",
		`{"Name":"s","Port":1,"Checks":[{"Args":["/bin/sh","-c","exit 0"],"Interval":"200ms"},{"Args":["/bin/sh","-c","echo slow; exit 1"],"Interval":"200ms"}]}`)
	testutil.Eventually(t, 5*time.Second, func() error {
		var checks map[string]api.HealthCheck
		json.Unmarshal(mustDo(t, a, "GET", "/v1/agent/checks", nil), &checks)
		c1, c2 := checks["service:s:1"], checks["service:s:2"]
		if c1.Status != "passing" || c2.Status != "warning" || !strings.Contains(c2.Output, "slow") {
			return fmt.Errorf("checks: %+v %+v", c1, c2)
		}
		return nil
	})
}

// TestLocalScriptChecks: enable_local_script_checks runs the script checks
// of config-file services and refuses them through the HTTP API, as
// Consul's key does.
func TestLocalScriptChecks(t *testing.T) {
	cfg := testConfig(t, "alpha")
	cfg.EnableLocalScriptChecks = true
	def, err := local.DecodeServiceDefinition([]byte(
		`{"Name":"fromfile","Port":1,"Check":{"Args":["/bin/sh","-c","echo ran; exit 0"],"Interval":"200ms"}}`), true)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Services = []local.ServiceDefinition{def}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a config-file script check with enable_local_script_checks: %v", err)
	}
	a := startAgent(t, cfg)
	testutil.Eventually(t, 5*time.Second, func() error {
		var checks map[string]api.HealthCheck
		json.Unmarshal(mustDo(t, a, "GET", "/v1/agent/checks", nil), &checks)
		if c := checks["service:fromfile"]; c.Status != "passing" || !strings.Contains(c.Output, "ran") {
			return fmt.Errorf("config-file script check: %+v", c)
		}
		return nil
	})
	code, body := do(t, a, "PUT", "/v1/agent/service/register",
		`{"Name":"fromapi","Port":1,"Check":{"Args":["/bin/sh","-c","exit 0"],"Interval":"200ms"}}`)
	if code != 400 || !strings.Contains(string(body), "script") {
		t.Fatalf("script check through the API with only enable_local_script_checks: %d %s", code, body)
	}
	code, body = do(t, a, "PUT", "/v1/agent/check/register", `{"Name":"c","Args":["/bin/true"],"Interval":"1s"}`)
	if code != 400 {
		t.Fatalf("script check registered through the API: %d %s", code, body)
	}
}
