package filter

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

func mustNew(t *testing.T, expr string, typ reflect.Type) *Filter {
	t.Helper()
	f, err := New(expr, typ)
	if err != nil {
		t.Fatalf("New(%q): %v", expr, err)
	}
	return f
}

func TestMatch(t *testing.T) {
	e := sampleEntry()
	cases := []struct {
		expr string
		want bool
	}{
		{`Service.Service == web`, true},
		{`Service.Service == "web"`, true},
		{`Service.Service == ` + "`web`", true},
		{`Service.Service != web`, false},
		{`Service.ID == "web-1"`, true},
		{`Service.ID == web-1`, true},
		{`Service.Port == 8080`, true},
		{`Service.Port != 8081`, true},
		{`Service.Weights.Passing == 3`, true},
		{`Service.EnableTagOverride == true`, true},
		{`Service.Tags contains v1`, true},
		{`Service.Tags contains v2`, false},
		{`Service.Tags not contains v2`, true},
		{`v1 in Service.Tags`, true},
		{`"v2" not in Service.Tags`, true},
		{`Service.Tags is not empty`, true},
		{`Service.Tags is empty`, false},
		{`Service.Meta.version == "1.2"`, true},
		{`Service.Meta["path.dots"] == x`, true},
		{`Service.Meta.missing == x`, false},
		{`Service.Meta.missing != x`, true},
		{`Service.Meta.missing is empty`, true},
		{`Service.Meta.missing is not empty`, false},
		{`Service.Meta.missing contains x`, false},
		{`Service.Meta.missing not contains x`, true},
		{`Service.Meta.missing matches "."`, false},
		{`Service.Meta.missing not matches "."`, true},
		{`version in Service.Meta`, true},
		{`nope in Service.Meta`, false},
		{`Service.Meta is not empty`, true},
		{`Node.Node == node1`, true},
		{`Node.Meta.rack == r1 and Node.Meta.env == prod`, true},
		{`Node.Meta.rack == r2 or Node.Meta.env == prod`, true},
		{`Node.Meta.rack == r2 or Node.Meta.env == dev`, false},
		{`not Node.Meta.rack == r2`, true},
		{`not (Node.Meta.rack == r1 and Service.Port == 8080)`, false},
		{`(Node.Meta.rack == r2 or Service.Port == 8080) and Service.Service == web`, true},
		{`Node.Meta.rack == r2 or Service.Port == 8080 and Service.Service == db`, false}, // and binds tighter
		{`not not Service.Port == 8080`, true},
		{`Checks.Status == critical`, true},
		{`Checks.Status == warning`, false},
		{`Checks.Status != passing`, true}, // some check is not passing
		{`Checks.CheckID == serfHealth`, true},
		{`Checks.Output contains "500"`, true},
		{`Checks.ServiceTags contains v1`, true},
		{`Checks is not empty`, true},
		{`Service.Service matches "^w.b$"`, true},
		{`Service.Service not matches "^db"`, true},
		{`Node.Address contains "10.0."`, true},
		{`"0.0" in Node.Address`, true},
		{`service.service == web`, true}, // field names also match in another case
		{"\tService.Port\n==\r8080 ", true},
	}
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			f := mustNew(t, tc.expr, typeServiceEntry)
			if got := f.Match(&e); got != tc.want {
				t.Fatalf("Match(pointer) = %v, want %v", got, tc.want)
			}
			if got := f.Match(e); got != tc.want {
				t.Fatalf("Match(value) = %v, want %v", got, tc.want)
			}
		})
	}

	cs := sampleCatalogService()
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{`ServiceName == web and ServiceTags contains v1`, true},
		{`ServiceMeta.version == "1.2"`, true},
		{`NodeMeta.rack != r1`, false},
		{`Node == node1 and ServicePort == 8080`, true},
		{`ServiceTaggedAddresses.lan_ipv4.Address == "10.0.0.1"`, false}, // nil map: absent
		{`ServiceTaggedAddresses is empty`, true},
	} {
		if got := mustNew(t, tc.expr, typeCatalogService).Match(&cs); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

// TestAPIExpressions runs the filters the HTTP API's tests send through
// the consul/api client, on answers shaped as those endpoints render them.
func TestAPIExpressions(t *testing.T) {
	// Three agents each registering "api" (port 9000+i, tags v1 and n<i>,
	// node2 also canary; meta version i%2 and team blue); node2's TTL
	// check is critical.
	var entries []serviceEntry
	var catalogSvcs []catalogService
	var checks []healthCheck
	var members []agentMember
	for i := range 3 {
		node := fmt.Sprintf("node%d", i)
		tags := []string{"v1", fmt.Sprintf("n%d", i)}
		if i == 2 {
			tags = append(tags, "canary")
		}
		meta := map[string]string{"version": fmt.Sprint(i % 2), "team": "blue"}
		status := "passing"
		if i == 2 {
			status = "critical"
		}
		cn := catalogNode{Node: node, Address: "127.0.0.1", Datacenter: "dc1", Meta: map[string]string{},
			TaggedAddresses: map[string]string{"lan": "127.0.0.1", "wan": "127.0.0.1"}}
		hc := []healthCheck{
			{Node: node, CheckID: "serfHealth", Name: "Serf Health Status", Status: "passing", ServiceTags: []string{}},
			{Node: node, CheckID: "api-ttl", Status: status, ServiceID: "api", ServiceName: "api", ServiceTags: tags, Type: "ttl"},
		}
		entries = append(entries, serviceEntry{Node: cn,
			Service: agentService{ID: "api", Service: "api", Tags: tags, Meta: meta, Port: 9000 + i, Weights: weights{1, 1}}, Checks: hc})
		catalogSvcs = append(catalogSvcs, catalogService{Node: node, Address: "127.0.0.1", Datacenter: "dc1", NodeMeta: map[string]string{},
			ServiceID: "api", ServiceName: "api", ServiceTags: tags, ServiceMeta: meta, ServicePort: 9000 + i})
		checks = append(checks, hc...)
		members = append(members, agentMember{Name: node, Addr: "127.0.0.1", Port: 8301, Status: 1, Tags: map[string]string{"role": "node"}})
	}
	agentSvcs := []agentService{
		{ID: "web1", Service: "web", Tags: []string{"v1", "primary"}, Port: 8080},
		{ID: "web2", Service: "web", Tags: []string{"v2"}, Port: 8081},
	}
	catalogNodes := []catalogNode{{Node: "alpha", Address: "127.0.0.1", Meta: map[string]string{"rack": "r1"}}}
	nodeSvcs := []agentService{{ID: "web", Service: "web", Port: 80, Tags: []string{"http", "prom"}}, {ID: "cache", Service: "cache", Port: 6379}}

	cases := []struct {
		endpoint string
		expr     string
		want     []string
	}{
		{"health/service", `Service.Meta.version == "1"`, []string{"node1"}},
		{"health/service", `"canary" in Service.Tags`, []string{"node2"}},
		{"health/service", `not (Service.Tags contains canary)`, []string{"node0", "node1"}},
		{"health/service", `Checks.Status == critical`, []string{"node2"}},
		{"health/service", `Node.Node == node0 or Node.Node == "node2"`, []string{"node0", "node2"}},
		{"health/service", `Service.Meta.team == blue and Service.Port != 9000`, []string{"node1", "node2"}},
		{"health/service", `Service.Meta.missing is empty`, []string{"node0", "node1", "node2"}},
		{"health/service", `Node.Meta is not empty or Node.Address == "127.0.0.1"`, []string{"node0", "node1", "node2"}},
		{"catalog/service", `ServiceMeta.version == "0" and ServiceTags contains n2`, []string{"node2"}},
		{"catalog/service", `NodeMeta is empty and Node matches "^node[01]$"`, []string{"node0", "node1"}},
		{"health/state", `CheckID == serfHealth`, []string{"node0", "node1", "node2"}},
		{"agent/members", `Name != node0`, []string{"node1", "node2"}},
		{"agent/services", `v2 in Tags`, []string{"web2"}},
		{"catalog/services", `ServiceTags contains prom`, []string{"web"}},
		{"catalog/nodes", `Meta.rack != r1`, nil},
		{"catalog/node", `Service == cache`, []string{"cache"}},
	}
	for _, tc := range cases {
		t.Run(tc.endpoint+" "+tc.expr, func(t *testing.T) {
			var got []string
			switch tc.endpoint {
			case "health/service":
				got = names(t, tc.expr, entries, func(e serviceEntry) string { return e.Node.Node })
			case "catalog/service":
				got = names(t, tc.expr, catalogSvcs, func(c catalogService) string { return c.Node })
			case "health/state":
				got = names(t, tc.expr, checks, func(c healthCheck) string { return c.Node })
			case "agent/members":
				got = names(t, tc.expr, members, func(m agentMember) string { return m.Name })
			case "agent/services":
				got = names(t, tc.expr, agentSvcs, func(s agentService) string { return s.ID })
			case "catalog/services":
				got = names(t, tc.expr, []catalogService{
					{Node: "alpha", ServiceName: "web", ServiceTags: []string{"http", "prom"}},
					{Node: "alpha", ServiceName: "cache", ServiceTags: []string{}},
				}, func(c catalogService) string { return c.ServiceName })
			case "catalog/nodes":
				got = names(t, tc.expr, catalogNodes, func(n catalogNode) string { return n.Node })
			case "catalog/node":
				got = names(t, tc.expr, nodeSvcs, func(s agentService) string { return s.ID })
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// names filters items (deduplicating the names of those that match).
func names[T any](t *testing.T, expr string, items []T, name func(T) string) []string {
	t.Helper()
	f := mustNew(t, expr, reflect.TypeFor[T]())
	var out []string
	for i := range items {
		if f.Match(&items[i]) {
			if n := name(items[i]); !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

func TestErrors(t *testing.T) {
	cases := []struct {
		typ        reflect.Type
		expr, want string
	}{
		{typeServiceEntry, ``, "expected a selector or value"},
		{typeServiceEntry, `Service.Service`, "expected an operator"},
		{typeServiceEntry, `Service.Service ==`, "expected a selector or value"},
		{typeServiceEntry, `Service.ID ==`, "expected a selector or value"},
		{typeServiceEntry, `Service.Nope == 1`, `unknown selector Service.Nope: Service has no field "Nope"`},
		{typeServiceEntry, `Nope == 1`, `the result has no field "Nope"`},
		{typeServiceEntry, `Service.Port.X == 1`, "Service.Port is a number and has no field"},
		{typeServiceEntry, `Service.Port == abc`, "is an integer"},
		{typeServiceEntry, `Service.Port == 1.5`, "is an integer"},
		{typeServiceEntry, `Service.EnableTagOverride == maybe`, "boolean"},
		{typeServiceEntry, `Service.Tags == v1`, "use in, contains or is empty"},
		{typeServiceEntry, `Service.Tags == "a"`, "use in, contains or is empty"},
		{typeServiceEntry, `Service.Weights == 1`, "is an object: use in"},
		{typeServiceEntry, `Checks == x`, "use in, contains or is empty"},
		{typeServiceEntry, `x in Checks`, "list of objects"},
		{typeServiceEntry, `Service.Port contains 1`, "needs a string, list or map"},
		{typeServiceEntry, `Service.Port is empty`, "needs a string, list or map"},
		{typeServiceEntry, `Service.Port matches "1"`, "needs a string"},
		{typeServiceEntry, `Service.Service matches "("`, "bad regular expression"},
		{typeServiceEntry, `(Service.Port == 1`, "expected ) to close"},
		{typeServiceEntry, `Service.Port == 1)`, "unexpected"},
		{typeServiceEntry, `Service.Port == 1 Service.Port == 2`, "unexpected"},
		{typeServiceEntry, `Service.Port = 1`, "operators are == and !="},
		{typeServiceEntry, `Service.Service == "web`, "unterminated string"},
		{typeServiceEntry, "Service.Service == `web", "unterminated string"},
		{typeServiceEntry, `"web" == Service.Service`, "expected in or not in after the value"},
		{typeServiceEntry, `"web" in "x"`, "expected a selector after in"},
		{typeServiceEntry, `Service.Meta[x] == 1`, "quoted key"},
		{typeServiceEntry, `Service.Meta["x" == 1`, "expected ]"},
		{typeServiceEntry, `Service.Meta. == 1`, "expected a field name after '.'"},
		{typeServiceEntry, `Service.Service is full`, "expected empty after is"},
		{typeServiceEntry, `Service.Service is nil`, "expected empty after is"},
		{typeServiceEntry, `Service.Service not equal x`, "expected contains, matches or in after not"},
		{typeServiceEntry, `Service.Service == web and`, "expected a selector or value"},
		{typeServiceEntry, `and == x`, "keyword"},
		{typeServiceEntry, `Service.Port == 12ab`, "invalid number"},
		{typeServiceEntry, `Service.Service == 1.2.3`, "invalid number"},
		{typeServiceEntry, `Service.Service == -`, "invalid number"},
		{typeServiceEntry, `Service.Service == "\q"`, "bad string"},
		{typeServiceEntry, `Service.Service == x ~`, "unexpected character"},
		{typeServiceEntry, "Service.Service == \"\xff\"", "not valid UTF-8"},
		{typeServiceEntry, `any Checks as c { c.Status == critical }`, "unexpected character '{'"},
		{typeServiceEntry, strings.Repeat("(", 100) + "Service.Port == 1" + strings.Repeat(")", 100), "nested more than 64 levels"},
		{typeServiceEntry, strings.Repeat("not ", 100) + "Service.Port == 1", "nested more than 64 levels"},
		{typeCatalogService, `ServicePort == "eighty"`, "is an integer"},
		{typeCatalogService, `Node matches "("`, "regular expression"},
		{typeAgentMember, `Port == -1`, "is an unsigned integer"},
		{typeAgentMember, `Port == 70000`, "is an unsigned integer"},
	}
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			f, err := New(tc.expr, tc.typ)
			if err == nil {
				t.Fatalf("New = %v, want an error containing %q", f, tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want an error wrapping ErrInvalid containing %q", err, tc.want)
			}
			// The message is fit for the client: it names the expression
			// and does not end in the sentinel's text.
			if !strings.HasPrefix(msg, fmt.Sprintf("filter %q: ", tc.expr)) || strings.HasSuffix(msg, ErrInvalid.Error()) {
				t.Fatalf("message %q", msg)
			}
		})
	}
	// Nesting up to the limit parses; one more level does not.
	for _, nest := range []func(int) string{
		func(n int) string { return strings.Repeat("(", n) + "Service.Port == 1" + strings.Repeat(")", n) },
		func(n int) string { return strings.Repeat("not ", n) + "Service.Port == 1" },
	} {
		if _, err := New(nest(maxDepth), typeServiceEntry); err != nil {
			t.Fatalf("%d levels: %v", maxDepth, err)
		}
		if _, err := New(nest(maxDepth+1), typeServiceEntry); err == nil {
			t.Fatalf("%d levels parsed", maxDepth+1)
		}
	}
	if _, err := New(`Service.Port == 1`, nil); err == nil || errors.Is(err, ErrInvalid) {
		t.Fatalf("nil type: %v", err)
	}
}

// Every filterable answer type resolves Consul's selector names.
func TestSelectorsPerEndpoint(t *testing.T) {
	cases := []struct {
		typ  reflect.Type
		sels []string
	}{
		{typeCatalogService, []string{"ServiceName", "ServiceID", "ServiceTags", "ServiceMeta.k", "ServiceAddress", "ServicePort",
			"ServiceWeights.Passing", "ServiceTaggedAddresses.lan_ipv4.Address", "Node", "NodeMeta.k", "Address", "Datacenter", "TaggedAddresses.lan", "ID", "ServiceKind"}},
		{typeServiceEntry, []string{"Service.ID", "Service.Service", "Service.Tags", "Service.Meta.k", "Service.Port", "Service.Address",
			"Service.Weights.Warning", "Node.Node", "Node.Meta.k", "Node.Address", "Node.Datacenter", "Node.TaggedAddresses.wan",
			"Checks.Status", "Checks.CheckID", "Checks.Name", "Checks.ServiceName", "Checks.ServiceTags", "Checks.Output", "Checks.Type"}},
		{typeHealthCheck, []string{"Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID", "ServiceName", "ServiceTags", "Type",
			"Definition.HTTP", "Definition.Interval", "Definition.Header.X-Token"}},
		{typeCatalogNode, []string{"ID", "Node", "Address", "Datacenter", "TaggedAddresses.lan", "Meta.k"}},
		{typeAgentService, []string{"ID", "Service", "Tags", "Meta.k", "Port", "Address", "Weights.Passing", "Kind", "EnableTagOverride"}},
		{typeAgentMember, []string{"Name", "Addr", "Port", "Tags.role", "Status"}},
	}
	for _, tc := range cases {
		for _, sel := range tc.sels {
			if _, err := New(sel+" is empty", tc.typ); err != nil && !strings.Contains(err.Error(), "is empty needs") {
				t.Errorf("%s on %s: %v", sel, tc.typ.Name(), err)
			}
		}
	}
}

// Fields are selected by their JSON names, fields of embedded structs are
// promoted as encoding/json flattens them, and hidden fields cannot be
// selected.
func TestFieldNames(t *testing.T) {
	type Inner struct{ Zone string }
	type answer struct {
		*Inner
		Renamed  string `json:"name,omitempty"`
		Hidden   string `json:"-"`
		Private  string `filter:"-"`
		Kept     string `json:",omitempty"`
		Labels   map[string]string
		internal string
	}
	a := answer{Inner: &Inner{Zone: "z1"}, Renamed: "x", Kept: "k", internal: "i"}
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{`name == x`, true},
		{`Name == x`, true}, // any case
		{`Kept == k`, true},
		{`Zone == z1`, true},
		{`Labels.a is empty`, true},
	} {
		if got := mustNew(t, tc.expr, reflect.TypeOf(a)).Match(&a); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.expr, got, tc.want)
		}
	}
	// A nil embedded pointer leaves its promoted fields absent.
	var b answer
	if mustNew(t, `Zone == z1`, reflect.TypeOf(b)).Match(&b) || !mustNew(t, `Zone != z1`, reflect.TypeOf(b)).Match(b) {
		t.Error("field through a nil embedded pointer is not absent")
	}
	for _, expr := range []string{`Renamed == x`, `Hidden == x`, `Private == x`, `internal == i`, `Inner.Zone == z1`} {
		if _, err := New(expr, reflect.TypeOf(a)); err == nil || !strings.Contains(err.Error(), "unknown selector") {
			t.Errorf("%s: %v", expr, err)
		}
	}
	// The error lists the fields that can be selected.
	_, err := New(`Nope == 1`, reflect.TypeOf(a))
	if err == nil || !strings.Contains(err.Error(), "(fields: Zone, name, Kept, Labels)") {
		t.Errorf("field list: %v", err)
	}
}

// A map answer is filtered by key, and selectors through pointers and nil
// values behave as absent.
func TestMapsAndPointers(t *testing.T) {
	type label string
	type node struct {
		Meta   map[label]string
		Parent *node
		Tags   []*string
		Counts map[int]int
	}
	v1 := "v1"
	n := &node{Meta: map[label]string{"env": "prod"}, Parent: &node{Meta: map[label]string{"env": "dev"}}, Tags: []*string{nil, &v1}}
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{`Meta.env == prod`, true},
		{`env in Meta`, true},
		{`Parent.Meta.env == dev`, true},
		{`Parent.Parent.Meta.env == dev`, false},
		{`Parent.Parent.Meta.env != dev`, true},
		{`Parent.Parent.Meta is empty`, true},
		{`Tags contains v1`, true},
		{`Counts is empty`, true},
	} {
		if got := mustNew(t, tc.expr, reflect.TypeOf(n)).Match(n); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.expr, got, tc.want)
		}
	}
	if mustNew(t, `Meta.env == prod`, reflect.TypeOf(n)).Match((*node)(nil)) {
		t.Error("nil pointer matched ==")
	}
	for _, expr := range []string{`Counts.1 == 1`, `x in Counts`} {
		if _, err := New(expr, reflect.TypeOf(n)); err == nil || !strings.Contains(err.Error(), "without string keys") {
			t.Errorf("%s: %v", expr, err)
		}
	}
	m := map[string]map[string]string{"a": {"k": "v"}}
	if f := mustNew(t, `a.k == v and b.k != v`, reflect.TypeOf(m)); !f.Match(m) {
		t.Error("map answer")
	}
}

func TestNilFilterMatchesEverything(t *testing.T) {
	var f *Filter
	if !f.Match(sampleEntry()) || !f.Match(nil) {
		t.Fatal("nil filter did not match")
	}
}

func TestMatchWrongTypePanics(t *testing.T) {
	f := mustNew(t, `Node == node1`, typeCatalogService)
	for _, v := range []any{sampleEntry(), nil, "x"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Match(%T) did not panic", v)
				}
			}()
			f.Match(v)
		}()
	}
}

// One Filter serves concurrent requests (run with -race).
func TestConcurrentMatch(t *testing.T) {
	f := mustNew(t, `Checks.Status == critical and Service.Meta.version matches "^1\\." and v1 in Service.Tags`, typeServiceEntry)
	e := sampleEntry()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if !f.Match(&e) {
					t.Error("no match")
					return
				}
			}
		})
	}
	wg.Wait()
}
