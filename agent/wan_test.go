package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/chorusdns/chorus/agent/wan"
	"github.com/chorusdns/chorus/test/testutil"
)

// twoDatacenters starts n agents in dc1 and n in dc2 on 127.0.0.1, each
// pool joined within itself, every agent given every agent's WAN port in
// retry_join_wan (only speakers listen there), two speakers per
// datacenter so that every datacenter has agents that only learn remote
// summaries through the LAN, and the agent-wide failover rule "dc2" in
// dc1. mutate (when set) changes each config last.
func twoDatacenters(t *testing.T, n int, mutate func(c *Config)) (dc1, dc2 []*Agent) {
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
			if mutate != nil {
				mutate(&cfg)
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
	want := agents[0].gossip.WAN().Speakers()
	for _, a := range agents {
		if got := a.gossip.WAN().Speakers(); !slices.Equal(got, want) {
			return nil, fmt.Errorf("%s computes speakers %v, %s computes %v", a.NodeName(), got, agents[0].NodeName(), want)
		}
		if a.gossip.WAN().IsSpeaker() != slices.Contains(want, a.NodeName()) {
			return nil, fmt.Errorf("%s: in the WAN pool %v, chosen %v", a.NodeName(), a.gossip.WAN().IsSpeaker(), slices.Contains(want, a.NodeName()))
		}
	}
	return want, nil
}

func TestTwoDatacenters(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six agents")
	}
	dc1, dc2 := twoDatacenters(t, 3, nil)
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
		if want := map[bool]int{true: 4, false: 0}[a.gossip.WAN().IsSpeaker()]; len(members) != want {
			// The pool may still be converging: only a count below is
			// acceptable here, and only on a speaker.
			if !a.gossip.WAN().IsSpeaker() || len(members) > want {
				t.Fatalf("%s (speaker %v): %d WAN members %v", a.NodeName(), a.gossip.WAN().IsSpeaker(), len(members), members)
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
		if !rest2[0].gossip.WAN().IsSpeaker() {
			return fmt.Errorf("%s has not become a speaker (computes %v)", rest2[0].NodeName(), rest2[0].gossip.WAN().Speakers())
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

// wanAddrOf is the WAN port an agent listens on while it speaks.
func wanAddrOf(a *Agent) string {
	return fmt.Sprintf("127.0.0.1:%d", a.cfg.Load().SerfWANPort)
}

// keptOut checks, over a window, that no agent of sites holds a summary
// of the intruders' datacenter dc3 or lists one of them in its WAN pool,
// and that no intruder holds a summary of dc1 or dc2.
func keptOut(t *testing.T, sites, intruders []*Agent) {
	t.Helper()
	// Each intruder speaks (it is alone in dc3 and names the sites' WAN
	// ports), so it has tried to join the pool.
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, x := range intruders {
			if !x.gossip.WAN().IsSpeaker() {
				return fmt.Errorf("%s has not tried the WAN pool yet", x.NodeName())
			}
		}
		return nil
	})
	// 4 s holds the intruders' first join and at least one retry
	// (wanRejoin), and two rounds of every speaker's announcements.
	testutil.Consistently(t, 4*time.Second, func() error {
		for _, a := range sites {
			if _, ok := a.Store().Snapshot().Remote("dc3"); ok {
				return fmt.Errorf("%s holds a summary of dc3", a.NodeName())
			}
			if got := answerAddrs(query(t, a, "udp", "evil.service.dc3.chorus", dns.TypeA)); len(got) != 0 {
				return fmt.Errorf("%s answers the intruders' service: %v", a.NodeName(), got)
			}
			for _, m := range a.gossip.WAN().Members() {
				if strings.HasSuffix(m.Name, ".dc3") {
					return fmt.Errorf("%s lists %s in its WAN pool", a.NodeName(), m.Name)
				}
			}
		}
		for _, x := range intruders {
			if rs := x.Store().Snapshot().Remotes(); len(rs) != 0 {
				return fmt.Errorf("%s holds a summary of %s", x.NodeName(), rs[0].Name)
			}
		}
		return nil
	})
}

// The WAN pool and the summaries are encrypted with the gossip keyring:
// two sites with the same key link up (the non-speakers learning the
// other site through sealed LAN traffic), agents of a third datacenter
// without the key or with another one are kept out, a key rotation done
// in each site keeps the sites linked, and after it an agent holding
// only the old key is kept out.
func TestWANEncrypted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts seven agents")
	}
	key1, key2 := newKey(t), newKey(t)
	dc1, dc2 := twoDatacenters(t, 2, func(c *Config) { c.Encrypt, c.WANSpeakers = key1, 1 })
	for i, a := range dc1 {
		registerWeb(t, a, fmt.Sprintf("10.1.0.%d", i+1), "passing")
	}
	for i, a := range dc2 {
		registerWeb(t, a, fmt.Sprintf("10.2.0.%d", i+1), "passing")
	}
	waitWebAnswers(t, dc1, "web.service.dc2.chorus", []string{"10.2.0.1", "10.2.0.2"}, 30*time.Second)
	waitWebAnswers(t, dc2, "web.service.dc1.chorus", []string{"10.1.0.1", "10.1.0.2"}, 30*time.Second)
	sites := append(slices.Clone(dc1), dc2...)
	// One speaker per site; the other learns dc2 through the LAN.
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, site := range [][]*Agent{dc1, dc2} {
			if _, err := speakersOf(site); err != nil {
				return err
			}
		}
		return nil
	})

	var wanAddrs []string
	for _, a := range sites {
		wanAddrs = append(wanAddrs, wanAddrOf(a))
	}
	intruder := func(name, key string) *Agent {
		cfg := testConfig(t, name)
		cfg.Datacenter = "dc3"
		cfg.Encrypt = key
		cfg.SerfWANPort = testutil.FreePort(t)
		cfg.RetryJoinWAN = wanAddrs
		x := startAgent(t, cfg)
		registerWeb(t, x, "10.3.0.1", "passing")
		mustDo(t, x, "PUT", "/v1/agent/service/register", map[string]any{"Name": "evil", "Address": "10.3.0.9", "Port": 80})
		return x
	}
	keptOut(t, sites, []*Agent{intruder("dc3-nokey", ""), intruder("dc3-wrongkey", newKey(t))})

	// Rotate in each site (a keyring operation reaches its own LAN pool;
	// the WAN pool shares the keyring object): install everywhere, then
	// dc1 seals with key2 while dc2 still seals with key1, then dc2
	// follows and key1 goes.
	change := func(name, addr string) {
		t.Helper()
		mustDo(t, dc2[1], "PUT", "/v1/agent/service/register", map[string]any{"Name": name, "Address": addr, "Port": 80})
		waitWebAnswers(t, dc1, name+".service.dc2.chorus", []string{addr}, 15*time.Second)
	}
	for _, step := range []struct {
		op, key string
		sites   [][]*Agent
	}{
		{"install", key2, [][]*Agent{dc1, dc2}},
		{"use", key2, [][]*Agent{dc1}},
		{"use", key2, [][]*Agent{dc2}},
		{"remove", key1, [][]*Agent{dc1, dc2}},
	} {
		for _, site := range step.sites {
			if _, err := site[0].gossip.KeyringOp(step.op, step.key); err != nil {
				t.Fatalf("%s %s in %s: %v", step.op, step.key[:4], site[0].cfg.Load().Datacenter, err)
			}
		}
		// A change in dc2 still reaches every dc1 agent after each step.
		change(fmt.Sprintf("after-%s-%d", step.op, len(step.sites)), "10.2.9.1")
	}
	keptOut(t, sites, []*Agent{intruder("dc3-oldkey", key1)})
}

