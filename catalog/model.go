package catalog

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
)

// Health states of a check or an instance, spelled as Consul spells them.
const (
	HealthPassing     = "passing"
	HealthWarning     = "warning"
	HealthCritical    = "critical"
	HealthMaintenance = "maintenance"
)

// Check IDs that Consul reserves for maintenance mode and node liveness.
const (
	NodeMaintCheckID        = "_node_maintenance"
	ServiceMaintCheckPrefix = "_service_maintenance:"
	SerfCheckID             = "serfHealth"
	SerfCheckName           = "Serf Health Status"
)

// MemberStatus is a node's gossip membership state as Serf reports it.
// The numeric values match Consul's /v1/agent/members Status field.
type MemberStatus int

// Member states.
const (
	MemberNone MemberStatus = iota
	MemberAlive
	MemberLeaving
	MemberLeft
	MemberFailed
)

// String returns the lower-case name of the state.
func (s MemberStatus) String() string {
	switch s {
	case MemberAlive:
		return "alive"
	case MemberLeaving:
		return "leaving"
	case MemberLeft:
		return "left"
	case MemberFailed:
		return "failed"
	}
	return "none"
}

// Node describes one agent's host. Datacenter and Zone come from the
// owning agent's configuration.
type Node struct {
	Name            string
	Address         string
	Datacenter      string            `json:",omitempty"`
	Zone            string            `json:",omitempty"`
	Meta            map[string]string `json:",omitempty"`
	TaggedAddresses map[string]string `json:",omitempty"`
	// External marks a node that runs no agent (external.go): its meta
	// and tagged addresses are exactly what its registration gave, with
	// nothing an agent adds of its own.
	External bool `json:",omitempty"`
}

// Weights are the SRV weights of an instance while it is passing or warning.
type Weights struct {
	Passing int
	Warning int
}

// DefaultWeights is Consul's default {Passing: 1, Warning: 1}.
var DefaultWeights = Weights{Passing: 1, Warning: 1}

// Service is one registered service instance on a node. An empty Address
// means the node's address.
type Service struct {
	ID      string
	Name    string
	Tags    []string          `json:",omitempty"`
	Address string            `json:",omitempty"`
	Port    int               `json:",omitempty"`
	Meta    map[string]string `json:",omitempty"`
	Weights Weights
	// Load is the instance's self-reported load figure (least-loaded policy).
	Load float64 `json:",omitempty"`
	// External marks a service registered through /v1/catalog/register
	// for a node that runs no agent; the accepting agent owns it.
	External bool `json:",omitempty"`

	// The rest of Consul's registration fields, kept and returned as
	// registered (Chorus's DNS does not read them). Port holds the
	// default port of Ports when Ports is set.
	Ports             []ServicePort             `json:",omitempty"`
	SocketPath        string                    `json:",omitempty"`
	TaggedAddresses   map[string]ServiceAddress `json:",omitempty"`
	EnableTagOverride bool                      `json:",omitempty"`
	Locality          *Locality                 `json:",omitempty"`
}

// ServicePort is one named port of a multi-port service (Consul's
// ServicePort); exactly one of a service's ports is the Default.
type ServicePort struct {
	Name    string
	Port    int
	Default bool `json:",omitempty"`
}

// ServiceAddress is a service's tagged address (Consul's ServiceAddress).
type ServiceAddress struct {
	Address string
	Port    int
}

// Locality is where a service runs (Consul's Locality): a region and a
// zone within it.
type Locality struct {
	Region string `json:",omitempty"`
	Zone   string `json:",omitempty"`
}

// Check is one health check's definition summary and its current state.
// A check with an empty ServiceID is a node-level check and applies to all
// of the node's instances.
type Check struct {
	CheckID     string
	Name        string
	Status      string
	Notes       string `json:",omitempty"`
	Output      string `json:",omitempty"`
	ServiceID   string `json:",omitempty"`
	ServiceName string `json:",omitempty"`
	Type        string `json:",omitempty"`
	Interval    string `json:",omitempty"`
	Timeout     string `json:",omitempty"`
	// Definition is the rest of the definition a catalog registration
	// gave the check (Consul's HealthCheckDefinition), kept as given and
	// returned with it; nil for the checks agents run.
	Definition *CheckDefinition `json:",omitempty"`
}

// CheckDefinition is how a catalog-registered check says it is run
// (Consul's HealthCheckDefinition without Interval and Timeout, which
// Check holds). Chorus runs no catalog check: it is data for whoever
// registered it and reads it back (Terraform, a monitor such as
// consul-esm). Durations are Go duration strings.
type CheckDefinition struct {
	HTTP                           string              `json:",omitempty"`
	Header                         map[string][]string `json:",omitempty"`
	Method                         string              `json:",omitempty"`
	Body                           string              `json:",omitempty"`
	TLSServerName                  string              `json:",omitempty"`
	TLSSkipVerify                  bool                `json:",omitempty"`
	DisableRedirects               bool                `json:",omitempty"`
	TCP                            string              `json:",omitempty"`
	TCPUseTLS                      bool                `json:",omitempty"`
	UDP                            string              `json:",omitempty"`
	GRPC                           string              `json:",omitempty"`
	GRPCUseTLS                     bool                `json:",omitempty"`
	H2PING                         string              `json:",omitempty"`
	H2PingUseTLS                   bool                `json:",omitempty"`
	OSService                      string              `json:",omitempty"`
	ScriptArgs                     []string            `json:",omitempty"`
	DockerContainerID              string              `json:",omitempty"`
	Shell                          string              `json:",omitempty"`
	AliasNode                      string              `json:",omitempty"`
	AliasService                   string              `json:",omitempty"`
	OutputMaxSize                  uint                `json:",omitempty"`
	TTL                            string              `json:",omitempty"`
	DeregisterCriticalServiceAfter string              `json:",omitempty"`
}

