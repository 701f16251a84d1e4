package dns

import (
	"fmt"
	"maps"
	"math"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/chorusdns/chorus/catalog"
)

// Policy names accepted by Config.Policy and by the chorus-policy service
// meta key.
const (
	PolicyRandom      = "random"
	PolicyRoundRobin  = "round-robin"
	PolicyLeastLoaded = "least-loaded"
	PolicyNearest     = "nearest"
	PolicyHash        = "hash"
)

// Service meta keys the DNS server reads.
const (
	// MetaPriority is an instance's failover tier (integer 0–65535, lower
	// preferred, default 1); it is the SRV priority.
	MetaPriority = "chorus-priority"
	// MetaPolicy overrides Config.Policy for one service.
	MetaPolicy = "chorus-policy"
	// MetaTTL overrides the TTL of one service (a Go duration string).
	MetaTTL = "chorus-ttl"
)

// Defaults of Config.
const (
	DefaultDomain          = "chorus."
	DefaultRecursorTimeout = 2 * time.Second
	DefaultMaxUDPSize      = 1232
	DefaultDatacenter      = "dc1"
)

// maxTTL is the largest TTL RFC 2181 §8 allows.
const maxTTL = math.MaxInt32

// SOAConfig holds the timers of the SOA record, in seconds. MinTTL is also
// the TTL of the SOA record and so the negative-caching TTL (RFC 2308).
type SOAConfig struct {
	Refresh uint32 `mapstructure:"refresh"`
	Retry   uint32 `mapstructure:"retry"`
	Expire  uint32 `mapstructure:"expire"`
	MinTTL  uint32 `mapstructure:"min_ttl"`
}

// Config configures the DNS server. Start from DefaultConfig. After
// passing a Config to New or Reload, the caller may reuse its own copy:
// the server keeps a normalised copy and shares no maps or slices with it.
type Config struct {
	// Domain is the domain the server is authoritative for, with or
	// without its trailing dot.
	Domain string `mapstructure:"domain"`
	// AltDomain is a second domain answered like Domain; "" for none.
	AltDomain string `mapstructure:"alt_domain"`

	// NodeName, Datacenter and Zone describe the answering agent: NS and
	// SOA name it, <svc>.service.<dc> accepts its datacenter only, and
	// answers prefer instances in its zone.
	NodeName   string `mapstructure:"-"`
	Datacenter string `mapstructure:"-"`
	Zone       string `mapstructure:"-"`
	// NodeAddress is the agent's advertise address, the glue of NS.
	NodeAddress string `mapstructure:"-"`

	// Failover is the agent-wide failover rule (catalog.ParseFailover: a
	// list of datacenters and nearest:N items): where a service name is
	// answered from when this datacenter has no healthy instance of it in
	// any tier and none of its instances sets the chorus-failover meta.
	// "" = no failover.
	Failover string `mapstructure:"failover"`

	// Recursors are "ip" or "ip:port" upstreams (port 53 by default),
	// asked in order for names outside the domains. Empty: REFUSED.
	Recursors []string `mapstructure:"recursors"`

	// Options are the dns.* settings; their fields are promoted.
	Options `mapstructure:"dns"`
}

