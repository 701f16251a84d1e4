// Package configs holds the deployment examples (Docker Compose,
// Kubernetes, systemd, Prometheus, Grafana); its tests check them against
// real agents: every metric the Grafana dashboard queries is one a live
// agent's /metrics exposes, Prometheus's own Consul discovery finds a
// service with prometheus.yml's settings, the Kubernetes ConfigMap's agent
// configuration starts an agent, and the compose file keeps its promises.
package configs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/consul"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"go.yaml.in/yaml/v3"

	"github.com/chorusdns/chorus/test/testutil"
)

// promqlKeywords are PromQL words that are no metric names: aggregation
// operators (which may be followed by by/without before their
// parenthesis), binary operators and modifiers.
var promqlKeywords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
	"quantile": true, "limitk": true, "limit_ratio": true,
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
	"group_right": true, "inf": true, "nan": true, "start": true, "end": true,
}

// labelListKeywords take a parenthesised list of label names.
var labelListKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

var metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// metricNames returns the metric names a PromQL expression selects, in
// order of first appearance: identifiers outside label matchers ({...}),
// ranges ([...]) and strings that are neither functions (followed by
// '('), keywords, label lists of by/without/on/ignoring, nor Grafana
// variables ($x, ${x}). It fails on unbalanced brackets or an
// unterminated string.
func metricNames(expr string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	var stack []byte
	closing := map[byte]byte{'(': ')', '{': '}', '[': ']'}
	labelList := -1 // depth of a by(...)-style list, -1 when outside one
	expectList := false
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
	}
	inside := func(open byte) bool {
		for _, c := range stack {
			if c == open {
				return true
			}
		}
		return false
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for ; j < len(expr) && expr[j] != c; j++ {
				if expr[j] == '\\' && c != '`' {
					j++
				}
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			i = j + 1
		case c == '(' || c == '{' || c == '[':
			if c == '(' && expectList {
				labelList = len(stack)
			}
			expectList = false
			stack = append(stack, c)
			i++
		case c == ')' || c == '}' || c == ']':
			if len(stack) == 0 || closing[stack[len(stack)-1]] != c {
				return nil, fmt.Errorf("unbalanced %q at %d", c, i)
			}
			stack = stack[:len(stack)-1]
			if len(stack) == labelList {
				labelList = -1
			}
			i++
		case c == '$':
			// A Grafana variable: $name or ${name}.
			i++
			if i < len(expr) && expr[i] == '{' {
				end := strings.IndexByte(expr[i:], '}')
				if end < 0 {
					return nil, fmt.Errorf("unterminated ${ at %d", i)
				}
				i += end + 1
				continue
			}
			for i < len(expr) && isIdent(expr[i], false) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			// Numbers and durations (5m, 1e3, 0x1f).
			for i < len(expr) && (isIdent(expr[i], false) || expr[i] == '.') {
				i++
			}
		case isIdent(c, true):
			j := i
			for j < len(expr) && isIdent(expr[j], false) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && (expr[k] == ' ' || expr[k] == '\t' || expr[k] == '\n') {
				k++
			}
			switch {
			case labelListKeywords[strings.ToLower(word)]:
				expectList = true
			case promqlKeywords[strings.ToLower(word)]:
			case k < len(expr) && expr[k] == '(':
				// A function.
			case inside('{') || inside('[') || labelList >= 0:
				// A label name or a range's duration.
			default:
				if !seen[word] {
					seen[word] = true
					names = append(names, word)
				}
			}
			i = j
		default:
			i++
		}
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("unclosed %q", stack[len(stack)-1])
	}
	return names, nil
}

