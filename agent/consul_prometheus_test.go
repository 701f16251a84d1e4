package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/consul"
	"github.com/prometheus/prometheus/discovery/targetgroup"

	"github.com/chorusdns/chorus/test/testutil"
)

// promSD runs Prometheus's own Consul service discovery against an agent
// and keeps the latest target group of every source.
type promSD struct {
	mu     sync.Mutex
	groups map[string]*targetgroup.Group
}

func runPrometheusSD(t *testing.T, a *Agent, mutate func(*consul.SDConfig)) *promSD {
	t.Helper()
	conf := consul.DefaultSDConfig
	conf.Server = a.HTTPAddr()
	conf.RefreshInterval = model.Duration(50 * time.Millisecond)
	if mutate != nil {
		mutate(&conf)
	}
	reg := prometheus.NewRegistry()
	refresh := discovery.NewRefreshMetrics(reg)
	if err := refresh.Register(); err != nil {
		t.Fatal(err)
	}
	metrics := conf.NewDiscovererMetrics(reg, refresh)
	if err := metrics.Register(); err != nil {
		t.Fatal(err)
	}
	d, err := consul.NewDiscovery(&conf, testutil.Logger(t).With("component", "prometheus_sd"), metrics)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan []*targetgroup.Group)
	sd := &promSD{groups: map[string]*targetgroup.Group{}}
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx, ch) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case tgs := <-ch:
				sd.mu.Lock()
				for _, g := range tgs {
					sd.groups[g.Source] = g
				}
				sd.mu.Unlock()
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		metrics.Unregister()
		refresh.Unregister()
	})
	return sd
}

// targets returns the group of service name's targets, keyed by address.
func (sd *promSD) targets(name string) (model.LabelSet, map[string]model.LabelSet) {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	g := sd.groups[name]
	if g == nil {
		return nil, nil
	}
	out := map[string]model.LabelSet{}
	for _, ls := range g.Targets {
		out[string(ls[model.AddressLabel])] = ls
	}
	return g.Labels, out
}

func addrs(m map[string]model.LabelSet) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestPrometheusConsulSD(t *testing.T) {
	cfg := testConfig(t, "alpha")
	cfg.NodeMeta = map[string]string{"rack": "r1"}
	a := startAgent(t, cfg)
	c := consulClient(t, a).Agent()
	mustNil(t, "register", c.ServiceRegister(&api.AgentServiceRegistration{
		ID: "web1", Name: "web", Address: "10.0.0.5", Port: 8080, Tags: []string{"prod", "v1"},
		Meta:  map[string]string{"metrics_path": "/m", "team-name": "edge"},
		Check: &api.AgentServiceCheck{CheckID: "web1-ttl", TTL: "1m", Status: api.HealthPassing},
	}))
	mustNil(t, "register", c.ServiceRegister(&api.AgentServiceRegistration{ID: "web2", Name: "web", Port: 8081, Tags: []string{"canary"}}))
	mustNil(t, "register", c.ServiceRegister(&api.AgentServiceRegistration{ID: "db", Name: "db", Port: 5432, Tags: []string{"primary"}}))

	sd := runPrometheusSD(t, a, nil)
	testutil.Eventually(t, 10*time.Second, func() error {
		labels, ts := sd.targets("web")
		if got := addrs(ts); fmt.Sprint(got) != "[10.0.0.5:8080 127.0.0.1:8081]" {
			return fmt.Errorf("web targets %v", got)
		}
		if labels["__meta_consul_service"] != "web" || labels["__meta_consul_dc"] != "dc1" {
			return fmt.Errorf("group labels %v", labels)
		}
		want := model.LabelSet{
			"__meta_consul_tags":                          ",prod,v1,",
			"__meta_consul_service_metadata_metrics_path": "/m",
			"__meta_consul_service_metadata_team_name":    "edge",
			"__meta_consul_metadata_rack":                 "r1",
			"__meta_consul_node":                          "alpha",
			"__meta_consul_address":                       "127.0.0.1",
			"__meta_consul_service_address":               "10.0.0.5",
			"__meta_consul_service_port":                  "8080",
			"__meta_consul_service_id":                    "web1",
			"__meta_consul_health":                        "passing",
			"__meta_consul_tagged_address_lan":            "127.0.0.1",
		}
		got := ts["10.0.0.5:8080"]
		for k, v := range want {
			if got[k] != v {
				return fmt.Errorf("label %s = %q, want %q (all: %v)", k, got[k], v, got)
			}
		}
		if ts["127.0.0.1:8081"]["__meta_consul_service_address"] != "" || ts["127.0.0.1:8081"]["__meta_consul_tags"] != ",canary," {
			return fmt.Errorf("web2 labels %v", ts["127.0.0.1:8081"])
		}
		if _, db := sd.targets("db"); len(db) != 1 {
			return fmt.Errorf("db targets %v", addrs(db))
		}
		return nil
	})

	// Changes reach Prometheus through its blocking health queries: a new
	// instance, a failing check, a removed service.
	mustNil(t, "register", c.ServiceRegister(&api.AgentServiceRegistration{ID: "web3", Name: "web", Address: "10.0.0.7", Port: 9000}))
	mustNil(t, "fail", c.FailTTL("web1-ttl", "down"))
	mustNil(t, "deregister", c.ServiceDeregister("db"))
	testutil.Eventually(t, 10*time.Second, func() error {
		_, ts := sd.targets("web")
		if len(ts) != 3 || ts["10.0.0.5:8080"]["__meta_consul_health"] != "critical" {
			return fmt.Errorf("web targets %v, web1 health %q", addrs(ts), ts["10.0.0.5:8080"]["__meta_consul_health"])
		}
		if _, db := sd.targets("db"); len(db) != 0 {
			return fmt.Errorf("db targets remain: %v", addrs(db))
		}
		return nil
	})

	// Prometheus's server-side filters: a catalog filter picks the
	// services to watch, a health filter the instances.
	filtered := runPrometheusSD(t, a, func(c *consul.SDConfig) {
		c.Filter = `ServiceTags contains "prod" or ServiceName == "web"`
		c.HealthFilter = `Service.Meta.metrics_path == "/m" and Service.Tags contains v1`
		c.NodeMeta = map[string]string{"rack": "r1"}
		c.AllowStale = true
	})
	testutil.Eventually(t, 10*time.Second, func() error {
		_, ts := filtered.targets("web")
		if fmt.Sprint(addrs(ts)) != "[10.0.0.5:8080]" {
			return fmt.Errorf("filtered web targets %v", addrs(ts))
		}
		return nil
	})
	// Only web was watched: the catalog filter left nothing else.
	filtered.mu.Lock()
	for src := range filtered.groups {
		if src != "web" && src != "" {
			t.Errorf("unexpected source %q", src)
		}
	}
	filtered.mu.Unlock()

	// A fixed service list with tags uses the health endpoint's tag=
	// parameters.
	fixed := runPrometheusSD(t, a, func(c *consul.SDConfig) {
		c.Services = []string{"web"}
		c.ServiceTags = []string{"canary"}
		c.Datacenter = "dc1"
	})
	testutil.Eventually(t, 10*time.Second, func() error {
		_, ts := fixed.targets("web")
		if fmt.Sprint(addrs(ts)) != "[127.0.0.1:8081]" {
			return fmt.Errorf("tagged web targets %v", addrs(ts))
		}
		return nil
	})
	if _, ts := fixed.targets("web"); !strings.Contains(string(ts["127.0.0.1:8081"]["__meta_consul_tags"]), "canary") {
		t.Fatalf("tags label %v", ts)
	}
}