// Options are the DNS server's settings under the dns.* config keys.
type Options struct {
	// RecursorTimeout bounds each attempt; 0 means 2s.
	RecursorTimeout time.Duration `mapstructure:"recursor_timeout"`

	// NodeTTL is the TTL of node, .addr, NS and glue records.
	NodeTTL time.Duration `mapstructure:"node_ttl"`
	// ServiceTTL is the TTL of service records unless ServiceTTLs or a
	// chorus-ttl meta says otherwise.
	ServiceTTL time.Duration `mapstructure:"service_ttl"`
	// ServiceTTLs maps a service name to its TTL. A key ending in "*" is a
	// prefix and "*" alone matches every service; an exact key wins over
	// prefixes, and the longest prefix wins (Consul's service_ttl).
	ServiceTTLs map[string]time.Duration `mapstructure:"service_ttls"`

	// OnlyPassing excludes instances in the warning state.
	OnlyPassing bool `mapstructure:"only_passing"`
	// Policy orders answers: random (default), round-robin, least-loaded,
	// nearest or hash.
	Policy string `mapstructure:"policy"`
	// ZoneFailover lets answers fall back to other zones when the agent's
	// zone has no healthy instance. When false, answers never leave the
	// zone. Default true.
	ZoneFailover bool `mapstructure:"zone_failover"`
	// ARecordLimit caps the A/AAAA records of one answer; 0 = no cap.
	ARecordLimit int `mapstructure:"a_record_limit"`
	// UDPAnswerLimit caps the answer records of UDP replies to clients
	// without EDNS0 (Consul's udp_answer_limit); 0 = no cap.
	UDPAnswerLimit int `mapstructure:"udp_answer_limit"`
	// MaxUDPSize caps the EDNS0 UDP payload size the server honours and
	// advertises; 0 means 1232.
	MaxUDPSize int `mapstructure:"max_udp_size"`
	// SOA holds the SOA timers.
	SOA SOAConfig `mapstructure:"soa"`
	// DNSSD enables unicast DNS-SD (RFC 6763) browsing names.
	DNSSD bool `mapstructure:"dnssd"`
	// RateLimit caps queries per second from one source (an IPv4 address
	// or an IPv6 /64); excess queries get REFUSED. 0 = no limit.
	RateLimit int `mapstructure:"rate_limit"`
	// RateLimitBurst is how many queries a source may send at once before
	// the rate applies; at least RateLimit.
	RateLimitBurst int `mapstructure:"rate_limit_burst"`
}

// DefaultConfig returns the defaults: domain chorus., datacenter dc1,
// random policy, zone failover on, TTLs 0, EDNS0 cap 1232 bytes, SOA timers
// 3600/600/86400 and a negative TTL of 5 s, no recursors.
func DefaultConfig() Config {
	return Config{
		Domain:     DefaultDomain,
		Datacenter: DefaultDatacenter,
		Options: Options{
			RecursorTimeout: DefaultRecursorTimeout,
			Policy:          PolicyRandom,
			ZoneFailover:    true,
			MaxUDPSize:      DefaultMaxUDPSize,
			SOA:             SOAConfig{Refresh: 3600, Retry: 600, Expire: 86400, MinTTL: 5},
		},
	}
}

// Validate checks c and returns an error naming the first offending key,
// e.g. `dns.policy: unknown policy "x"`. It does not modify c.
func (c Config) Validate() error {
	_, err := compile(c)
	return err
}

// policyKind is a parsed policy name.
type policyKind uint8

const (
	policyRandom policyKind = iota
	policyRoundRobin
	policyLeastLoaded
	policyNearest
	policyHash
)

func parsePolicy(s string) (policyKind, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", PolicyRandom:
		return policyRandom, true
	case PolicyRoundRobin, "round_robin", "roundrobin":
		return policyRoundRobin, true
	case PolicyLeastLoaded, "least_loaded":
		return policyLeastLoaded, true
	case PolicyNearest:
		return policyNearest, true
	case PolicyHash:
		return policyHash, true
	}
	return 0, false
}

// runtime is a validated, normalised Config with everything the query
// path needs precomputed. It is immutable once built.
type runtime struct {
	cfg       Config
	domains   []string // lower-case FQDNs; [0] is the primary domain
	recursors []string // "ip:port"
	rtimeout  time.Duration
	policy    policyKind
	nodeTTL   uint32
	svcTTL    uint32
	ttlExact  map[string]uint32
	ttlPrefix []prefixTTL // longest prefix first
	maxUDP    int
	zone      string // lower-case
	dc        string // lower-case
	failover  catalog.Failover
	// nsLabels is the wire form of "<node>.node" (no terminator): the NS
	// and SOA MNAME relative to the domain.
	nsLabels []byte
	nsAddr   netip.Addr   // NodeAddress, invalid when unset
	limiter  *rateLimiter // nil: no rate limit
}

type prefixTTL struct {
	prefix string
	ttl    uint32
}

