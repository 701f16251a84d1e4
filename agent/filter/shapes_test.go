package filter

import "reflect"

// The answer types below have the shapes of the HTTP API's answers (the
// structs the agent renders as Consul's JSON), so that the tests check
// Consul's selector names against the same field layout.

type weights struct {
	Passing int
	Warning int
}

type catalogNode struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     uint64
	ModifyIndex     uint64
}

type serviceAddress struct {
	Address string
	Port    int
}

type catalogService struct {
	ID                       string
	Node                     string
	Address                  string
	Datacenter               string
	TaggedAddresses          map[string]string
	NodeMeta                 map[string]string
	ServiceKind              string
	ServiceID                string
	ServiceName              string
	ServiceTags              []string
	ServiceAddress           string
	ServiceTaggedAddresses   map[string]serviceAddress `json:",omitempty"`
	ServiceWeights           weights
	ServiceMeta              map[string]string
	ServicePort              int
	ServiceEnableTagOverride bool
	CreateIndex              uint64
	ModifyIndex              uint64
}

type agentService struct {
	Kind              string `json:",omitempty"`
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	TaggedAddresses   map[string]serviceAddress `json:",omitempty"`
	Weights           weights
	EnableTagOverride bool
	CreateIndex       uint64 `json:",omitempty"`
	ModifyIndex       uint64 `json:",omitempty"`
	ContentHash       string `json:",omitempty"`
	Datacenter        string `json:",omitempty"`
}

type agentMember struct {
	Name        string
	Addr        string
	Port        uint16
	Tags        map[string]string
	Status      int
	ProtocolMin uint8
	ProtocolMax uint8
	ProtocolCur uint8
	DelegateMin uint8
	DelegateMax uint8
	DelegateCur uint8
}

type healthCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	Interval    string `json:",omitempty"`
	Timeout     string `json:",omitempty"`
	ExposedPort int
	Definition  checkDefinition
	CreateIndex uint64
	ModifyIndex uint64
}

type checkDefinition struct {
	HTTP                           string              `json:",omitempty"`
	Header                         map[string][]string `json:",omitempty"`
	Method                         string              `json:",omitempty"`
	Body                           string              `json:",omitempty"`
	TLSServerName                  string              `json:",omitempty"`
	TLSSkipVerify                  bool                `json:",omitempty"`
	TCP                            string              `json:",omitempty"`
	GRPC                           string              `json:",omitempty"`
	GRPCUseTLS                     bool                `json:",omitempty"`
	ScriptArgs                     []string            `json:",omitempty"`
	Interval                       string              `json:",omitempty"`
	Timeout                        string              `json:",omitempty"`
	DeregisterCriticalServiceAfter string              `json:",omitempty"`
}

type serviceEntry struct {
	Node    catalogNode
	Service agentService
	Checks  []healthCheck
}

var (
	typeAgentService   = reflect.TypeOf(agentService{})
	typeAgentMember    = reflect.TypeOf(agentMember{})
	typeHealthCheck    = reflect.TypeOf(healthCheck{})
	typeCatalogService = reflect.TypeOf(catalogService{})
	typeCatalogNode    = reflect.TypeOf(catalogNode{})
	typeServiceEntry   = reflect.TypeOf(serviceEntry{})
)

func sampleEntry() serviceEntry {
	return serviceEntry{
		Node: catalogNode{Node: "node1", Address: "10.0.0.1", Datacenter: "dc1", Meta: map[string]string{"rack": "r1", "env": "prod"},
			TaggedAddresses: map[string]string{"lan": "10.0.0.1"}},
		Service: agentService{ID: "web-1", Service: "web", Tags: []string{"v1", "primary"}, Port: 8080,
			Meta: map[string]string{"version": "1.2", "path.dots": "x"}, Weights: weights{Passing: 3, Warning: 1}, EnableTagOverride: true},
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
