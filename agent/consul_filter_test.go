package agent

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/chorusdns/chorus/catalog"
)

// Sample answers to filter, shaped as the HTTP API renders them.
func sampleEntry() serviceEntry {
	return serviceEntry{
		Node: catalogNode{Node: "node1", Address: "10.0.0.1", Datacenter: "dc1", Meta: map[string]string{"rack": "r1", "env": "prod"},
			TaggedAddresses: map[string]string{"lan": "10.0.0.1"}},
		Service: agentService{ID: "web-1", Service: "web", Tags: []string{"v1", "primary"}, Port: 8080,
			Meta: map[string]string{"version": "1.2", "path.dots": "x"}, Weights: catalog.Weights{Passing: 3, Warning: 1}, EnableTagOverride: true},
		Checks: []healthCheck{
			{Node: "node1", CheckID: "serfHealth", Status: "passing"},
			{Node: "node1", CheckID: "service:web-1", Status: "critical", ServiceTags: []string{"v1"}, Output: "HTTP 500"},
		},
	}
}

func sampleCatalogService() catalogService {
	return catalogService{Node: "node1", Address: "10.0.0.1", ServiceName: "web", ServiceID: "web-1",
		ServiceTags: []string{"v1"}, ServiceMeta: map[string]string{"version": "1.2"}, NodeMeta: map[string]string{"rack": "r1"}, ServicePort: 8080}
}

func TestFilterMatches(t *testing.T) {
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
	}
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			f, err := parseFilter(tc.expr, typeServiceEntry)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := f.match(&e); got != tc.want {
				t.Fatalf("match = %v, want %v", got, tc.want)
			}
			if got := f.match(e); got != tc.want {
				t.Fatalf("match on a value = %v, want %v", got, tc.want)
			}
		})
	}

	cs := sampleCatalogService()
	for expr, want := range map[string]bool{
		`ServiceName == web and ServiceTags contains v1`: true,
		`ServiceMeta.version == "1.2"`:                   true,
		`NodeMeta.rack != r1`:                            false,
		`Node == node1 and ServicePort == 8080`:          true,
	} {
		f, err := parseFilter(expr, typeCatalogService)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if got := f.match(&cs); got != want {
			t.Errorf("%s = %v, want %v", expr, got, want)
		}
	}
}

