package checks

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Status values of a check, as in Consul.
const (
	StatusPassing  = "passing"
	StatusWarning  = "warning"
	StatusCritical = "critical"
)

// Check types returned by Definition.Type.
const (
	TypeHTTP   = "http"
	TypeTCP    = "tcp"
	TypeGRPC   = "grpc"
	TypeTTL    = "ttl"
	TypeScript = "script"

	TypeDocker    = "docker"
	TypeUDP       = "udp"
	TypeH2Ping    = "h2ping"
	TypeAlias     = "alias"
	TypeOSService = "os_service"
)

// Definition is one check as Consul defines it; field names match Consul's JSON so
// the agent can decode straight into it or map into it. Durations are
// time.Duration here: the agent parses strings such as "10s".
//
// Exactly one kind must be set: HTTP, TCP, UDP, GRPC, H2PING, TTL, Args
// (script), DockerContainerID (with Args), AliasNode/AliasService or
// OSService.
type Definition struct {
	ID    string
	Name  string
	Notes string

	// ServiceID is the service the check belongs to; "" for a node-level check.
	ServiceID string

	// HTTP is the URL of an HTTP check; Method (GET when empty), Header, Body,
	// DisableRedirects, TLSSkipVerify and TLSServerName shape its request.
	HTTP             string
	Method           string
	Header           map[string][]string
	Body             string
	DisableRedirects bool
	TLSSkipVerify    bool // also honoured by gRPC checks with GRPCUseTLS
	TLSServerName    string

	// TCP is the "host:port" of a TCP connect check; with TCPUseTLS the
	// check also completes a TLS handshake (TLSSkipVerify, TLSServerName).
	TCP       string
	TCPUseTLS bool

	// GRPC is "host:port" or "host:port/service" of a grpc.health.v1 check.
	GRPC       string
	GRPCUseTLS bool

	// TTL makes a TTL check: critical unless updated through Manager.UpdateTTL
	// at least once per TTL.
	TTL time.Duration

	// Args is the command line of a script check, run directly (no shell),
	// or, with DockerContainerID, of a Docker check.
	Args []string

	// DockerContainerID makes a Docker check: Args run inside that
	// container through the Docker Engine API (Config.DockerSocket), exit
	// codes as for a script check. Shell is carried as Consul does, which
	// uses it only for its removed Script field: with Args it has no
	// effect.
	DockerContainerID string
	Shell             string

	// UDP is the "host:port" of a UDP check: an empty datagram is sent, and
	// the check passes unless an error (an ICMP port unreachable) comes
	// back before the Timeout; any reply also passes.
	UDP string

	// H2PING is the "host:port" of an HTTP/2 PING check, over TLS (with
	// TLSSkipVerify and TLSServerName) when H2PingUseTLS is set, else
	// over cleartext HTTP/2 (h2c with prior knowledge).
	H2PING       string
	H2PingUseTLS bool

	// AliasNode and AliasService make an alias check: its status follows
	// the checks of service instance AliasService (a service ID) on node
	// AliasNode ("" = this agent's node), or of the whole node when
	// AliasService is empty, as the catalog (Config.Catalog) holds them.
	// It takes no Interval: it changes when the catalog does.
	AliasNode    string
	AliasService string

	// OSService names a service of the operating system's service manager
	// (a systemd unit on Linux): passing while it is active.
	OSService string

	// Interval is the time between probes (required, at least MinInterval, for
	// every kind but TTL). Timeout bounds one probe: DefaultTimeout when zero,
	// as set otherwise, whatever the Interval (as Consul); a probe that
	// outlasts the Interval delays the next one, never overlaps it.
	Interval time.Duration
	Timeout  time.Duration

	// OutputMaxSize, when positive, lowers the bytes of output this check
	// keeps below Config.OutputMaxSize (it never raises it), as Consul's
	// per-check output_max_size does.
	OutputMaxSize int

	// Status is the status before the first result: "" means critical, as Consul.
	Status string

	// SuccessBeforePassing, FailuresBeforeWarning and FailuresBeforeCritical damp
	// flapping as Consul's StatusHandler does (see statusHandler). They do not
	// apply to TTL checks. FailuresBeforeWarning defaults to FailuresBeforeCritical.
	SuccessBeforePassing   int
	FailuresBeforeWarning  int
	FailuresBeforeCritical int

	// DeregisterCriticalServiceAfter is carried for the agent, which owns the
	// check's status and critical-since time; the Manager does not use it.
	DeregisterCriticalServiceAfter time.Duration
}

