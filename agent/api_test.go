package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/miekg/dns"

	"github.com/chorusdns/chorus/test/testutil"
)

func TestRegisterAnswersHTTPAndDNS(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"web","Port":8080,"Tags":["v1"],"Meta":{"team":"x"}}`)
	mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"web","ID":"web2","Address":"10.0.0.7","Port":8081,"Weights":{"Passing":5,"Warning":1}}`)

	var svcs map[string]api.AgentService
	json.Unmarshal(mustDo(t, a, "GET", "/v1/agent/services", nil), &svcs)
	if len(svcs) != 2 || svcs["web"].Service != "web" || svcs["web"].Weights.Passing != 1 || svcs["web2"].Weights.Passing != 5 {
		t.Fatalf("agent services: %+v", svcs)
	}
	var names map[string][]string
	json.Unmarshal(mustDo(t, a, "GET", "/v1/catalog/services", nil), &names)
	if fmt.Sprint(names["web"]) != "[v1]" {
		t.Fatalf("catalog services: %v", names)
	}
	var cs []api.CatalogService
	json.Unmarshal(mustDo(t, a, "GET", "/v1/catalog/service/web", nil), &cs)
	if len(cs) != 2 || cs[0].Node != "alpha" || cs[0].Address != "127.0.0.1" || cs[1].ServiceAddress != "10.0.0.7" {
		t.Fatalf("catalog service: %+v", cs)
	}
	var hs []api.ServiceEntry
	json.Unmarshal(mustDo(t, a, "GET", "/v1/health/service/web?passing", nil), &hs)
	if len(hs) != 2 || hs[0].Checks[0].CheckID != "serfHealth" || hs[0].Checks[0].Status != "passing" {
		t.Fatalf("health service: %+v", hs)
	}

	for _, network := range []string{"udp", "tcp"} {
		r := query(t, a, network, "web.service.chorus", dns.TypeA)
		if got := fmt.Sprint(answerAddrs(r)); got != "[10.0.0.7 127.0.0.1]" {
			t.Fatalf("%s A: %v\n%v", network, got, r)
		}
		r = query(t, a, network, "WEB.service.Chorus", dns.TypeSRV)
		if len(r.Answer) != 2 || len(r.Extra) < 2 {
			t.Fatalf("%s SRV: %v", network, r)
		}
		r = query(t, a, network, "alpha.node.chorus", dns.TypeA)
		if got := fmt.Sprint(answerAddrs(r)); got != "[127.0.0.1]" {
			t.Fatalf("%s node A: %v", network, r)
		}
		r = query(t, a, network, "nope.service.chorus", dns.TypeA)
		if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 {
			t.Fatalf("%s unknown: %v", network, r)
		}
	}

	mustDo(t, a, "PUT", "/v1/agent/service/deregister/web2", nil)
	r := query(t, a, "udp", "web.service.chorus", dns.TypeA)
	if got := fmt.Sprint(answerAddrs(r)); got != "[127.0.0.1]" {
		t.Fatalf("after deregister: %v", got)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80}`)
	before := a.Store().Snapshot().Digest()
	cases := []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"malformed json", "PUT", "/v1/agent/service/register", `{"Name":"web",`, 400, "malformed JSON"},
		{"not an object", "PUT", "/v1/agent/service/register", `[1,2]`, 400, "expected an object"},
		{"wrong type", "PUT", "/v1/agent/service/register", `{"Name":"web","Port":"eighty"}`, 400, "Port"},
		{"bad name", "PUT", "/v1/agent/service/register", `{"Name":"web_server","Port":80}`, 400, "not a DNS label"},
		{"empty name", "PUT", "/v1/agent/service/register", `{"Port":80}`, 400, "service name is empty"},
		{"bad tag", "PUT", "/v1/agent/service/register", `{"Name":"api","Tags":["ok","no way"]}`, 400, "tag"},
		{"port too big", "PUT", "/v1/agent/service/register", `{"Name":"api","Port":70000}`, 400, "outside 0–65535"},
		{"negative port", "PUT", "/v1/agent/service/register", `{"Name":"api","Port":-1}`, 400, "outside 0–65535"},
		{"bad check", "PUT", "/v1/agent/service/register", `{"Name":"api","Check":{"Interval":"1s"}}`, 400, "check"},
		{"script check off", "PUT", "/v1/agent/service/register", `{"Name":"api","Check":{"Args":["true"],"Interval":"1s"}}`, 400, "script"},
		{"bad duration", "PUT", "/v1/agent/service/register", `{"Name":"api","Check":{"TTL":"soon"}}`, 400, "duration"},
		{"unknown deregister", "PUT", "/v1/agent/service/deregister/nope", ``, 404, "not found"},
		{"too large", "PUT", "/v1/agent/service/register", `{"Name":"api","Meta":{"x":"` + strings.Repeat("a", 1<<20) + `"}}`, 413, "larger than"},
		{"wrong method", "GET", "/v1/agent/service/register", ``, 405, ""},
		{"unsupported endpoint", "GET", "/v1/kv/foo", ``, 501, "does not provide"},
		{"other dc", "GET", "/v1/catalog/services?dc=elsewhere", ``, 500, "No path to datacenter"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, a, tc.method, tc.path, tc.body)
			if code != tc.code || !strings.Contains(string(body), tc.want) {
				t.Fatalf("got %d %s, want %d containing %q", code, body, tc.code, tc.want)
			}
		})
	}
	if after := a.Store().Snapshot().Digest(); after != before {
		t.Fatalf("catalog changed by bad input: %s → %s", before, after)
	}
	var svcs map[string]api.AgentService
	json.Unmarshal(mustDo(t, a, "GET", "/v1/agent/services", nil), &svcs)
	if len(svcs) != 1 {
		t.Fatalf("services after bad input: %v", svcs)
	}
}

func TestRestartKeepsRegistrations(t *testing.T) {
	cfg := testConfig(t, "alpha")
	a := startAgent(t, cfg)
	mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"db","Port":5432,"Check":{"TTL":"30s","Status":"passing"}}`)
	mustDo(t, a, "PUT", "/v1/agent/check/warn/service:db?note=slow", nil)
	v1 := a.Store().Version("alpha")
	a.Kill()

	b := startAgent(t, cfg)
	if v := b.Store().Version("alpha"); v <= v1 {
		t.Fatalf("version went from %d to %d across a restart", v1, v)
	}
	var svcs map[string]api.AgentService
	json.Unmarshal(mustDo(t, b, "GET", "/v1/agent/services", nil), &svcs)
	if svcs["db"].Port != 5432 {
		t.Fatalf("after restart: %+v", svcs)
	}
	var checks map[string]api.HealthCheck
	json.Unmarshal(mustDo(t, b, "GET", "/v1/agent/checks", nil), &checks)
	if c := checks["service:db"]; c.Status != "warning" || c.Output != "slow" {
		t.Fatalf("TTL state after restart: %+v", c)
	}
	r := query(t, b, "udp", "db.service.chorus", dns.TypeSRV)
	if len(r.Answer) != 1 {
		t.Fatalf("dns after restart: %v", r)
	}
}

