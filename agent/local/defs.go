package local

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/checks"
)

// ServiceDefinition is a service registration as Consul's
// /v1/agent/service/register takes it, and as service definition files
// hold it. Field names follow Consul; snake_case spellings are accepted too.
type ServiceDefinition struct {
	ID      string            `json:"ID,omitempty"`
	Name    string            `json:"Name"`
	Tags    []string          `json:"Tags,omitempty"`
	Address string            `json:"Address,omitempty"`
	Port    int               `json:"Port,omitempty"`
	Meta    map[string]string `json:"Meta,omitempty"`
	Weights *catalog.Weights  `json:"Weights,omitempty"`
	Check   *CheckDefinition  `json:"Check,omitempty"`
	Checks  []CheckDefinition `json:"Checks,omitempty"`

	// Consul's other registration fields (servicefields.go).
	serviceConsulFields
}

// CheckDefinition is a health check as Consul's API and definition files
// spell it, inside a service registration or on its own through
// /v1/agent/check/register.
type CheckDefinition struct {
	ID                             string              `json:"ID,omitempty"`
	CheckID                        string              `json:"CheckID,omitempty"`
	Name                           string              `json:"Name,omitempty"`
	Notes                          string              `json:"Notes,omitempty"`
	ServiceID                      string              `json:"ServiceID,omitempty"`
	Status                         string              `json:"Status,omitempty"`
	HTTP                           string              `json:"HTTP,omitempty"`
	Method                         string              `json:"Method,omitempty"`
	Header                         map[string][]string `json:"Header,omitempty"`
	Body                           string              `json:"Body,omitempty"`
	TLSServerName                  string              `json:"TLSServerName,omitempty"`
	TLSSkipVerify                  bool                `json:"TLSSkipVerify,omitempty"`
	TCP                            string              `json:"TCP,omitempty"`
	GRPC                           string              `json:"GRPC,omitempty"`
	GRPCUseTLS                     bool                `json:"GRPCUseTLS,omitempty"`
	TTL                            Duration            `json:"TTL,omitempty"`
	Args                           []string            `json:"Args,omitempty"`
	ScriptArgs                     []string            `json:"ScriptArgs,omitempty"`
	Interval                       Duration            `json:"Interval,omitempty"`
	Timeout                        Duration            `json:"Timeout,omitempty"`
	SuccessBeforePassing           int                 `json:"SuccessBeforePassing,omitempty"`
	FailuresBeforeWarning          int                 `json:"FailuresBeforeWarning,omitempty"`
	FailuresBeforeCritical         int                 `json:"FailuresBeforeCritical,omitempty"`
	DeregisterCriticalServiceAfter Duration            `json:"DeregisterCriticalServiceAfter,omitempty"`

	// Check types and fields beyond the first five (checktypes.go).
	checkTypeFields
}

// Duration decodes Consul's durations: a Go duration string ("10s"), or a
// number of nanoseconds. It encodes as a string.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*d = 0
			return nil
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q (want e.g. \"10s\" or \"500ms\")", s)
		}
		*d = Duration(v)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("invalid duration %s (want e.g. \"10s\")", b)
	}
	*d = Duration(n)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// snakeAliases maps snake_case and lower-case spellings of definition keys
