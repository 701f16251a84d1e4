package agent

import (
	"fmt"
	"github.com/chorusdns/chorus/agent/gossip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/agent/replication"
	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/test/testutil"
)

// instancesOn returns how many healthy instances of svc agent a answers
// over DNS.
func dnsCount(t testing.TB, a *Agent, svc string) int {
	r := query(t, a, "udp", svc+".service.chorus", dns.TypeSRV)
	return len(r.Answer)
}

func waitDNS(t testing.TB, agents []*Agent, svc string, want int, timeout time.Duration) {
	t.Helper()
	testutil.Eventually(t, timeout, func() error {
		for _, a := range agents {
			if n := dnsCount(t, a, svc); n != want {
				return fmt.Errorf("%s answers %d instances of %s, want %d", a.NodeName(), n, svc, want)
			}
		}
		return nil
	})
}

func waitConverged(t testing.TB, agents []*Agent, timeout time.Duration) {
	t.Helper()
	testutil.Eventually(t, timeout, func() error {
		d0 := agents[0].Store().Snapshot().Digest()
		for _, a := range agents[1:] {
			if d := a.Store().Snapshot().Digest(); d != d0 {
				return fmt.Errorf("%s digest %s != %s digest %s", a.NodeName(), d, agents[0].NodeName(), d0)
			}
		}
		return nil
	})
}

func TestReplicationAndFailure(t *testing.T) {
	agents := startCluster(t, 3, nil)
	mustDo(t, agents[1], "PUT", "/v1/agent/service/register", `{"Name":"web","Port":8080}`)
	mustDo(t, agents[2], "PUT", "/v1/agent/service/register", `{"Name":"web","Port":8081}`)
	waitDNS(t, agents, "web", 2, 5*time.Second)
	waitConverged(t, agents, 5*time.Second)

	// A crash (no leave): node2's instance leaves every answer once Serf
	// declares it failed; the catalog still lists it, critical.
	agents[2].Kill()
	live := agents[:2]
	waitDNS(t, live, "web", 1, 10*time.Second)
	n, ok := agents[0].Store().Snapshot().Node("node2")
	if !ok || n.Status != catalog.MemberFailed || n.Health != catalog.HealthCritical {
		t.Fatalf("node2 after crash: %+v", n)
	}

	// A graceful leave removes the node from the catalog at once.
	if err := agents[1].Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if _, ok := agents[0].Store().Snapshot().Node("node1"); ok {
			return fmt.Errorf("node1 still in node0's catalog after leaving")
		}
		return nil
	})
}

func TestRejoinAfterRestartWithDataDir(t *testing.T) {
	agents := startCluster(t, 3, nil)
	cfg2 := *agents[2].Config()
	port := agents[2].gossip.LocalMember().Port
	mustDo(t, agents[2], "PUT", "/v1/agent/service/register", `{"Name":"cache","Port":6379}`)
	waitDNS(t, agents, "cache", 1, 5*time.Second)
	agents[2].Kill()
	waitDNS(t, agents[:2], "cache", 0, 10*time.Second)

	// Restart with the same data dir and gossip port: the Serf snapshot
	// rejoins by itself and the persisted registration comes back.
	cfg2.SerfPort = int(port)
	b := startAgent(t, cfg2)
	mustDo(t, b, "PUT", "/v1/agent/service/register", `{"Name":"cache2","Port":6380}`)
	all := []*Agent{agents[0], agents[1], b}
	waitDNS(t, all, "cache", 1, 15*time.Second)
	waitDNS(t, all, "cache2", 1, 10*time.Second)
	waitConverged(t, all, 10*time.Second)
}

func TestConcurrentChangesConverge(t *testing.T) {
	agents := startCluster(t, 5, nil)
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				code, body := do(t, a, "PUT", "/v1/agent/service/register", fmt.Sprintf(`{"Name":"svc%d","ID":"svc%d-%d","Port":%d}`, j%4, i, j, 1000+j))
				if code != 200 {
					t.Errorf("register: %d %s", code, body)
				}
			}
			for j := 0; j < 20; j += 3 {
				do(t, a, "PUT", fmt.Sprintf("/v1/agent/service/deregister/svc%d-%d", i, j), nil)
			}
		}()
	}
	wg.Wait()
	waitConverged(t, agents, 10*time.Second)
	for _, a := range agents {
		total := 0
		for _, se := range a.Store().Snapshot().Services() {
			total += se.Instances.Len()
		}
		// 13 per agent, and each agent's built-in "chorus" instance.
		if total != 5*(20-7)+5 {
			t.Fatalf("%s holds %d instances, want %d", a.NodeName(), total, 5*13+5)
		}
	}
}