// compile validates c and builds its runtime form.
func compile(c Config) (*runtime, error) {
	rt := &runtime{cfg: c}
	d, err := normaliseDomain("domain", c.Domain)
	if err != nil {
		return nil, err
	}
	if d == "" {
		return nil, fmt.Errorf("domain: must not be empty")
	}
	rt.domains = []string{d}
	if c.AltDomain != "" {
		a, err := normaliseDomain("alt_domain", c.AltDomain)
		if err != nil {
			return nil, err
		}
		if a == d {
			return nil, fmt.Errorf("alt_domain: %q is the same as domain", c.AltDomain)
		}
		rt.domains = append(rt.domains, a)
	}
	rt.cfg.Domain = d
	rt.cfg.AltDomain = ""
	if len(rt.domains) > 1 {
		rt.cfg.AltDomain = rt.domains[1]
	}

	if c.NodeName != "" {
		if _, ok := dns.IsDomainName(c.NodeName); !ok || strings.ContainsAny(c.NodeName, "\\ ") {
			return nil, fmt.Errorf("node: %q is not a valid DNS name", c.NodeName)
		}
	}
	node := strings.TrimSuffix(c.NodeName, ".")
	if node == "" {
		node = "ns"
	}
	rt.nsLabels = appendLabels(nil, node+".node")
	// "<node>.node.<domain>." must fit in 255 bytes for every domain.
	for _, dom := range rt.domains {
		if len(rt.nsLabels)+len(dom)+1 > 255 {
			return nil, fmt.Errorf("node: %q is too long to form a name under %q", c.NodeName, dom)
		}
	}
	if c.Datacenter != "" {
		if err := checkLabel(c.Datacenter); err != nil {
			return nil, fmt.Errorf("datacenter: %q %v", c.Datacenter, err)
		}
	}
	rt.dc = strings.ToLower(c.Datacenter)
	if rt.failover, err = catalog.ParseFailover(c.Failover); err != nil {
		return nil, fmt.Errorf("failover: %v", err)
	}
	rt.zone = strings.ToLower(c.Zone)
	if c.NodeAddress != "" {
		a, err := netip.ParseAddr(c.NodeAddress)
		if err != nil {
			return nil, fmt.Errorf("advertise: %q is not an IP address", c.NodeAddress)
		}
		rt.nsAddr = a.Unmap()
	}

	for i, r := range c.Recursors {
		hp, err := normaliseRecursor(r)
		if err != nil {
			return nil, fmt.Errorf("recursors[%d]: %w", i, err)
		}
		rt.recursors = append(rt.recursors, hp)
	}
	rt.cfg.Recursors = append([]string(nil), rt.recursors...)
	switch {
	case c.RecursorTimeout < 0:
		return nil, fmt.Errorf("dns.recursor_timeout: %s is negative", c.RecursorTimeout)
	case c.RecursorTimeout == 0:
		rt.rtimeout = DefaultRecursorTimeout
	default:
		rt.rtimeout = c.RecursorTimeout
	}
	rt.cfg.RecursorTimeout = rt.rtimeout

	if rt.nodeTTL, err = ttlSeconds("dns.node_ttl", c.NodeTTL); err != nil {
		return nil, err
	}
	if rt.svcTTL, err = ttlSeconds("dns.service_ttl", c.ServiceTTL); err != nil {
		return nil, err
	}
	rt.ttlExact = make(map[string]uint32)
	rt.cfg.ServiceTTLs = make(map[string]time.Duration, len(c.ServiceTTLs))
	for _, k := range slices.Sorted(maps.Keys(c.ServiceTTLs)) { // the first bad key, in a stable order
		v := c.ServiceTTLs[k]
		key := "dns.service_ttls." + k
		t, err := ttlSeconds(key, v)
		if err != nil {
			return nil, err
		}
		lk := strings.ToLower(k)
		rt.cfg.ServiceTTLs[k] = v
		switch {
		case lk == "":
			return nil, fmt.Errorf("dns.service_ttls: empty service name")
		case strings.HasSuffix(lk, "*"):
			p := strings.TrimSuffix(lk, "*")
			if strings.Contains(p, "*") {
				return nil, fmt.Errorf("%s: '*' is allowed only at the end", key)
			}
			rt.ttlPrefix = append(rt.ttlPrefix, prefixTTL{prefix: p, ttl: t})
		case strings.Contains(lk, "*"):
			return nil, fmt.Errorf("%s: '*' is allowed only at the end", key)
		default:
			rt.ttlExact[lk] = t
		}
	}
	sort.Slice(rt.ttlPrefix, func(i, j int) bool {
		a, b := rt.ttlPrefix[i].prefix, rt.ttlPrefix[j].prefix
		if len(a) != len(b) {
			return len(a) > len(b)
		}
		return a < b
	})

	p, ok := parsePolicy(c.Policy)
	if !ok {
		return nil, fmt.Errorf("dns.policy: unknown policy %q (want random, round-robin, least-loaded, nearest or hash)", c.Policy)
	}
	rt.policy = p
	if c.ARecordLimit < 0 {
		return nil, fmt.Errorf("dns.a_record_limit: %d is negative", c.ARecordLimit)
	}
	if c.RateLimit < 0 || c.RateLimitBurst < 0 {
		return nil, fmt.Errorf("dns.rate_limit and dns.rate_limit_burst must not be negative")
	}
	rt.limiter = newRateLimiter(c.RateLimit, c.RateLimitBurst)
	if c.UDPAnswerLimit < 0 {
		return nil, fmt.Errorf("dns.udp_answer_limit: %d is negative", c.UDPAnswerLimit)
	}
	switch {
	case c.MaxUDPSize == 0:
		rt.maxUDP = DefaultMaxUDPSize
	case c.MaxUDPSize < dns.MinMsgSize || c.MaxUDPSize > dns.MaxMsgSize:
		return nil, fmt.Errorf("dns.max_udp_size: %d is outside 512–65535", c.MaxUDPSize)
	default:
		rt.maxUDP = c.MaxUDPSize
	}
	rt.cfg.MaxUDPSize = rt.maxUDP
	for _, f := range []struct {
		key string
		v   uint32
	}{{"dns.soa.refresh", c.SOA.Refresh}, {"dns.soa.retry", c.SOA.Retry}, {"dns.soa.expire", c.SOA.Expire}, {"dns.soa.min_ttl", c.SOA.MinTTL}} {
		if f.v > maxTTL {
			return nil, fmt.Errorf("%s: %d is larger than %d", f.key, f.v, maxTTL)
		}
	}
	return rt, nil
}

