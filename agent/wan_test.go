package agent

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/chorusdns/chorus/test/testutil"
)

// twoDatacenters starts n agents in dc1 and n in dc2 on 127.0.0.1, each
// pool joined within itself, every agent given every agent's WAN port in
// retry_join_wan (only speakers listen there), two speakers per
// datacenter so that every datacenter has agents that only learn remote
// summaries through the LAN, and the agent-wide failover rule "dc2" in
// dc1.
func twoDatacenters(t *testing.T, n int) (dc1, dc2 []*Agent) {
	t.Helper()
	ports := make([]int, 2*n)
	var wanAddrs []string
	for i := range ports {
		ports[i] = testutil.FreePort(t)
		wanAddrs = append(wanAddrs, fmt.Sprintf("127.0.0.1:%d", ports[i]))
	}
	start := func(dc string, off int) []*Agent {
		agents := make([]*Agent, n)
		for i := range agents {
			cfg := testConfig(t, fmt.Sprintf("%s-n%d", dc, i))
			cfg.Datacenter = dc
			cfg.SerfWANPort = ports[off+i]
			cfg.RetryJoinWAN = wanAddrs
			cfg.WANSpeakers = 2
			if dc == "dc1" {
				cfg.Failover = "dc2"
			}
			agents[i] = startAgent(t, cfg)
			if i > 0 {
				if _, err := agents[i].Join([]string{agents[0].SerfAddr()}); err != nil {
					t.Fatalf("join: %v", err)
				}
			}
		}
		waitMembers(t, agents, n)
		return agents
	}
	return start("dc1", 0), start("dc2", n)
}

// registerWeb registers web on a with a TTL check in status and service
// address addr.
func registerWeb(t *testing.T, a *Agent, addr, status string) {
	t.Helper()
	mustDo(t, a, "PUT", "/v1/agent/service/register", map[string]any{
		"Name": "web", "Address": addr, "Port": 80,
		"Check": map[string]any{"CheckID": "web-ttl", "TTL": "1h", "Status": status},
	})
}

func setWeb(t *testing.T, a *Agent, status string) {
	t.Helper()
	verb := map[string]string{"passing": "pass", "critical": "fail"}[status]
	mustDo(t, a, "PUT", "/v1/agent/check/"+verb+"/web-ttl", nil)
}

// waitWebAnswers waits until every agent answers web.service.chorus with
// want (sorted addresses).
func waitWebAnswers(t *testing.T, agents []*Agent, name string, want []string, within time.Duration) {
	t.Helper()
	testutil.Eventually(t, within, func() error {
		for _, a := range agents {
			got := answerAddrs(query(t, a, "udp", name, dns.TypeA))
			if !slices.Equal(got, want) {
				return fmt.Errorf("%s answers %s with %v, want %v", a.NodeName(), name, got, want)
			}
		}
		return nil
	})
}

// speakersOf checks that every agent of a datacenter computes the same
// speakers and that exactly those are in the WAN pool; it returns them.
func speakersOf(agents []*Agent) ([]string, error) {
	want := agents[0].Speakers()
	for _, a := range agents {
		if got := a.Speakers(); !slices.Equal(got, want) {
			return nil, fmt.Errorf("%s computes speakers %v, %s computes %v", a.NodeName(), got, agents[0].NodeName(), want)
		}
		if a.IsSpeaker() != slices.Contains(want, a.NodeName()) {
			return nil, fmt.Errorf("%s: in the WAN pool %v, chosen %v", a.NodeName(), a.IsSpeaker(), slices.Contains(want, a.NodeName()))
		}
	}
	return want, nil
}