// An agent that joins its LAN pool at start (retry_join) does not speak
// while it is alone before the join: it would choose itself, open the
// WAN pool and leave it again once the members that outscore it arrive.
// An agent whose LAN join finds no one still speaks after speakerGrace,
// so a datacenter reduced to one restarted agent keeps its link.
func TestJoinerDoesNotSpeakAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the speaker grace")
	}
	nowhere := []string{fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))}
	cfgFor := func(name string) Config {
		cfg := testConfig(t, name)
		cfg.SerfWANPort = testutil.FreePort(t)
		cfg.RetryJoinWAN = nowhere // links the datacenter; nobody answers
		cfg.WANSpeakers = 1
		return cfg
	}
	first := startAgent(t, cfgFor("dc1-first"))
	// The lone one expects a peer that never answers.
	lone := cfgFor("dc1-lone")
	lone.Datacenter = "dc9"
	lone.RetryJoin = nowhere
	loneStart := time.Now()
	loner := startAgent(t, lone)
	testutil.Eventually(t, 10*time.Second, func() error {
		if !first.gossip.WAN().IsSpeaker() {
			return fmt.Errorf("%s, alone and told of no peer, does not speak", first.NodeName())
		}
		return nil
	})
	// A name the rendezvous order puts after first's.
	name := ""
	for i := 0; name == ""; i++ {
		c := fmt.Sprintf("dc1-joiner%d", i)
		if wan.Speakers("dc1", []string{"dc1-first", c}, 1)[0] == "dc1-first" {
			name = c
		}
	}
	jc := cfgFor(name)
	jc.RetryJoin = []string{first.SerfAddr()}
	joiner := startAgent(t, jc)
	waitMembers(t, []*Agent{first, joiner}, 2)
	// Three speaker checks after the join: the joiner never spoke.
	testutil.Consistently(t, 3*speakerCheck, func() error {
		if got := joiner.gossip.WAN().Speakers(); !slices.Equal(got, []string{"dc1-first"}) {
			return fmt.Errorf("joiner computes speakers %v", got)
		}
		return nil
	})
	if starts := gatheredValue(t, joiner, "chorus_wan_speaker_starts_total"); starts != 0 {
		t.Fatalf("%s joined the WAN pool %g times, never chosen", name, starts)
	}
	testutil.Eventually(t, speakerGrace+10*time.Second, func() error {
		if !loner.gossip.WAN().IsSpeaker() {
			return fmt.Errorf("%s, whose LAN join finds no one, does not speak", loner.NodeName())
		}
		return nil
	})
	if d := time.Since(loneStart); d < speakerGrace {
		t.Fatalf("%s spoke %v after its start, within the grace %v", loner.NodeName(), d, speakerGrace)
	}
}