func counterValue(t testing.TB, a *Agent, event string) float64 {
	_, body := do(t, a, "GET", "/metrics", nil)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, `chorus_sync_events_total{event="`+event+`"}`) {
			var v float64
			fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
			return v
		}
	}
	return 0
}

func TestLargeRecordReplicates(t *testing.T) {
	agents := startCluster(t, 3, nil)
	for i := 0; i < 300; i++ {
		mustDo(t, agents[0], "PUT", "/v1/agent/service/register",
			fmt.Sprintf(`{"Name":"bulk","ID":"bulk-%03d","Port":%d,"Tags":["t%d"],"Meta":{"index":"%d"}}`, i, 2000+i, i%7, i))
	}
	enc, _ := catalog.EncodeRecord(agents[0].Store().Record("node0"))
	if len(enc) <= replication.MaxInlineRecord {
		t.Fatalf("record of %d bytes is not bigger than a notice", len(enc))
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, a := range agents {
			se, ok := a.Store().Snapshot().Service("bulk")
			if !ok || se.Instances.Len() != 300 {
				return fmt.Errorf("%s holds %v instances", a.NodeName(), ok)
			}
		}
		return nil
	})
}

func TestPartitionAndHeal(t *testing.T) {
	agents := startCluster(t, 4, nil)
	for _, a := range agents {
		mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80}`)
	}
	waitDNS(t, agents, "web", 4, 5*time.Second)
	left, right := agents[:2], agents[2:]
	addrsOf := func(as []*Agent) map[string]bool {
		m := map[string]bool{}
		for _, a := range as {
			m[a.SerfAddr()] = true
		}
		return m
	}
	cut := func(from []*Agent, to map[string]bool) {
		for _, a := range from {
			a.gossip.Transport().SetDrop(func(addr string) bool { return to[addr] })
		}
	}
	cut(left, addrsOf(right))
	cut(right, addrsOf(left))
	// Each side keeps answering its own members only.
	waitDNS(t, left, "web", 2, 15*time.Second)
	waitDNS(t, right, "web", 2, 15*time.Second)
	// A change on one side during the partition.
	mustDo(t, agents[0], "PUT", "/v1/agent/service/register", `{"Name":"web","ID":"web-extra","Port":81}`)
	waitDNS(t, left, "web", 3, 5*time.Second)

	for _, a := range agents {
		a.gossip.Transport().SetDrop(nil)
	}
	start := time.Now()
	waitDNS(t, agents, "web", 5, 15*time.Second)
	waitConverged(t, agents, 10*time.Second)
	t.Logf("healed and converged in %v", time.Since(start))
}

func TestDuplicateNodeNameRefused(t *testing.T) {
	agents := startCluster(t, 2, nil)
	dup := testConfig(t, "node1")
	d, err := New(dup, testLogger(t), prometheus.NewPedanticRegistry())
	if err == nil {
		err = d.Start()
	}
	if err != nil {
		t.Fatal(err)
	}
	defer d.Kill()
	_, joinErr := d.Join([]string{agents[0].SerfAddr()})
	select {
	case <-d.Done():
		if err := d.Err(); err == nil || !strings.Contains(err.Error(), "unique --node") {
			t.Fatalf("stopped without a clear reason: %v", err)
		}
	case <-time.After(15 * time.Second):
		if joinErr == nil {
			t.Fatal("an agent with a taken node name joined and kept running")
		}
	}
	// The original keeps its place.
	waitMembers(t, agents, 2)
}

// A restarted agent must not answer from a catalog that holds only its own
// node: its first DNS answer already has the instances of the whole
// cluster, after a crash (Serf's snapshot rejoins) and after a graceful
// leave (retry_join rejoins).
func TestRestartedAgentAnswersWholeClusterAtOnce(t *testing.T) {
	for _, graceful := range []bool{false, true} {
		t.Run(map[bool]string{false: "crash", true: "leave"}[graceful], func(t *testing.T) {
			agents := startCluster(t, 3, nil)
			mustDo(t, agents[0], "PUT", "/v1/agent/service/register", `{"Name":"web","Port":8080}`)
			mustDo(t, agents[1], "PUT", "/v1/agent/service/register", `{"Name":"web","Port":8081}`)
			waitDNS(t, agents, "web", 2, 5*time.Second)

			cfg := *agents[2].Config()
			cfg.SerfPort = int(agents[2].gossip.LocalMember().Port)
			if graceful {
				if err := agents[2].Shutdown(t.Context()); err != nil {
					t.Fatal(err)
				}
				cfg.RetryJoin = []string{agents[0].SerfAddr()}
			} else {
				agents[2].Kill()
			}
			b := startAgent(t, cfg)
			r := query(t, b, "udp", "web.service.chorus", dns.TypeSRV)
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
				t.Fatalf("first answer of the restarted agent: %s with %d records, want NOERROR with 2", dns.RcodeToString[r.Rcode], len(r.Answer))
			}
		})
	}
}

// A member event lost on the way to the catalog (Serf drops events when
// overwhelmed) is repaired from Serf's member list within a few rounds.
func TestMemberStatusRepairedAfterLostEvent(t *testing.T) {
	agents := startCluster(t, 2, nil)
	mustDo(t, agents[1], "PUT", "/v1/agent/service/register", `{"Name":"web","Port":8080}`)
	waitDNS(t, agents, "web", 1, 5*time.Second)
	// Let node1's version tag (set once, at its start) settle, so no
	// member event is on its way that would mend the status before the
	// repair does.
	testutil.Eventually(t, 10*time.Second, func() error {
		want := agents[1].gossip.LocalMember().Tags[gossip.TagVersion]
		if want == "" || want == "0" {
			return fmt.Errorf("node1 has not set its version tag yet")
		}
		for _, m := range agents[0].gossip.Members() {
			if got := strconv.FormatUint(m.Version, 10); m.Name == "node1" && got != want {
				return fmt.Errorf("node0 sees node1's tag %s, want %s", got, want)
			}
		}
		return nil
	})
	// Serf has sent the event for that tag (it lists a tag only after
	// queueing its event), but node0 may not have applied it yet. Events
	// reach the catalog in order through one queue, so once a later one
	// is applied (a newcomer's join), every earlier one is.
	barrier := startAgent(t, testConfig(t, "barrier"))
	if _, err := barrier.Join([]string{agents[0].SerfAddr()}); err != nil {
		t.Fatalf("join: %v", err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if n, ok := agents[0].Store().Snapshot().Node("barrier"); !ok || n.Status != catalog.MemberAlive {
			return fmt.Errorf("node0 has not applied the newcomer's join")
		}
		return nil
	})
	// As if node1's join event had been lost and a stale failure kept.
	agents[0].Store().SetMember("node1", agents[1].gossip.LocalMember().Addr.String(), catalog.MemberFailed)
	if n := dnsCount(t, agents[0], "web"); n != 0 {
		t.Fatalf("after the forged failure node0 still answers %d instances", n)
	}
	waitDNS(t, agents[:1], "web", 1, 10*time.Second)
	if v := counterValue(t, agents[0], "member_repair"); v == 0 {
		t.Fatal("no member repair counted")
	}
}

// TestCoordinatesInCluster: real agents learn each other's coordinates
// from their probes, so RTT (DNS distances, ?near=) works.
func TestCoordinatesInCluster(t *testing.T) {
	agents := startCluster(t, 3, nil)
	start := time.Now()
	defer func() { t.Logf("coordinates everywhere %v after the cluster formed", time.Since(start)) }()
	testutil.Eventually(t, 30*time.Second, func() error {
		for _, a := range agents {
			for _, b := range agents {
				if _, ok := a.gossip.RTT(b.NodeName()); !ok {
					return fmt.Errorf("%s has no RTT to %s", a.NodeName(), b.NodeName())
				}
			}
		}
		return nil
	})
}
