package agent

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/chorusdns/chorus/agent/gossip"
	"github.com/chorusdns/chorus/agent/hooks"
	"github.com/chorusdns/chorus/agent/httpapi"
	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/agent/wan"
	"github.com/chorusdns/chorus/catalog"
	dnssrv "github.com/chorusdns/chorus/dns"
)

// Config is the agent's whole configuration. Field tags name the config
// file keys; flags and CHORUS_* environment variables use the same names
// (dashes for flags, upper case for the environment). A Config handed to
// New must not be modified afterwards; a reload builds a new one.
type Config struct {
	NodeName   string            `mapstructure:"node"`
	Datacenter string            `mapstructure:"datacenter"`
	Zone       string            `mapstructure:"zone"`
	NodeMeta   map[string]string `mapstructure:"node_meta"`
	DataDir    string            `mapstructure:"data_dir"`
	Dev        bool              `mapstructure:"dev"`
	LogLevel   string            `mapstructure:"log_level"`

	// Bind is the gossip address, Advertise the address peers use to reach
	// this agent (defaults to Bind, or the first private address when Bind
	// is 0.0.0.0). Client is where HTTP and DNS listen.
	Bind      string `mapstructure:"bind"`
	Advertise string `mapstructure:"advertise"`
	Client    string `mapstructure:"client"`
	HTTPPort  int    `mapstructure:"http_port"`
	// HTTPSPort, when set, also serves the API over TLS (see TLS).
	HTTPSPort int `mapstructure:"https_port"`
	DNSPort   int `mapstructure:"dns_port"`
	SerfPort  int `mapstructure:"serf_port"`

	Join          []string      `mapstructure:"join"`
	RetryJoin     []string      `mapstructure:"retry_join"`
	RetryInterval time.Duration `mapstructure:"retry_interval"`
	RetryMax      int           `mapstructure:"retry_max"`

	// Several datacenters (agent/gossip's WAN): the WAN pool's port, the agents of
	// other datacenters to contact, how many agents of this datacenter
	// speak in the WAN pool, and how long a remote datacenter's summary
	// that cannot be refreshed is kept. The DNS key failover (the
	// agent-wide failover rule) is in the squashed DNS config.
	SerfWANPort         int           `mapstructure:"serf_wan_port"`
	RetryJoinWAN        []string      `mapstructure:"retry_join_wan"`
	WANSpeakers         int           `mapstructure:"wan_speakers"`
	WANReconnectTimeout time.Duration `mapstructure:"wan_reconnect_timeout"`

	Encrypt string `mapstructure:"encrypt"`

	EnableScriptChecks bool `mapstructure:"enable_script_checks"`
	// EnableLocalScriptChecks allows script (and Docker) checks in
	// services from config files only, never through the HTTP API, as
	// Consul's enable_local_script_checks.
	EnableLocalScriptChecks bool `mapstructure:"enable_local_script_checks"`
	// EnableDebug serves Go's runtime profiles (/debug/pprof/) on the
	// HTTP API, as Consul's enable_debug. With ACLs enabled they are
	// served whatever its value, to read tokens (Consul's operator:read);
	// the command line, which may hold the gossip key, to write tokens.
	// Reloadable.
	EnableDebug bool `mapstructure:"enable_debug"`

	// DockerSocket is the Docker Engine's unix socket that Docker checks
	// (DockerContainerID) exec through; they are allowed only with
	// enable_script_checks, as in Consul.
	DockerSocket string `mapstructure:"docker_socket"`

	// BuiltinService names the service every agent registers for itself
	// in the catalog (not in /v1/agent/services, as Consul's "consul"
	// service): one instance per agent at its HTTP endpoint, passing
	// while the agent is alive. "" turns it off. BuiltinServiceConsul
	// also registers it under the name "consul", for tools that find
	// servers that way. Both are read at start.
	BuiltinService       string `mapstructure:"builtin_service"`
	BuiltinServiceConsul bool   `mapstructure:"builtin_service_consul"`

	ACL    httpapi.ACLConfig `mapstructure:"acl"`
	TLS    httpapi.TLSConfig `mapstructure:"tls"`
	Gossip gossip.Tuning     `mapstructure:"gossip"`
	// GossipProfile picks the gossip timings: lan (default), wan or local.
	GossipProfile string `mapstructure:"gossip_profile"`

	// EventHandlers run commands on member events (Serf's event
	// handlers); Watches run commands when a watched result changes
	// (Consul's watches). Both are re-read on reload.
	EventHandlers []hooks.EventHandler `mapstructure:"event_handlers"`
	Watches       []hooks.Watch        `mapstructure:"watches"`

	// Config holds the DNS server's keys (domain, alt_domain, recursors
	// and dns.*): the DNS server reads them as they are. Its node, zone
	// and datacenter fields are filled from the agent's own keys.
	dnssrv.Config `mapstructure:",squash"`

	// Services are service definitions from config files and the config
	// directory (keys "service" and "services").
	Services []local.ServiceDefinition `mapstructure:"-"`
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	d := dnssrv.DefaultConfig()
	d.Domain = "chorus"
	return Config{
		NodeName:            host,
		Datacenter:          dnssrv.DefaultDatacenter,
		LogLevel:            "info",
		Bind:                "0.0.0.0",
		Client:              "127.0.0.1",
		HTTPPort:            8500,
		DNSPort:             8600,
		SerfPort:            8301,
		SerfWANPort:         8302,
		WANSpeakers:         wan.DefaultSpeakers,
		WANReconnectTimeout: 72 * time.Hour,
		RetryInterval:       5 * time.Second,
		GossipProfile:       "lan",
		DockerSocket:        "/var/run/docker.sock",
		// The built-in service (builtin.go).
		BuiltinService: "chorus",
		ACL:            httpapi.ACLConfig{DefaultPolicy: "allow"},
		Config:         d,
	}
}