// A speaker that leaves gracefully is replaced within a few seconds: the
// next agent in the rendezvous order joins the WAN pool, and a change in
// its datacenter made after the leave reaches the other site.
func TestSpeakerLeaveReplaced(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four agents")
	}
	p2 := testutil.FreePort(t)
	var dc1 []*Agent
	var wan1 []string
	ports := []int{testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)}
	for _, p := range ports {
		wan1 = append(wan1, fmt.Sprintf("127.0.0.1:%d", p))
	}
	for i, p := range ports {
		cfg := testConfig(t, fmt.Sprintf("dc1-n%d", i))
		cfg.SerfWANPort, cfg.WANSpeakers = p, 1
		cfg.RetryJoinWAN = []string{fmt.Sprintf("127.0.0.1:%d", p2)}
		a := startAgent(t, cfg)
		if i > 0 {
			if _, err := a.Join([]string{dc1[0].SerfAddr()}); err != nil {
				t.Fatal(err)
			}
		}
		dc1 = append(dc1, a)
	}
	waitMembers(t, dc1, 3)
	cfg := testConfig(t, "dc2-solo")
	cfg.Datacenter, cfg.SerfWANPort, cfg.RetryJoinWAN = "dc2", p2, wan1
	solo := startAgent(t, cfg)

	mustDo(t, dc1[0], "PUT", "/v1/agent/service/register", map[string]any{"Name": "web", "Address": "10.1.0.1", "Port": 80})
	waitWebAnswers(t, []*Agent{solo}, "web.service.dc1.chorus", []string{"10.1.0.1"}, 30*time.Second)
	var spk []string
	testutil.Eventually(t, 10*time.Second, func() (err error) {
		spk, err = speakersOf(dc1)
		return err
	})
	var leaver *Agent
	var rest []*Agent
	for _, a := range dc1 {
		if a.NodeName() == spk[0] {
			leaver = a
		} else {
			rest = append(rest, a)
		}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	leaver.Shutdown(ctx)
	left := time.Since(start)
	var next []string
	testutil.Eventually(t, 10*time.Second, func() (err error) {
		if next, err = speakersOf(rest); err != nil {
			return err
		}
		if len(next) != 1 || next[0] == leaver.NodeName() {
			return fmt.Errorf("speakers %v after %s left", next, leaver.NodeName())
		}
		return nil
	})
	took := time.Since(start)
	t.Logf("%s left (%v for its leave); %s speaks %v after the leave began", leaver.NodeName(), left.Round(time.Millisecond), next[0], took.Round(time.Millisecond))
	if took-left > 5*time.Second {
		t.Fatalf("the next speaker took %v after the leave", took-left)
	}
	mustDo(t, rest[0], "PUT", "/v1/agent/service/register", map[string]any{"Name": "late", "Address": "10.1.0.9", "Port": 80})
	changed := time.Now()
	waitWebAnswers(t, []*Agent{solo}, "late.service.dc1.chorus", []string{"10.1.0.9"}, 15*time.Second)
	t.Logf("a change in dc1 after the leave reached dc2 in %v", time.Since(changed).Round(time.Millisecond))
}

// The gossip layer's speaker timings (agent/gossip/wan.go): how often an
// agent recomputes the speaker set, and how long one told of LAN peers
// waits alone before it speaks.
const (
	speakerCheck = 500 * time.Millisecond
	speakerGrace = 10 * time.Second
)

// gatheredValue is the value of an unlabelled counter or gauge in a's
// registry (0 when absent).
func gatheredValue(t *testing.T, a *Agent, name string) float64 {
	t.Helper()
	mfs, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return 0
}