func TestTwoDatacenters(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six agents")
	}
	dc1, dc2 := twoDatacenters(t, 3)
	for i, a := range dc1 {
		registerWeb(t, a, fmt.Sprintf("10.1.0.%d", i+1), "passing")
	}
	for i, a := range dc2 {
		registerWeb(t, a, fmt.Sprintf("10.2.0.%d", i+1), "passing")
	}
	local1 := []string{"10.1.0.1", "10.1.0.2", "10.1.0.3"}
	local2 := []string{"10.2.0.1", "10.2.0.2", "10.2.0.3"}

	// The same speakers everywhere, and each speaker in the WAN pool.
	var spk1, spk2 []string
	testutil.Eventually(t, 20*time.Second, func() (err error) {
		if spk1, err = speakersOf(dc1); err != nil {
			return err
		}
		spk2, err = speakersOf(dc2)
		return err
	})
	if len(spk1) != 2 || len(spk2) != 2 {
		t.Fatalf("speakers %v %v, want two per datacenter", spk1, spk2)
	}

	// Every agent, speaker or not, answers for the other datacenter.
	waitWebAnswers(t, dc1, "web.service.dc2.chorus", local2, 30*time.Second)
	waitWebAnswers(t, dc2, "web.service.dc1.chorus", local1, 30*time.Second)
	waitWebAnswers(t, dc1, "web.service.chorus", local1, 5*time.Second)

	// The HTTP API: datacenters nearest first, ?dc= reads from the
	// summary, the WAN pool's members on speakers.
	for _, a := range dc1 {
		var dcs []string
		json.Unmarshal(mustDo(t, a, "GET", "/v1/catalog/datacenters", nil), &dcs)
		if !slices.Equal(dcs, []string{"dc1", "dc2"}) {
			t.Fatalf("%s: datacenters %v", a.NodeName(), dcs)
		}
		var entries []struct {
			Node    struct{ Datacenter string }
			Service struct{ Address string }
		}
		json.Unmarshal(mustDo(t, a, "GET", "/v1/health/service/web?dc=dc2&passing", nil), &entries)
		var addrs []string
		for _, e := range entries {
			addrs = append(addrs, e.Service.Address)
			if e.Node.Datacenter != "dc2" {
				t.Fatalf("%s: ?dc=dc2 entry of datacenter %q", a.NodeName(), e.Node.Datacenter)
			}
		}
		slices.Sort(addrs)
		if !slices.Equal(addrs, local2) {
			t.Fatalf("%s: /v1/health/service/web?dc=dc2 gave %v", a.NodeName(), addrs)
		}
		if code, body := do(t, a, "GET", "/v1/catalog/service/web?dc=dc9", nil); code != 500 || !strings.Contains(string(body), "No path to datacenter") {
			t.Fatalf("%s: ?dc=dc9: %d %s", a.NodeName(), code, body)
		}
		var all []struct {
			Name   string
			Status int
		}
		json.Unmarshal(mustDo(t, a, "GET", "/v1/agent/members?wan=1", nil), &all)
		var members []string // alive ones: those that stopped speaking have left
		for _, m := range all {
			if m.Status == 1 {
				members = append(members, m.Name)
			}
		}
		if want := map[bool]int{true: 4, false: 0}[a.IsSpeaker()]; len(members) != want {
			// The pool may still be converging: only a count below is
			// acceptable here, and only on a speaker.
			if !a.IsSpeaker() || len(members) > want {
				t.Fatalf("%s (speaker %v): %d WAN members %v", a.NodeName(), a.IsSpeaker(), len(members), members)
			}
		}
		var info []struct {
			Name  string
			Stale bool
		}
		json.Unmarshal(mustDo(t, a, "GET", "/v1/chorus/datacenters", nil), &info)
		if len(info) != 2 || info[1].Name != "dc2" || info[1].Stale {
			t.Fatalf("%s: /v1/chorus/datacenters %+v", a.NodeName(), info)
		}
	}

	// Every dc1 instance critical: dc1 agents answer dc2's instances.
	for _, a := range dc1 {
		setWeb(t, a, "critical")
	}
	start := time.Now()
	waitWebAnswers(t, dc1, "web.service.chorus", local2, 15*time.Second)
	t.Logf("every dc1 agent answers from dc2 %v after the last local instance failed", time.Since(start).Round(time.Millisecond))
	for _, a := range dc1 {
		for _, rr := range query(t, a, "udp", "web.service.chorus", dns.TypeA).Answer {
			if rr.Header().Ttl > 5 {
				t.Fatalf("%s: failover answer with TTL %d", a.NodeName(), rr.Header().Ttl)
			}
		}
	}
	var fo []struct{ Service struct{ Address string } }
	json.Unmarshal(mustDo(t, dc1[0], "GET", "/v1/health/service/web?passing&failover=1", nil), &fo)
	if len(fo) != 3 || !strings.HasPrefix(fo[0].Service.Address, "10.2.") {
		t.Fatalf("?passing&failover=1 with every local instance critical: %+v", fo)
	}
	// Every dc1 agent learns the WAN round-trip time to dc2 (measured by
	// the speakers' WAN coordinates, replicated to the others).
	testutil.Eventually(t, 30*time.Second, func() error {
		for _, a := range dc1 {
			var info []struct {
				Name      string
				RTTMillis float64
			}
			json.Unmarshal(mustDo(t, a, "GET", "/v1/chorus/datacenters", nil), &info)
			if len(info) != 2 || info[1].RTTMillis <= 0 {
				return fmt.Errorf("%s: %+v, want dc2 with an RTT", a.NodeName(), info)
			}
		}
		return nil
	})
	// One recovers: back to local.
	setWeb(t, dc1[1], "passing")
	waitWebAnswers(t, dc1, "web.service.chorus", []string{"10.1.0.2"}, 10*time.Second)

	// Kill every current speaker of dc2: others take over, and a change
	// in dc2 still reaches every dc1 agent.
	var rest2 []*Agent
	for _, a := range dc2 {
		if slices.Contains(spk2, a.NodeName()) {
			a.Kill()
		} else {
			rest2 = append(rest2, a)
		}
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		if !rest2[0].IsSpeaker() {
			return fmt.Errorf("%s has not become a speaker (computes %v)", rest2[0].NodeName(), rest2[0].Speakers())
		}
		return nil
	})
	start = time.Now()
	setWeb(t, rest2[0], "critical")
	// dc2's killed agents are failed there and rest2[0], the only one
	// left, is now critical: dc2 has no healthy web.
	waitWebAnswers(t, dc1, "web.service.dc2.chorus", nil, 30*time.Second)
	t.Logf("a change in dc2 reached every dc1 agent %v after it was made, the old speakers dead", time.Since(start).Round(time.Millisecond))
}
