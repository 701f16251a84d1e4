package checks

import (
	"fmt"
	"net"
	"net/url"
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
)

// Definition is one check as Consul defines it; field names match Consul's JSON so
// the agent can decode straight into it or map into it. Durations are
// time.Duration here: the agent parses strings such as "10s".
//
// Exactly one kind must be set: HTTP, TCP, GRPC, TTL or Args (script).
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

	// TCP is the "host:port" of a TCP connect check.
	TCP string

	// GRPC is "host:port" or "host:port/service" of a grpc.health.v1 check.
	GRPC       string
	GRPCUseTLS bool

	// TTL makes a TTL check: critical unless updated through Manager.UpdateTTL
	// at least once per TTL.
	TTL time.Duration

	// Args is the command line of a script check, run directly (no shell).
	Args []string

	// Interval is the time between probes (required, at least MinInterval, for
	// every kind but TTL). Timeout bounds one probe: DefaultTimeout when zero,
	// as set otherwise, whatever the Interval (as Consul); a probe that
	// outlasts the Interval delays the next one, never overlaps it.
	Interval time.Duration
	Timeout  time.Duration

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

// Type returns the kind of check: "http", "tcp", "grpc", "ttl" or "script", or
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
	if d.GRPC != "" {
		ks = append(ks, kind{"GRPC", TypeGRPC})
	}
	if d.TTL != 0 {
		ks = append(ks, kind{"TTL", TypeTTL})
	}
	if len(d.Args) > 0 {
		ks = append(ks, kind{"Args", TypeScript})
	}
	return ks
}

// invalid builds a validation error naming the field; it wraps ErrInvalid.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
}

// Validate reports the first problem of d under cfg as an error wrapping
// ErrInvalid (and ErrScriptDisabled for a script check while script checks are
// off) whose message names the field. It does not require ID, which the agent
// may assign after validating; Manager.Add does. Validate does not modify d.
func (d *Definition) Validate(cfg Config) error {
	ks := d.kinds()
	switch len(ks) {
	case 0:
		return fmt.Errorf("%w: no check type: set one of HTTP, TCP, GRPC, TTL or Args", ErrInvalid)
	case 1:
	default:
		names := make([]string, len(ks))
		for i, k := range ks {
			names[i] = k.field
		}
		return fmt.Errorf("%w: %s are set at once: a check has exactly one type", ErrInvalid, strings.Join(names, " and "))
	}
	typ := ks[0].typ

	if typ == TypeTTL {
		if d.TTL < 0 {
			return invalid("TTL", "%s is negative", d.TTL)
		}
	} else {
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
	for name := range d.Header {
		if !isToken(name) {
			return invalid("Header", "%q is not a valid header name", name)
		}
	}
	return nil
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
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
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