func TestFilterErrors(t *testing.T) {
	cases := []struct{ expr, want string }{
		{``, "expected a selector or value"},
		{`Service.Service`, "expected an operator"},
		{`Service.Service ==`, "expected a selector or value"},
		{`Service.Nope == 1`, `has no field "Nope"`},
		{`Nope == 1`, `the result has no field "Nope"`},
		{`Service.Port.X == 1`, "is a number and has no field"},
		{`Service.Port == abc`, "is an integer"},
		{`Service.Port == 1.5`, "is an integer"},
		{`Service.EnableTagOverride == maybe`, "boolean"},
		{`Service.Tags == v1`, "use in, contains or is empty"},
		{`Checks == x`, "use in, contains or is empty"},
		{`x in Checks`, "list of objects"},
		{`Service.Port contains 1`, "needs a string, list or map"},
		{`Service.Port is empty`, "needs a string, list or map"},
		{`Service.Port matches "1"`, "needs a string"},
		{`Service.Service matches "("`, "bad regular expression"},
		{`(Service.Port == 1`, "expected ) to close"},
		{`Service.Port == 1)`, "unexpected"},
		{`Service.Port == 1 Service.Port == 2`, "unexpected"},
		{`Service.Port = 1`, "operators are == and !="},
		{`Service.Service == "web`, "unterminated string"},
		{"Service.Service == `web", "unterminated string"},
		{`"web" == Service.Service`, "expected in or not in after the value"},
		{`"web" in "x"`, "expected a selector after in"},
		{`Service.Meta[x] == 1`, "quoted key"},
		{`Service.Meta["x" == 1`, "expected ]"},
		{`Service.Service is full`, "expected empty after is"},
		{`Service.Service not equal x`, "expected contains, matches or in after not"},
		{`Service.Service == web and`, "expected a selector or value"},
		{`and == x`, "keyword"},
		{`Service.Port == 12ab`, "invalid number"},
		{`Service.Service == 1.2.3`, "invalid number"},
		{`Service.Service == "\q"`, "bad string"},
		{`Service.Service == x ~`, "unexpected character"},
		{strings.Repeat("(", 100) + "Service.Port == 1" + strings.Repeat(")", 100), "nested more than"},
		{strings.Repeat("not ", 100) + "Service.Port == 1", "nested more than"},
	}
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			_, err := parseFilter(tc.expr, typeServiceEntry)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// Every filterable answer type resolves Consul's selector names.
func TestFilterSelectorsPerEndpoint(t *testing.T) {
	cases := []struct {
		typ  reflect.Type
		sels []string
	}{
		{typeCatalogService, []string{"ServiceName", "ServiceID", "ServiceTags", "ServiceMeta.k", "ServiceAddress", "ServicePort",
			"ServiceWeights.Passing", "ServiceTaggedAddresses.lan_ipv4.Address", "Node", "NodeMeta.k", "Address", "Datacenter", "TaggedAddresses.lan", "ID", "ServiceKind"}},
		{typeServiceEntry, []string{"Service.ID", "Service.Service", "Service.Tags", "Service.Meta.k", "Service.Port", "Service.Address",
			"Service.Weights.Warning", "Node.Node", "Node.Meta.k", "Node.Address", "Node.Datacenter", "Node.TaggedAddresses.wan",
			"Checks.Status", "Checks.CheckID", "Checks.Name", "Checks.ServiceName", "Checks.ServiceTags", "Checks.Output", "Checks.Type"}},
		{typeHealthCheck, []string{"Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID", "ServiceName", "ServiceTags", "Type", "Definition.HTTP", "Definition.Interval"}},
		{typeCatalogNode, []string{"ID", "Node", "Address", "Datacenter", "TaggedAddresses.lan", "Meta.k"}},
		{typeAgentService, []string{"ID", "Service", "Tags", "Meta.k", "Port", "Address", "Weights.Passing", "Kind", "EnableTagOverride"}},
		{typeAgentMember, []string{"Name", "Addr", "Port", "Tags.role", "Status"}},
	}
	for _, tc := range cases {
		for _, sel := range tc.sels {
			if _, err := parseFilter(sel+" is empty", tc.typ); err != nil && !strings.Contains(err.Error(), "is empty needs") {
				t.Errorf("%s on %s: %v", sel, tc.typ.Name(), err)
			}
		}
	}
}

// FuzzFilterParse feeds arbitrary expressions to the parser and evaluates
// what parses: nothing may panic, errors must wrap ErrInvalid.
// Seed corpus: testdata/fuzz/FuzzFilterParse.
func FuzzFilterParse(f *testing.F) {
	for _, s := range []string{
		`Service.Service == web`,
		`Checks.Status != passing and not (Service.Tags contains v1 or "x" in Node.Meta)`,
		`Service.Meta["a.b"] matches "^x+$"`,
		`ServiceTags is not empty`,
		`((((Service.Port == -1))))`,
		"Service.ID == `raw`",
	} {
		f.Add(s)
	}
	e := sampleEntry()
	cs := sampleCatalogService()
	f.Fuzz(func(t *testing.T, expr string) {
		for _, target := range []struct {
			typ reflect.Type
			v   any
		}{{typeServiceEntry, &e}, {typeCatalogService, &cs}, {typeHealthCheck, &e.Checks[1]}} {
			flt, err := parseFilter(expr, target.typ)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("%q: error does not wrap ErrInvalid: %v", expr, err)
				}
				continue
			}
			flt.match(target.v)
		}
	})
}
