package agent

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/agent/httpapi"
	"github.com/chorusdns/chorus/test/testutil"
)

func newKey(t testing.TB) string {
	k := make([]byte, 32)
	rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

func TestWrongKeyKeptOut(t *testing.T) {
	key := newKey(t)
	agents := startCluster(t, 2, func(i int, c *Config) { c.Encrypt = key })
	mustDo(t, agents[0], "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80}`)
	waitDNS(t, agents, "web", 1, 5*time.Second)

	for name, k := range map[string]string{"nokey": "", "wrongkey": newKey(t)} {
		cfg := testConfig(t, name)
		cfg.Encrypt = k
		intruder := startAgent(t, cfg)
		if _, err := intruder.Join([]string{agents[0].SerfAddr()}); err == nil {
			t.Errorf("%s joined an encrypted cluster", name)
		}
		// It never sees the cluster's services, and the cluster never sees it.
		mustDo(t, intruder, "PUT", "/v1/agent/service/register", `{"Name":"evil","Port":1}`)
		// That nothing crosses can only be shown over a window: 500 ms
		// holds several gossip rounds of the test profile, in which a
		// wrongly accepted join would bring the records across.
		testutil.Consistently(t, 500*time.Millisecond, func() error {
			if dnsCount(t, intruder, "web") != 0 {
				return fmt.Errorf("%s sees the cluster's services", name)
			}
			for _, a := range agents {
				if _, ok := a.Store().Snapshot().Node(name); ok {
					return fmt.Errorf("%s is in %s's catalog", name, a.NodeName())
				}
				if dnsCount(t, a, "evil") != 0 {
					return fmt.Errorf("%s answers the intruder's service", a.NodeName())
				}
			}
			return nil
		})
	}
}

func TestKeyRotationWhileAnswering(t *testing.T) {
	key1, key2 := newKey(t), newKey(t)
	agents := startCluster(t, 5, func(i int, c *Config) { c.Encrypt = key1 })
	for _, a := range agents {
		mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80}`)
	}
	waitDNS(t, agents, "web", 5, 10*time.Second)

	// Keep resolving on every agent during the whole rotation.
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	t.Cleanup(halt)
	errs := make(chan error, 1)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				close(errs)
				return
			case <-tick.C:
			}
			for _, a := range agents {
				m := new(dns.Msg)
				m.SetQuestion("web.service.chorus.", dns.TypeSRV)
				r, err := dns.Exchange(m, a.DNSAddr())
				if n := 0; err != nil || len(r.Answer) != 5 {
					if r != nil {
						n = len(r.Answer)
					}
					select {
					case errs <- fmt.Errorf("%s answered %d instances during rotation", a.NodeName(), n):
					default:
					}
				}
			}
		}
	}()
	for _, step := range []struct{ op, key string }{{"install", key2}, {"use", key2}, {"remove", key1}} {
		if _, err := agents[2].gossip.KeyringOp(step.op, step.key); err != nil {
			t.Fatalf("%s: %v", step.op, err)
		}
	}
	// A list is a Serf query with a deadline: under load a node's reply
	// can miss it ("4/5 nodes reported success"), so the reads are polled
	// until every node has answered.
	testutil.Eventually(t, 10*time.Second, func() error {
		resp, err := agents[0].gossip.KeyringOp("list", "")
		if err != nil || len(resp.Keys) != 1 || resp.Keys[key2] != 5 || resp.PrimaryKeys[key2] != 5 {
			return fmt.Errorf("after rotation: %+v %v", resp, err)
		}
		return nil
	})
	// The same over HTTP, in Consul's shape.
	testutil.Eventually(t, 10*time.Second, func() error {
		var list []httpapi.KeyringResponse
		code, body := do(t, agents[3], "GET", "/v1/operator/keyring", nil)
		json.Unmarshal(body, &list)
		if code != 200 || len(list) != 1 || list[0].Keys[key2] != 5 || list[0].NumNodes != 5 {
			return fmt.Errorf("GET /v1/operator/keyring: %d %s", code, body)
		}
		return nil
	})
	if code, _ := do(t, agents[3], "POST", "/v1/operator/keyring", `{"Key":"not-a-key"}`); code != 400 {
		t.Fatalf("installing a bad key: %d", code)
	}
	// Changes still replicate under the new key, and a newcomer with only
	// the old key is kept out.
	mustDo(t, agents[4], "PUT", "/v1/agent/service/register", `{"Name":"after","Port":1}`)
	waitDNS(t, agents, "after", 1, 5*time.Second)
	halt()
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	old := testConfig(t, "stale")
	old.Encrypt = key1
	s := startAgent(t, old)
	if _, err := s.Join([]string{agents[0].SerfAddr()}); err == nil {
		t.Fatal("an agent with the removed key joined")
	}

	// The rotated keyring persists: a restarted agent keeps key2.
	cfg := *agents[1].Config()
	agents[1].Kill()
	cfg.SerfPort = 0
	cfg.Encrypt = key1 // the persisted keyring wins over the flag
	b, err := New(cfg, testLogger(t), prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Kill)
	if _, err := b.Join([]string{agents[0].SerfAddr()}); err != nil {
		t.Fatalf("restarted agent with the persisted keyring cannot join: %v", err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if dnsCount(t, b, "after") != 1 {
			return fmt.Errorf("restarted agent has not synced")
		}
		return nil
	})
}

func TestKeyringWithoutEncryption(t *testing.T) {
	a := startAgent(t, testConfig(t, "plain"))
	if _, err := a.gossip.KeyringOp("list", ""); err == nil {
		t.Fatal("keyring list without encryption succeeded")
	}
}