// Type returns the kind of check: "http", "tcp", "udp", "grpc", "h2ping",
// "ttl", "script", "docker", "alias" or "os_service" (Consul's names), or
// "" when no kind is set. With several kinds set (which Validate rejects), the
// first of that order wins.
func (d *Definition) Type() string {
	if kinds := d.kinds(); len(kinds) > 0 {
		return kinds[0].typ
	}
	return ""
}

type kind struct{ field, typ string }

func (d *Definition) kinds() []kind {
	var ks []kind
	if d.HTTP != "" {
		ks = append(ks, kind{"HTTP", TypeHTTP})
	}
	if d.TCP != "" {
		ks = append(ks, kind{"TCP", TypeTCP})
	}
	if d.UDP != "" {
		ks = append(ks, kind{"UDP", TypeUDP})
	}
	if d.GRPC != "" {
		ks = append(ks, kind{"GRPC", TypeGRPC})
	}
	if d.H2PING != "" {
		ks = append(ks, kind{"H2PING", TypeH2Ping})
	}
	if d.TTL != 0 {
		ks = append(ks, kind{"TTL", TypeTTL})
	}
	switch {
	case d.DockerContainerID != "":
		// Args are the Docker check's command, not a script of their own.
		ks = append(ks, kind{"DockerContainerID", TypeDocker})
	case len(d.Args) > 0:
		ks = append(ks, kind{"Args", TypeScript})
	}
	if d.AliasNode != "" || d.AliasService != "" {
		ks = append(ks, kind{"AliasNode/AliasService", TypeAlias})
	}
	if d.OSService != "" {
		ks = append(ks, kind{"OSService", TypeOSService})
	}
	return ks
}

// invalid builds a validation error naming the field; it wraps ErrInvalid.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
}

// Validate reports the first problem of d under cfg as an error wrapping
// ErrInvalid (and ErrScriptDisabled for a script check, ErrDockerDisabled for
// a Docker check, while script checks are off) whose message names the field. It does not require ID, which the agent
// may assign after validating; Manager.Add does. Validate does not modify d.
func (d *Definition) Validate(cfg Config) error {
	ks := d.kinds()
	switch len(ks) {
	case 0:
		return fmt.Errorf("%w: no check type: set one of HTTP, TCP, UDP, GRPC, H2PING, TTL, Args, DockerContainerID, AliasNode/AliasService or OSService", ErrInvalid)
	case 1:
	default:
		names := make([]string, len(ks))
		for i, k := range ks {
			names[i] = k.field
		}
		return fmt.Errorf("%w: %s are set at once: a check has exactly one type", ErrInvalid, strings.Join(names, " and "))
	}
	typ := ks[0].typ

	switch typ {
	case TypeTTL:
		if d.TTL < 0 {
			return invalid("TTL", "%s is negative", d.TTL)
		}
	case TypeAlias:
		// Follows the catalog: no Interval (Consul ignores one).
	default:
		switch {
		case d.Interval == 0:
			return invalid("Interval", "required for %s checks", typ)
		case d.Interval < MinInterval:
			return invalid("Interval", "%s is under the minimum of %s", d.Interval, MinInterval)
		}
	}
	if d.Timeout < 0 {
		return invalid("Timeout", "%s is negative", d.Timeout)
	}

	switch typ {
	case TypeHTTP:
		if err := validateHTTP(d); err != nil {
			return err
		}
	case TypeTCP:
		if err := validateHostPort(d.TCP); err != nil {
			return invalid("TCP", "%q is not host:port: %v", d.TCP, err)
		}
	case TypeGRPC:
		addr, _, _ := strings.Cut(d.GRPC, "/")
		if err := validateHostPort(addr); err != nil {
			return invalid("GRPC", "%q is not host:port or host:port/service: %v", d.GRPC, err)
		}
	case TypeScript:
		if !cfg.EnableScriptChecks {
			return fmt.Errorf("%w: Args: %w", ErrInvalid, ErrScriptDisabled)
		}
		if d.Args[0] == "" {
			return invalid("Args", "the command (Args[0]) is empty")
		}
	case TypeUDP:
		if err := validateHostPort(d.UDP); err != nil {
			return invalid("UDP", "%q is not host:port: %v", d.UDP, err)
		}
	case TypeH2Ping:
		if err := validateHostPort(d.H2PING); err != nil {
			return invalid("H2PING", "%q is not host:port: %v", d.H2PING, err)
		}
	case TypeDocker:
		if err := validateDocker(d, cfg); err != nil {
			return err
		}
	case TypeAlias:
		for _, f := range []struct{ field, v string }{{"AliasNode", d.AliasNode}, {"AliasService", d.AliasService}} {
			if len(f.v) > 256 || strings.ContainsAny(f.v, "/\x00") {
				return invalid(f.field, "%.64q is not a node name or service ID (at most 256 bytes, no '/')", f.v)
			}
		}
	case TypeOSService:
		if !validUnitName(d.OSService) {
			return invalid("OSService", "%q is not a service name (letters, digits and @ . _ : - \\, not starting with -, at most 256 bytes)", d.OSService)
		}
	}

	switch d.Status {
	case "", StatusPassing, StatusWarning, StatusCritical:
	default:
		return invalid("Status", "%q is not one of passing, warning, critical", d.Status)
	}
	for _, c := range []struct {
		field string
		n     int
	}{
		{"SuccessBeforePassing", d.SuccessBeforePassing},
		{"FailuresBeforeWarning", d.FailuresBeforeWarning},
		{"FailuresBeforeCritical", d.FailuresBeforeCritical},
		{"OutputMaxSize", d.OutputMaxSize},
	} {
		if c.n < 0 {
			return invalid(c.field, "%d is negative", c.n)
		}
	}
	if d.DeregisterCriticalServiceAfter < 0 {
		return invalid("DeregisterCriticalServiceAfter", "%s is negative", d.DeregisterCriticalServiceAfter)
	}
	return nil
}

