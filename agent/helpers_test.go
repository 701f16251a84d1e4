package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/test/testutil"
)

// testConfig is a config for an in-process agent on 127.0.0.1 with fast
// gossip timings and free ports.
func testConfig(t testing.TB, name string) Config {
	cfg := DefaultConfig()
	cfg.NodeName = name
	cfg.DataDir = t.TempDir()
	cfg.Bind = "127.0.0.1"
	cfg.Client = "127.0.0.1"
	cfg.HTTPPort, cfg.DNSPort, cfg.SerfPort = 0, 0, 0
	cfg.GossipProfile = "local"
	// Tolerant of the race detector on a 2-core machine: a false failure
	// here would be a test artefact, not what the profile is for.
	cfg.Gossip.ProbeInterval = 500 * time.Millisecond
	cfg.Gossip.ProbeTimeout = 400 * time.Millisecond
	cfg.Gossip.SuspicionMult = 3
	cfg.LogLevel = "debug"
	return cfg
}

// testLogger is the logger of agents started by t: its lines go to t's
// output (shown when t fails, or with -v).
func testLogger(t testing.TB) *slog.Logger { return testutil.Logger(t) }

// startAgent starts an in-process agent; it is killed at cleanup.
func startAgent(t testing.TB, cfg Config) *Agent {
	t.Helper()
	a, err := New(cfg, testLogger(t).With("node", cfg.NodeName), prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatalf("new agent %s: %v", cfg.NodeName, err)
	}
	if err := a.Start(); err != nil {
		t.Fatalf("start agent %s: %v", cfg.NodeName, err)
	}
	t.Cleanup(a.Kill)
	return a
}

// startCluster starts n agents named prefix0..n-1, joined to the first.
func startCluster(t testing.TB, n int, mutate func(i int, c *Config)) []*Agent {
	t.Helper()
	agents := make([]*Agent, n)
	for i := range agents {
		cfg := testConfig(t, fmt.Sprintf("node%d", i))
		if mutate != nil {
			mutate(i, &cfg)
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

// waitParked waits until n blocking queries are parked on a, as its
// /metrics counts them (chorus_http_blocking_queries): a change made
// afterwards reaches them.
func waitParked(t testing.TB, a *Agent, n int) {
	t.Helper()
	testutil.WaitBlockingQueries(t, 10*time.Second, "http://"+a.HTTPAddr(), n)
}

// waitMembers waits until every agent's catalog has want alive nodes.
func waitMembers(t testing.TB, agents []*Agent, want int) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, func() error {
		for _, a := range agents {
			alive := 0
			for _, n := range a.Store().Snapshot().Nodes() {
				if n.Status == 1 {
					alive++
				}
			}
			if alive != want {
				return fmt.Errorf("%s sees %d alive nodes, want %d", a.NodeName(), alive, want)
			}
		}
		return nil
	})
}

// do sends an HTTP request to an agent and returns status and body.
func do(t testing.TB, a *Agent, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, "http://"+a.HTTPAddr()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// mustDo is do that requires a 200.
func mustDo(t testing.TB, a *Agent, method, path string, body any) []byte {
	t.Helper()
	code, out := do(t, a, method, path, body)
	if code != 200 {
		t.Fatalf("%s %s: %d %s", method, path, code, out)
	}
	return out
}

// query asks an agent's DNS server over net ("udp" or "tcp").
func query(t testing.TB, a *Agent, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, a.DNSAddr())
	if err != nil {
		t.Fatalf("dns %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

// answerAddrs returns the sorted A/AAAA addresses of a reply.
func answerAddrs(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		}
	}
	sort.Strings(out)
	return out
}

// srvTargets returns "target:port" of each SRV answer, sorted.
func srvTargets(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if v, ok := rr.(*dns.SRV); ok {
			out = append(out, fmt.Sprintf("%s:%d", v.Target, v.Port))
		}
	}
	sort.Strings(out)
	return out
}