func TestBlockingQuery(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80}`)
	mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"other","Port":81}`)
	resp, err := http.Get("http://" + a.HTTPAddr() + "/v1/health/service/web")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	idx := resp.Header.Get("X-Consul-Index")
	if idx == "" || idx == "0" {
		t.Fatalf("X-Consul-Index %q", idx)
	}
	type result struct {
		idx  string
		body string
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		resp, err := http.Get("http://" + a.HTTPAddr() + "/v1/health/service/web?wait=10s&index=" + idx)
		if err != nil {
			done <- result{}
			return
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		done <- result{resp.Header.Get("X-Consul-Index"), b.String(), time.Since(start)}
	}()
	waitParked(t, a, 1)
	// An unrelated change must not wake the watcher. What is tested is
	// that nothing happens, which only a window can show: 300 ms is far
	// longer than waking a parked query takes.
	mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"other","Port":82}`)
	select {
	case r := <-done:
		t.Fatalf("woke on an unrelated change: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"web","Port":90}`)
	select {
	case r := <-done:
		if r.idx <= idx || !strings.Contains(r.body, `"Port":90`) {
			t.Fatalf("blocking result: %+v (was index %s)", r, idx)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocking query did not return on change")
	}
	// A short wait times out with the same index.
	start := time.Now()
	svcIdx := strconv.FormatUint(a.Store().Snapshot().ServicesIndex(), 10)
	resp, err = http.Get("http://" + a.HTTPAddr() + "/v1/catalog/services?wait=200ms&index=" + svcIdx)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Consul-Index") != svcIdx || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("timeout returned after %v", time.Since(start))
	}
}

func TestMetricsEndpoint(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	query(t, a, "udp", "alpha.node.chorus", dns.TypeA)
	testutil.Eventually(t, 5*time.Second, func() error {
		_, body := do(t, a, "GET", "/metrics", nil)
		for _, want := range []string{"chorus_dns_queries_total", "chorus_dns_request_duration_seconds", "go_goroutines", "process_cpu_seconds_total", "chorus_members"} {
			if !strings.Contains(string(body), want) {
				return fmt.Errorf("missing %s", want)
			}
		}
		return nil
	})
}