// Validate checks the configuration and returns an error naming the first
// offending key.
func (c *Config) Validate() error {
	if err := catalog.ValidateNodeName(c.NodeName); err != nil {
		return fmt.Errorf("node: %v", err)
	}
	if err := catalog.ValidateLabel("datacenter", c.Datacenter); err != nil {
		return fmt.Errorf("datacenter: %v", err)
	}
	if c.Zone != "" {
		if err := catalog.ValidateLabel("zone", c.Zone); err != nil {
			return fmt.Errorf("zone: %v", err)
		}
	}
	if c.DataDir == "" && !c.Dev {
		return fmt.Errorf("data_dir: required (or use --dev)")
	}
	if _, err := httpapi.ParseLogLevel(c.LogLevel); err != nil {
		return fmt.Errorf("log_level: %v", err)
	}
	for _, kv := range []struct{ key, addr string }{{"bind", c.Bind}, {"client", c.Client}} {
		if net.ParseIP(kv.addr) == nil {
			return fmt.Errorf("%s: %q is not an IP address", kv.key, kv.addr)
		}
	}
	if c.Advertise != "" && net.ParseIP(c.Advertise) == nil {
		return fmt.Errorf("advertise: %q is not an IP address", c.Advertise)
	}
	for _, kp := range []struct {
		key  string
		port int
	}{{"http_port", c.HTTPPort}, {"https_port", c.HTTPSPort}, {"dns_port", c.DNSPort}, {"serf_port", c.SerfPort}} {
		if kp.port < 0 || kp.port > 65535 {
			return fmt.Errorf("%s: %d is outside 0–65535", kp.key, kp.port)
		}
	}
	if err := c.ACL.Validate(); err != nil {
		return err
	}
	if err := c.TLS.Validate(c.HTTPSPort); err != nil {
		return err
	}
	if c.RetryInterval <= 0 {
		return fmt.Errorf("retry_interval: must be positive")
	}
	if err := c.validateWAN(); err != nil {
		return err
	}
	if c.RetryMax < 0 {
		return fmt.Errorf("retry_max: must be 0 (no limit) or more")
	}
	if c.Encrypt != "" {
		if _, err := gossip.DecodeKey(c.Encrypt); err != nil {
			return fmt.Errorf("encrypt: %v", err)
		}
	}
	if err := gossip.ValidateProfile(c.GossipProfile); err != nil {
		return fmt.Errorf("gossip_profile: %v", err)
	}
	if err := c.Gossip.Validate(); err != nil {
		return err
	}
	if err := c.dnsConfig().Validate(); err != nil {
		return err
	}
	for i := range c.EventHandlers {
		if err := c.EventHandlers[i].Validate(i); err != nil {
			return err
		}
	}
	for i := range c.Watches {
		if err := c.Watches[i].Validate(i); err != nil {
			return err
		}
	}
	if err := c.validateBuiltin(); err != nil {
		return err
	}
	for i := range c.Services {
		if _, _, err := c.Services[i].Build(c.EnableScriptChecks || c.EnableLocalScriptChecks); err != nil {
			return fmt.Errorf("services[%d]: %v", i, err)
		}
	}
	return nil
}

// dnsConfig is the DNS server's configuration: the DNS keys as written,
// with the agent's node name, datacenter and zone.
func (c *Config) dnsConfig() dnssrv.Config {
	d := c.Config
	d.NodeName, d.Datacenter, d.Zone = c.NodeName, c.Datacenter, c.Zone
	return d
}