// onto Consul's CamelCase field names. Keys inside Meta and Header are
// user data and never renamed.
var snakeAliases = map[string]string{
	"id": "ID", "name": "Name", "tags": "Tags", "address": "Address", "port": "Port",
	"meta": "Meta", "weights": "Weights", "check": "Check", "checks": "Checks",
	"passing": "Passing", "warning": "Warning",
	"check_id": "CheckID", "checkid": "CheckID", "notes": "Notes", "service_id": "ServiceID",
	"serviceid": "ServiceID", "status": "Status", "http": "HTTP", "method": "Method",
	"header": "Header", "body": "Body", "tls_server_name": "TLSServerName",
	"tls_skip_verify": "TLSSkipVerify", "tcp": "TCP", "grpc": "GRPC", "grpc_use_tls": "GRPCUseTLS",
	"ttl": "TTL", "args": "Args", "script_args": "ScriptArgs", "scriptargs": "ScriptArgs",
	"interval": "Interval", "timeout": "Timeout",
	"success_before_passing": "SuccessBeforePassing", "failures_before_critical": "FailuresBeforeCritical",
	"failures_before_warning":           "FailuresBeforeWarning",
	"deregister_critical_service_after": "DeregisterCriticalServiceAfter",
	// checktypes.go
	"udp": "UDP", "h2ping": "H2PING", "h2ping_use_tls": "H2PingUseTLS", "h2pingusetls": "H2PingUseTLS",
	"docker_container_id": "DockerContainerID", "dockercontainerid": "DockerContainerID", "shell": "Shell",
	"alias_node": "AliasNode", "aliasnode": "AliasNode", "alias_service": "AliasService", "aliasservice": "AliasService",
	"os_service": "OSService", "osservice": "OSService", "disable_redirects": "DisableRedirects",
	"disableredirects": "DisableRedirects", "tcp_use_tls": "TCPUseTLS", "tcpusetls": "TCPUseTLS",
	"output_max_size": "OutputMaxSize", "outputmaxsize": "OutputMaxSize", "script": "Script",
}

// userMaps are keys whose values are user maps, left as they are.
var userMaps = map[string]bool{"Meta": true, "Header": true}

// normalizeKeys renames snake_case keys to CamelCase throughout v.
func normalizeKeys(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, val := range t {
			nk := k
			if a, ok := snakeAliases[strings.ToLower(k)]; ok {
				nk = a
			}
			if userMaps[nk] {
				out[nk] = val
				continue
			}
			out[nk] = normalizeKeys(val)
		}
		return out
	case []any:
		for i := range t {
			t[i] = normalizeKeys(t[i])
		}
		return t
	}
	return v
}

// DecodeDefinition decodes JSON (CamelCase or snake_case keys) into dst,
// which must be a pointer to ServiceDefinition or CheckDefinition. With
// strict set, unknown keys are an error; the HTTP API ignores them as
// Consul does so that clients sending fields Chorus does not use work.
func DecodeDefinition(raw []byte, dst any, strict bool) error {
	var generic any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		return JSONError(err)
	}
	if dec.More() {
		return errors.New("malformed JSON: trailing data after the object")
	}
	if _, ok := generic.(map[string]any); !ok {
		return errors.New("malformed JSON: expected an object")
	}
	norm, err := json.Marshal(normalizeKeys(generic))
	if err != nil {
		return err
	}
	dec = json.NewDecoder(bytes.NewReader(norm))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(dst); err != nil {
		return JSONError(err)
	}
	return nil
}

// JSONError turns encoding/json errors into messages naming the problem.
func JSONError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		return fmt.Errorf("field %q: expected %s, got %s", te.Field, te.Type, te.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("malformed JSON: empty or truncated body")
	}
	return fmt.Errorf("invalid request body: %v", err)
}