// Worse reports whether health state a is worse than b.
// maintenance > critical > warning > passing.
func Worse(a, b string) bool { return healthRank(a) > healthRank(b) }

func healthRank(s string) int {
	switch s {
	case HealthPassing:
		return 0
	case HealthWarning:
		return 1
	case HealthCritical:
		return 2
	case HealthMaintenance:
		return 3
	}
	return 2 // unknown states count as critical
}

// ValidStatus reports whether s is a check status a user may set.
func ValidStatus(s string) bool {
	return s == HealthPassing || s == HealthWarning || s == HealthCritical
}

// AggregateHealth returns the worst state of checks, as Consul's
// AggregatedStatus does: any maintenance check wins, then critical, then
// warning. No checks at all means passing.
func AggregateHealth(checks []Check) string {
	h := HealthPassing
	for i := range checks {
		c := &checks[i]
		if c.CheckID == NodeMaintCheckID || strings.HasPrefix(c.CheckID, ServiceMaintCheckPrefix) {
			return HealthMaintenance
		}
		st := c.Status
		if healthRank(st) >= healthRank(HealthCritical) {
			st = HealthCritical // unknown states count as critical
		}
		if Worse(st, h) {
			h = st
		}
	}
	return h
}

// ValidateLabel checks that s is usable as one DNS label: 1–63 letters,
// digits and hyphens, not starting or ending with a hyphen. what names the
// field in the error.
func ValidateLabel(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty: %w", what, ErrInvalid)
	}
	if len(s) > 63 {
		return fmt.Errorf("%s %q is longer than 63 characters, so it is not a DNS label: %w", what, s, ErrInvalid)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
		if !ok {
			return fmt.Errorf("%s %q has the character %q, so it is not a DNS label (letters, digits and '-' only): %w", what, s, c, ErrInvalid)
		}
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return fmt.Errorf("%s %q starts or ends with '-', so it is not a DNS label: %w", what, s, ErrInvalid)
	}
	return nil
}

// ValidateNodeName checks a node name: one or more DNS labels joined by dots.
func ValidateNodeName(s string) error {
	if s == "" {
		return fmt.Errorf("node name is empty: %w", ErrInvalid)
	}
	if len(s) > 253 {
		return fmt.Errorf("node name %q is longer than 253 characters: %w", s, ErrInvalid)
	}
	for _, l := range strings.Split(s, ".") {
		if err := ValidateLabel("node name label", l); err != nil {
			return fmt.Errorf("node name %q: %w", s, err)
		}
	}
	return nil
}

// Validate checks a service instance and fills defaults: ID defaults to
// Name and zero Weights become DefaultWeights. It returns an error naming
// the offending field and leaves s unchanged on error.
func (s *Service) Validate() error {
	if err := ValidateLabel("service name", s.Name); err != nil {
		return err
	}
	id := s.ID
	if id == "" {
		id = s.Name
	}
	if len(id) > 256 || strings.ContainsAny(id, "/\x00") || strings.TrimSpace(id) != id {
		return fmt.Errorf("service ID %q must be at most 256 characters, without '/' or surrounding spaces: %w", id, ErrInvalid)
	}
	for _, t := range s.Tags {
		if err := ValidateLabel("tag", t); err != nil {
			return err
		}
	}
	if s.Port < 0 || s.Port > 65535 {
		return fmt.Errorf("port %d is outside 0–65535: %w", s.Port, ErrInvalid)
	}
	if s.Address != "" && net.ParseIP(s.Address) == nil {
		if err := ValidateNodeName(s.Address); err != nil {
			return fmt.Errorf("service address %q is neither an IP address nor a host name: %w", s.Address, ErrInvalid)
		}
	}
	w := s.Weights
	if w == (Weights{}) {
		w = DefaultWeights
	}
	if w.Passing < 1 || w.Passing > 65535 || w.Warning < 0 || w.Warning > 65535 {
		return fmt.Errorf("weights {Passing: %d, Warning: %d}: Passing must be 1–65535 and Warning 0–65535: %w", w.Passing, w.Warning, ErrInvalid)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Meta)) { // the first bad key, in a stable order
		if k == "" || len(k) > 128 {
			return fmt.Errorf("meta key %q must be 1–128 characters: %w", k, ErrInvalid)
		}
	}
	if err := s.validateConsulFields(); err != nil {
		return err
	}
	s.ID = id
	s.Weights = w
	return nil
}

// Clone returns a deep copy of s.
func (s Service) Clone() Service {
	s.Tags = append([]string(nil), s.Tags...)
	s.Meta = maps.Clone(s.Meta)
	s.Ports = append([]ServicePort(nil), s.Ports...)
	s.TaggedAddresses = maps.Clone(s.TaggedAddresses)
	if s.Locality != nil {
		l := *s.Locality
		s.Locality = &l
	}
	return s
}