func TestMetricNames(t *testing.T) {
	cases := []struct{ expr, want string }{
		{`up`, "up"},
		{`sum by (rcode) (rate(chorus_dns_queries_total{instance=~"$instance"}[$__rate_interval]))`, "chorus_dns_queries_total"},
		{`histogram_quantile(0.99, sum by (le, method) (rate(a_bucket{x="}"}[5m])))`, "a_bucket"},
		{`sum(rate(a_sum[5m])) / sum without(job) (rate(a_count[5m] offset 1h))`, "a_sum,a_count"},
		{`x > bool 2 and on(instance) group_left(zone) y unless z`, "x,y,z"},
		{`min(chorus_members{status="alive",instance=~"${instance:regex}"})`, "chorus_members"},
		{`label_values(chorus_catalog_index, instance)`, "chorus_catalog_index,instance"},
		{`1e3 * 0x1f + .5`, ""},
	}
	for _, tc := range cases {
		got, err := metricNames(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("%s: %v, want %s", tc.expr, got, tc.want)
		}
	}
	for _, bad := range []string{`sum(x`, `x{a="b}`, `x]`, `rate(x[5m)]`} {
		if _, err := metricNames(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func FuzzMetricNames(f *testing.F) {
	for _, s := range []string{`sum by (a) (rate(x{b="c"}[5m]))`, `${v}`, `a{`, `'\'`, "`x`", `x offset -5m`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		names, err := metricNames(expr)
		if err != nil {
			return
		}
		for _, n := range names {
			if !metricNameRE.MatchString(n) {
				t.Fatalf("%q: name %q is no metric name", expr, n)
			}
			if !strings.Contains(expr, n) {
				t.Fatalf("%q: name %q is not in the expression", expr, n)
			}
		}
	})
}

// dashboard is the part of a Grafana dashboard that holds queries.
type dashboard struct {
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a collapsed row's panels
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// dashboardExprs returns every PromQL expression of the dashboard, keyed
// by where it is.
func dashboardExprs(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	exprs := map[string]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for i, tg := range p.Targets {
				exprs[fmt.Sprintf("panel %q target %d", p.Title, i)] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				t.Fatalf("variable %s: query %s", v.Name, v.Query)
			}
		}
		// label_values(metric, label): the metric is the selector.
		if m := regexp.MustCompile(`^label_values\(\s*(.+?)\s*,\s*[a-zA-Z_]+\s*\)$`).FindStringSubmatch(q.Query); m != nil {
			q.Query = m[1]
		}
		exprs["variable "+v.Name] = q.Query
	}
	return exprs
}

// scrapeNames returns the metric names of a /metrics page.
func scrapeNames(url string) (map[string]bool, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names, sc.Err()
}

// TestDashboardMetricsExist checks every metric name in every query of
// the Grafana dashboard against the /metrics page of two real agents
// (the built binary) that have seen the traffic each panel shows: DNS
// queries, a failing recursor, HTTP requests, a registration replicated
// to a peer, membership events and a refused gossip-port datagram.
func TestDashboardMetricsExist(t *testing.T) {
	exprs := dashboardExprs(t, filepath.Join("grafana", "chorus-dashboard.json"))
	if len(exprs) < 10 {
		t.Fatalf("only %d queries in the dashboard", len(exprs))
	}
	want := map[string][]string{} // metric name → where it is used
	for where, e := range exprs {
		names, err := metricNames(e)
		if err != nil {
			t.Fatalf("%s: %q: %v", where, e, err)
		}
		if len(names) == 0 {
			t.Fatalf("%s: %q selects no metric", where, e)
		}
		for _, n := range names {
			want[n] = append(want[n], where)
		}
	}

	// A recursor that refuses: a closed UDP and TCP port.
	deadRecursor := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	a := testutil.StartAgent(t, testutil.AgentOptions{Node: "dash-a", Args: []string{"--recursor", deadRecursor}})
	b := testutil.StartAgent(t, testutil.AgentOptions{Node: "dash-b",
		Args: []string{"--join", "127.0.0.1:" + strconv.Itoa(a.SerfPort)}})
	put(t, b.URL("/v1/agent/service/register"), `{"Name":"web","Port":8080}`)
	testutil.Eventually(t, 20*time.Second, func() error {
		r, err := ask(a.DNSAddr(), "web.service.chorus.", dns.TypeSRV)
		if err != nil {
			return err
		}
		if len(r.Answer) != 1 {
			return fmt.Errorf("web SRV through dash-a: %v", r.Answer)
		}
		return nil
	})
	if r, err := ask(a.DNSAddr(), "example.org.", dns.TypeA); err != nil {
		t.Fatal(err)
	} else if r.Rcode != dns.RcodeServerFailure {
		t.Logf("example.org through a dead recursor: %s", dns.RcodeToString[r.Rcode])
	}
	// A datagram in Chorus's framing (0xC5) that is no valid digest.
	conn, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(a.SerfPort))
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte{0xC5, 2, 0})
	conn.Close()

	testutil.Eventually(t, 20*time.Second, func() error {
		got, err := scrapeNames(a.URL("/metrics"))
		if err != nil {
			return err
		}
		var missing []string
		for n, where := range want {
			if !got[n] {
				missing = append(missing, fmt.Sprintf("%s (%s)", n, strings.Join(where, "; ")))
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			return fmt.Errorf("the dashboard queries metrics /metrics does not expose:\n  %s", strings.Join(missing, "\n  "))
		}
		return nil
	})
	t.Logf("%d queries, %d distinct metrics, all exposed", len(exprs), len(want))
}