// Build validates the definition and returns the catalog service and the
// check definitions it implies, with Consul's check IDs:
// "service:<id>" for one check, "service:<id>:<n>" (from 1) for several.
func (d *ServiceDefinition) Build(scriptChecks bool) (catalog.Service, []checks.Definition, error) {
	svc := catalog.Service{
		ID:      d.ID,
		Name:    d.Name,
		Tags:    append([]string(nil), d.Tags...),
		Address: d.Address,
		Port:    d.Port,
		Meta:    d.Meta,
	}
	if d.Weights != nil {
		svc.Weights = *d.Weights
		if svc.Weights.Passing == 0 {
			svc.Weights.Passing = 1
		}
	}
	if err := d.serviceConsulFields.apply(d.Port, &svc); err != nil {
		return catalog.Service{}, nil, err
	}
	if err := svc.Validate(); err != nil {
		return catalog.Service{}, nil, err
	}
	var all []CheckDefinition
	if d.Check != nil {
		all = append(all, *d.Check)
	}
	all = append(all, d.Checks...)
	defs := make([]checks.Definition, 0, len(all))
	for i := range all {
		c := all[i]
		id := c.checkID()
		if id == "" {
			id = "service:" + svc.ID
			if len(all) > 1 {
				id = fmt.Sprintf("service:%s:%d", svc.ID, i+1)
			}
		}
		if c.Name == "" {
			c.Name = "Service '" + svc.Name + "' check"
		}
		c.ServiceID = svc.ID
		def, err := c.build(id, scriptChecks)
		if err != nil {
			return catalog.Service{}, nil, fmt.Errorf("check %q: %w", id, err)
		}
		defs = append(defs, def)
	}
	seen := map[string]bool{}
	for _, def := range defs {
		if seen[def.ID] {
			return catalog.Service{}, nil, fmt.Errorf("check ID %q appears twice: %w", def.ID, catalog.ErrInvalid)
		}
		seen[def.ID] = true
	}
	return svc, defs, nil
}

func (c *CheckDefinition) checkID() string {
	if c.CheckID != "" {
		return c.CheckID
	}
	return c.ID
}

// build validates the check and maps it onto a checks.Definition.
func (c *CheckDefinition) build(id string, scriptChecks bool) (checks.Definition, error) {
	if id == "" {
		return checks.Definition{}, fmt.Errorf("CheckID (or Name) is required: %w", catalog.ErrInvalid)
	}
	if len(id) > 256 || strings.ContainsAny(id, "/\x00") {
		return checks.Definition{}, fmt.Errorf("CheckID %q must be at most 256 characters without '/': %w", id, catalog.ErrInvalid)
	}
	args := c.Args
	if len(args) == 0 {
		args = c.ScriptArgs
	}
	def := checks.Definition{
		ID:                             id,
		Name:                           c.Name,
		Notes:                          c.Notes,
		ServiceID:                      c.ServiceID,
		HTTP:                           c.HTTP,
		Method:                         c.Method,
		Header:                         c.Header,
		Body:                           c.Body,
		TLSSkipVerify:                  c.TLSSkipVerify,
		TLSServerName:                  c.TLSServerName,
		TCP:                            c.TCP,
		GRPC:                           c.GRPC,
		GRPCUseTLS:                     c.GRPCUseTLS,
		TTL:                            time.Duration(c.TTL),
		Args:                           args,
		Interval:                       time.Duration(c.Interval),
		Timeout:                        time.Duration(c.Timeout),
		Status:                         c.Status,
		SuccessBeforePassing:           c.SuccessBeforePassing,
		FailuresBeforeWarning:          c.FailuresBeforeWarning,
		FailuresBeforeCritical:         c.FailuresBeforeCritical,
		DeregisterCriticalServiceAfter: time.Duration(c.DeregisterCriticalServiceAfter),
	}
	if def.Name == "" {
		def.Name = id
	}
	if err := c.checkTypeFields.apply(&def); err != nil {
		return checks.Definition{}, fmt.Errorf("%w: %w", err, catalog.ErrInvalid)
	}
	if err := def.Validate(checks.Config{EnableScriptChecks: scriptChecks}); err != nil {
		return checks.Definition{}, fmt.Errorf("%w: %w", err, catalog.ErrInvalid)
	}
	return def, nil
}

// DecodeServiceDefinition decodes a service definition from JSON with
// CamelCase or snake_case keys; strict rejects unknown keys.
func DecodeServiceDefinition(b []byte, strict bool) (ServiceDefinition, error) {
	var d ServiceDefinition
	err := DecodeDefinition(b, &d, strict)
	return d, err
}