func validateHTTP(d *Definition) error {
	u, err := url.Parse(d.HTTP)
	if err != nil {
		return invalid("HTTP", "%q is not a URL: %v", d.HTTP, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalid("HTTP", "%q: the scheme must be http or https", d.HTTP)
	}
	if u.Host == "" {
		return invalid("HTTP", "%q has no host", d.HTTP)
	}
	if d.Method != "" && !isToken(d.Method) {
		return invalid("Method", "%q is not an HTTP method", d.Method)
	}
	for _, name := range slices.Sorted(maps.Keys(d.Header)) { // the first bad name, in a stable order
		if !isToken(name) {
			return invalid("Header", "%q is not a valid header name", name)
		}
	}
	return nil
}

// validateDocker checks a Docker check: Args are required, the container
// ID is a container name or ID, and Docker checks, which run commands,
// are allowed only where script checks are.
func validateDocker(d *Definition, cfg Config) error {
	if !cfg.EnableScriptChecks {
		return fmt.Errorf("%w: DockerContainerID: %w", ErrInvalid, ErrDockerDisabled)
	}
	if len(d.Args) == 0 || d.Args[0] == "" {
		return invalid("Args", "required for a Docker check: the command run in container %q", d.DockerContainerID)
	}
	if !validContainerRef(d.DockerContainerID) {
		return invalid("DockerContainerID", "%q is not a container ID or name", d.DockerContainerID)
	}
	return nil
}

// validContainerRef reports whether s is a Docker container ID or name:
// [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 256 bytes (a leading "/" of a name
// as Docker lists it is allowed).
func validContainerRef(s string) bool {
	s = strings.TrimPrefix(s, "/")
	return s != "" && len(s) <= 256 && alnumOr(s[:1], "") && alnumOr(s[1:], "_.-")
}

// validUnitName reports whether s can name a systemd unit (or a Windows
// service): letters, digits and "@._:-\", not starting with "-" (it
// would read as an option), at most 256 bytes.
func validUnitName(s string) bool {
	return s != "" && len(s) <= 256 && s[0] != '-' && alnumOr(s, "@._:-\\")
}

func validateHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("missing host")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token (a method or header name).
func isToken(s string) bool {
	return s != "" && alnumOr(s, "!#$%&'*+-.^_`|~")
}

// alnumOr reports whether every byte of s is an ASCII letter, an ASCII
// digit or one of extra (true for "").
func alnumOr(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte(extra, c) >= 0:
		default:
			return false
		}
	}
	return true
}

// withDefaults returns a deep copy of d with the defaults applied: Method GET,
// Timeout DefaultTimeout, Status critical.
func (d *Definition) withDefaults() Definition {
	c := *d
	if c.Header != nil {
		h := make(map[string][]string, len(c.Header))
		for k, v := range c.Header {
			h[k] = append([]string(nil), v...)
		}
		c.Header = h
	}
	c.Args = append([]string(nil), c.Args...)
	if c.HTTP != "" && c.Method == "" {
		c.Method = "GET"
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Status == "" {
		c.Status = StatusCritical
	}
	if c.FailuresBeforeWarning == 0 {
		c.FailuresBeforeWarning = c.FailuresBeforeCritical
	}
	return c
}