func put(t *testing.T, url, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		out, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT %s: %s %s", url, resp.Status, out)
	}
}

func ask(addr, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Timeout: 3 * time.Second}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// prometheusFile is the part of prometheus.yml the tests read.
type prometheusFile struct {
	Global        map[string]any `yaml:"global"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
		ConsulSDConfigs []consul.SDConfig `yaml:"consul_sd_configs"`
		RelabelConfigs  []struct {
			SourceLabels []string `yaml:"source_labels"`
			Regex        string   `yaml:"regex"`
			Action       string   `yaml:"action"`
			TargetLabel  string   `yaml:"target_label"`
		} `yaml:"relabel_configs"`
	} `yaml:"scrape_configs"`
}

// TestPrometheusConfig reads prometheus.yml strictly, checks that it
// scrapes the three compose agents, and runs Prometheus's own Consul
// discovery with the file's consul_sd_configs against a real agent (its
// server swapped for the agent's address): it finds the demo service,
// and the labels the relabelling reads are there.
func TestPrometheusConfig(t *testing.T) {
	f, err := os.Open("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var pf prometheusFile
	if err := dec.Decode(&pf); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	var agents []string
	var sd *consul.SDConfig
	var keepHealth bool
	for _, sc := range pf.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			agents = append(agents, st.Targets...)
		}
		for i := range sc.ConsulSDConfigs {
			sd = &sc.ConsulSDConfigs[i]
			for _, rc := range sc.RelabelConfigs {
				if rc.Action == "keep" && strings.Join(rc.SourceLabels, ",") == "__meta_consul_health" && rc.Regex == "passing" {
					keepHealth = true
				}
			}
		}
	}
	if strings.Join(agents, ",") != "agent1:8500,agent2:8500,agent3:8500" {
		t.Errorf("scraped agents %v, want the compose file's three", agents)
	}
	if sd == nil || strings.Join(sd.Services, ",") != "demo" {
		t.Fatalf("no consul_sd_configs for the demo service: %+v", sd)
	}
	if !keepHealth {
		t.Errorf("the demo job does not keep only passing instances")
	}

	a := testutil.StartAgent(t, testutil.AgentOptions{Node: "prom"})
	put(t, a.URL("/v1/agent/service/register"), `{"Name":"demo","ID":"demo-1","Port":8080,"Tags":["v1"]}`)
	put(t, a.URL("/v1/agent/service/register"), `{"Name":"other","Port":9000}`)
	conf := *sd
	conf.Server = "127.0.0.1:" + strconv.Itoa(a.HTTPPort)
	conf.RefreshInterval = model.Duration(100 * time.Millisecond)
	groups := runDiscovery(t, &conf)
	testutil.Eventually(t, 20*time.Second, func() error {
		var found []model.LabelSet
		for _, g := range groups.get() {
			for _, tg := range g.Targets {
				found = append(found, tg.Merge(g.Labels))
			}
		}
		if len(found) != 1 {
			return fmt.Errorf("targets %v, want only the demo instance", found)
		}
		l := found[0]
		if l["__meta_consul_service"] != "demo" || l["__meta_consul_service_id"] != "demo-1" ||
			l["__meta_consul_node"] != "prom" || l["__meta_consul_health"] != "passing" ||
			!strings.HasSuffix(string(l[model.AddressLabel]), ":8080") {
			return fmt.Errorf("target labels %v", l)
		}
		return nil
	})
}

type sdGroups struct {
	mu     sync.Mutex
	groups map[string]*targetgroup.Group
}

func (s *sdGroups) get() []*targetgroup.Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*targetgroup.Group, 0, len(s.groups))
	for _, g := range s.groups {
		out = append(out, g)
	}
	return out
}

// runDiscovery runs Prometheus's Consul discovery with conf until the
// test ends and keeps the latest group of each source.
func runDiscovery(t *testing.T, conf *consul.SDConfig) *sdGroups {
	t.Helper()
	reg := prometheus.NewRegistry()
	refresh := discovery.NewRefreshMetrics(reg)
	if err := refresh.Register(); err != nil {
		t.Fatal(err)
	}
	metrics := conf.NewDiscovererMetrics(reg, refresh)
	if err := metrics.Register(); err != nil {
		t.Fatal(err)
	}
	d, err := consul.NewDiscovery(conf, testutil.Logger(t), metrics)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan []*targetgroup.Group)
	s := &sdGroups{groups: map[string]*targetgroup.Group{}}
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx, ch) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case tgs := <-ch:
				s.mu.Lock()
				for _, g := range tgs {
					s.groups[g.Source] = g
				}
				s.mu.Unlock()
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		metrics.Unregister()
		refresh.Unregister()
	})
	return s
}

// k8sObject is the part of a Kubernetes object the tests read.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		ClusterIP                string `yaml:"clusterIP"`
		PublishNotReadyAddresses bool   `yaml:"publishNotReadyAddresses"`
		Template                 struct {
			Spec struct {
				HostNetwork bool   `yaml:"hostNetwork"`
				DNSPolicy   string `yaml:"dnsPolicy"`
				Containers  []struct {
					Args []string `yaml:"args"`
					Env  []struct {
						Name      string `yaml:"name"`
						ValueFrom struct {
							FieldRef struct {
								FieldPath string `yaml:"fieldPath"`
							} `yaml:"fieldRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
					ReadinessProbe *struct {
						HTTPGet struct {
							Path string `yaml:"path"`
							Port int    `yaml:"port"`
						} `yaml:"httpGet"`
					} `yaml:"readinessProbe"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// TestKubernetesManifests checks the DaemonSet's promises (host network,
// the node's address for DNS and HTTP, a readiness probe on the API) and
// starts a real agent with the ConfigMap's configuration and the
// DaemonSet's arguments and environment (addresses and ports moved to
// 127.0.0.1 and free ports by flags, which win over the file); its
// readiness probe path must answer 200 there.
func TestKubernetesManifests(t *testing.T) {
	f, err := os.Open(filepath.Join("kubernetes", "chorus.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	objs := map[string]k8sObject{}
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		objs[o.Kind] = o
	}
	cm, svc, ds := objs["ConfigMap"], objs["Service"], objs["DaemonSet"]
	if cm.Data["agent.yaml"] == "" || ds.Metadata.Name == "" || svc.Metadata.Name == "" {
		t.Fatalf("want a ConfigMap with agent.yaml, a Service and a DaemonSet: %v", objs)
	}
	if svc.Spec.ClusterIP != "None" || !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("the gossip Service must be headless and list agents before they are ready")
	}
	if !strings.Contains(cm.Data["agent.yaml"], svc.Metadata.Name+".") {
		t.Errorf("the agent config does not join through the %s Service", svc.Metadata.Name)
	}
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork || spec.DNSPolicy != "ClusterFirstWithHostNet" || len(spec.Containers) != 1 {
		t.Fatalf("DaemonSet: hostNetwork %v, dnsPolicy %q, %d containers", spec.HostNetwork, spec.DNSPolicy, len(spec.Containers))
	}
	c := spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.ValueFrom.FieldRef.FieldPath
	}
	if env["CHORUS_CLIENT"] != "status.hostIP" || env["CHORUS_ADVERTISE"] != "status.hostIP" || env["CHORUS_NODE"] != "spec.nodeName" {
		t.Errorf("DaemonSet environment %v: the node's name and address must be the agent's", env)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Port != 8500 {
		t.Fatalf("no readiness probe on the HTTP port: %+v", c.ReadinessProbe)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "agent.yaml"), []byte(cm.Data["agent.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string(nil), c.Args[1:]...) // without "agent"
	for i := range args {
		switch args[i] {
		case "/etc/chorus/agent.yaml":
			args[i] = filepath.Join(dir, "agent.yaml")
		case "/var/lib/chorus":
			args[i] = filepath.Join(dir, "data")
		}
	}
	// The manifest's advice: ACL tokens in a second config file. The
	// probe, which sends no token, must pass with anonymous requests
	// denied.
	acl := filepath.Join(dir, "acl.yaml")
	if err := os.WriteFile(acl, []byte("acl:\n  enabled: true\n  default_policy: deny\n  tokens:\n    - {secret: k8s-read-token-0123456789, policy: read}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args = append(args, "--config-file", acl)
	// testutil.StartAgent adds --data-dir, --node and the addresses; the
	// DaemonSet's own --data-dir comes later and wins.
	a := testutil.StartAgent(t, testutil.AgentOptions{Node: "k8s-node-1.example", Args: args, Token: "k8s-read-token-0123456789"})
	resp, err := http.Get(a.URL(c.ReadinessProbe.HTTPGet.Path))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readiness probe %s under acl.default_policy deny: %s", c.ReadinessProbe.HTTPGet.Path, resp.Status)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Errorf("the DaemonSet's --data-dir was not used: %v", err)
	}
}

// composeFile is the part of docker-compose.yml the tests read.
type composeFile struct {
	Services map[string]struct {
		Image string `yaml:"image"`
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Profiles    []string `yaml:"profiles"`
		Ports       []string `yaml:"ports"`
		Volumes     []string `yaml:"volumes"`
		NetworkMode string   `yaml:"network_mode"`
	} `yaml:"services"`
}

// TestComposeFile checks what test/e2e's compose test cannot where Docker
// is missing: images built from this repository come FROM scratch, every
// service that needs a registry image is in a profile, published ports are
// bound to 127.0.0.1, and every mounted file exists.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"agent1", "agent2", "agent3", "demo"} {
		if _, ok := cf.Services[name]; !ok {
			t.Errorf("no service %s", name)
		}
	}
	for name, s := range cf.Services {
		if s.Build == nil {
			if len(s.Profiles) == 0 {
				t.Errorf("%s: image %s comes from a registry but is in no profile", name, s.Image)
			}
		} else {
			df, err := os.ReadFile(filepath.Join(s.Build.Context, s.Build.Dockerfile))
			if err != nil {
				t.Errorf("%s: %v", name, err)
			} else if len(regexp.MustCompile(`(?m)^FROM `).FindAll(df, -1)) != 1 || !regexp.MustCompile(`(?m)^FROM scratch$`).Match(df) {
				t.Errorf("%s: %s must be one stage FROM scratch (no registry)", name, s.Build.Dockerfile)
			}
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s: port %q is not bound to 127.0.0.1", name, p)
			}
		}
		for _, v := range s.Volumes {
			if src, _, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(src, ".") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s: mounts %s: %v", name, src, err)
				}
			}
		}
	}
	if cf.Services["demo"].NetworkMode != "service:agent1" {
		t.Errorf("the demo must share agent1's network (its check probes 127.0.0.1)")
	}
}

// TestSystemdUnit checks that the unit's ExecStart runs `chorus agent`
// with flags the agent has, and that it keeps only the capability DNS on
// port 53 needs.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("chorus.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	m := regexp.MustCompile(`(?m)^ExecStart=(\S+) agent (.*)$`).FindStringSubmatch(unit)
	if m == nil {
		t.Fatal("no ExecStart=... agent line")
	}
	out, err := exec.Command(testutil.Binary(t), "agent", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("chorus agent --help: %v\n%s", err, out)
	}
	for _, arg := range strings.Fields(m[2]) {
		if strings.HasPrefix(arg, "--") && !strings.Contains(string(out), arg+" ") {
			t.Errorf("ExecStart flag %s is not a flag of chorus agent", arg)
		}
	}
	for _, want := range []string{"AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "ExecReload=/bin/kill -HUP $MAINPID", "User=chorus"} {
		if !strings.Contains(unit, want+"\n") {
			t.Errorf("the unit lacks %s", want)
		}
	}
}