// normaliseDomain returns d as a lower-case FQDN, "" for "".
func normaliseDomain(key, d string) (string, error) {
	d = strings.TrimSpace(d)
	if d == "" {
		return "", nil
	}
	d = strings.ToLower(dns.Fqdn(d))
	if d == "." {
		return "", fmt.Errorf("%s: the root cannot be the domain", key)
	}
	if _, ok := dns.IsDomainName(d); !ok || len(d) > 200 {
		return "", fmt.Errorf("%s: %q is not a valid domain name of at most 200 characters", key, d)
	}
	for _, l := range strings.Split(strings.TrimSuffix(d, "."), ".") {
		if err := checkLabel(l); err != nil {
			return "", fmt.Errorf("%s: %q %v", key, d, err)
		}
	}
	return d, nil
}

// checkLabel accepts letters, digits, '-' and '_' labels of 1–63 bytes.
func checkLabel(l string) error {
	if l == "" || len(l) > 63 {
		return fmt.Errorf("has a label of %d characters (want 1–63)", len(l))
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("has the character %q (letters, digits, '-' and '_' only)", c)
		}
	}
	return nil
}

// normaliseRecursor turns "ip" or "ip:port" into "ip:port".
func normaliseRecursor(r string) (string, error) {
	r = strings.TrimSpace(r)
	if a, err := netip.ParseAddr(strings.Trim(r, "[]")); err == nil {
		return net.JoinHostPort(a.String(), "53"), nil
	}
	host, port, err := net.SplitHostPort(r)
	if err != nil {
		return "", fmt.Errorf("%q is not ip or ip:port", r)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return "", fmt.Errorf("%q: %q is not an IP address", r, host)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("%q: port %q is not 1–65535", r, port)
	}
	return net.JoinHostPort(a.String(), strconv.Itoa(p)), nil
}

// ttlSeconds converts a TTL duration to whole seconds.
func ttlSeconds(key string, d time.Duration) (uint32, error) {
	if d < 0 {
		return 0, fmt.Errorf("%s: %s is negative", key, d)
	}
	s := d / time.Second
	if s > maxTTL {
		return 0, fmt.Errorf("%s: %s is longer than %d seconds", key, d, maxTTL)
	}
	return uint32(s), nil
}

// serviceTTL returns the configured TTL of the service called name
// (lower case): exact key, then longest prefix, then ServiceTTL.
func (rt *runtime) serviceTTL(name string) uint32 {
	if t, ok := rt.ttlExact[name]; ok {
		return t
	}
	for _, p := range rt.ttlPrefix {
		if strings.HasPrefix(name, p.prefix) {
			return p.ttl
		}
	}
	return rt.svcTTL
}
