package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/spf13/cobra"
)

const registerLong = `Register services with the local agent, from a definition file or from flags.

FILE holds service definitions in any of the three forms a config dir takes,
in JSON (or YAML, .yaml/.yml, or HCL, .hcl, chosen by the file extension).
Keys are Consul's, in CamelCase or snake_case; unknown keys are an error:

  one bare definition        {"name": "web", "port": 8080}
  one wrapped definition     {"service": {"name": "web", "port": 8080}}
  several definitions        {"services": [{"name": "web", "port": 8080},
                                           {"name": "api", "port": 9090}]}

A definition's keys: name (required), id (default: the name), address
(default: the node's), port, tags, meta, weights {passing, warning}, and
check {...} or checks [{...}, ...]; a check has one of http (with method,
header, body, tls_skip_verify), tcp, grpc, ttl or args (a script), and
interval, timeout, notes, status, deregister_critical_service_after,
success_before_passing, failures_before_warning, failures_before_critical.
For example:

  {
    "service": {
      "name": "web",
      "port": 8080,
      "tags": ["v1"],
      "meta": {"version": "1.4.2"},
      "check": {"http": "http://127.0.0.1:8080/health", "interval": "2s", "timeout": "1s"}
    }
  }

Without FILE, --name registers one service, with at most one check given by
--check-http, --check-tcp or --check-ttl:

  chorus register --name web --port 8080 --tag v1 --check-http http://127.0.0.1:8080/health

Every definition is checked before any is sent; they are then registered in
order, and the first the agent refuses stops the command (those before it
stay registered). --format json prints the registrations sent, in the API's
JSON.`

func registerCmd(cf *clientFlags) *cobra.Command {
	var (
		name, id, address string
		port              int
		tags              []string
		checkHTTP         string
		checkTCP          string
		checkTTL          time.Duration
		checkInterval     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "register (FILE | --name NAME [flags])",
		Short: "Register services with the local agent (from a definition file or flags)",
		Long:  registerLong,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var regs []*api.AgentServiceRegistration
			flagged := false
			for _, f := range []string{"name", "id", "address", "port", "tag", "check-http", "check-tcp", "check-ttl", "check-interval"} {
				flagged = flagged || cmd.Flags().Changed(f)
			}
			switch {
			case len(args) == 1 && flagged:
				return usagef("give a definition file or flags, not both")
			case len(args) == 1:
				b, err := os.ReadFile(args[0])
				if err != nil {
					return usageError{err}
				}
				regs, err = parseServiceFile(args[0], b)
				if err != nil {
					return usagef("%s: %v", args[0], err)
				}
			default:
				if name == "" {
					return usagef("give a definition file or --name")
				}
				reg := &api.AgentServiceRegistration{ID: id, Name: name, Address: address, Port: port, Tags: tags}
				chk := &api.AgentServiceCheck{Interval: checkInterval.String()}
				n := 0
				if checkHTTP != "" {
					chk.HTTP, n = checkHTTP, n+1
				}
				if checkTCP != "" {
					chk.TCP, n = checkTCP, n+1
				}
				if checkTTL != 0 {
					chk.TTL, chk.Interval, n = checkTTL.String(), "", n+1
				}
				switch {
				case n > 1:
					return usagef("give at most one of --check-http, --check-tcp and --check-ttl")
				case n == 0 && cmd.Flags().Changed("check-interval"):
					return usagef("--check-interval needs --check-http or --check-tcp")
				case n == 1:
					reg.Check = chk
				}
				regs = []*api.AgentServiceRegistration{reg}
			}
			c, err := cf.client(requestTimeout)
			if err != nil {
				return err
			}
			for _, reg := range regs {
				if err := c.Agent().ServiceRegister(reg); err != nil {
					return fmt.Errorf("register %q: %w", reg.Name, err)
				}
			}
			return cf.print(cmd.OutOrStdout(), regs, func(tw *tabwriter.Writer) {
				for _, reg := range regs {
					id := reg.ID
					if id == "" {
						id = reg.Name
					}
					fmt.Fprintf(tw, "Registered service: %s (ID %s)\n", reg.Name, id)
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "service name")
	f.StringVar(&id, "id", "", "service ID (default: the name)")
	f.StringVar(&address, "address", "", "service address (default: the node's)")
	f.IntVar(&port, "port", 0, "service port")
	f.StringArrayVar(&tags, "tag", nil, "tag; repeatable")
	f.StringVar(&checkHTTP, "check-http", "", "attach an HTTP check: GET this URL, 2xx passes, 429 warns")
	f.StringVar(&checkTCP, "check-tcp", "", "attach a TCP check: connect to this HOST:PORT")
	f.DurationVar(&checkTTL, "check-ttl", 0, "attach a TTL check that turns critical unless updated within this duration (chorus check pass service:ID)")
	f.DurationVar(&checkInterval, "check-interval", 10*time.Second, "how often the HTTP or TCP check runs")
	return cmd
}

// parseServiceFile decodes a service definition file in any of the three
// forms a config dir takes (a bare definition, {"service": {...}} or
// {"services": [...]}) and returns the registrations in file order. The
// format follows the extension (.json, .yaml, .yml, .hcl; anything else is
// read as JSON). The definitions go through the config loader's own
// decoding (strict: unknown keys fail) and are validated as the agent
// validates config-dir services.
func parseServiceFile(path string, b []byte) ([]*api.AgentServiceRegistration, error) {
	format := configFormat(path)
	if format == "" {
		format = "json"
	}
	m, err := decodeConfig(format, b)
	if err != nil {
		return nil, err
	}
	var wrapped, other []string
	for k := range m {
		if l := strings.ToLower(k); l == "service" || l == "services" {
			wrapped = append(wrapped, k)
		} else {
			other = append(other, k)
		}
	}
	switch {
	case len(wrapped) == 0:
		m = map[string]any{"service": m}
	case len(other) > 0:
		sort.Strings(other)
		return nil, fmt.Errorf("top-level key %q: a service file holds only \"service\" or \"services\" (agent settings belong in the agent's config)", other[0])
	case len(wrapped) > 1:
		return nil, errors.New(`give "service" or "services", not both`)
	}
	defs, err := extractServices(m)
	if err != nil {
		return nil, err
	}
	if len(defs) == 0 {
		return nil, errors.New("no service definition")
	}
	regs := make([]*api.AgentServiceRegistration, 0, len(defs))
	for i, d := range defs {
		if _, _, err := d.Build(true); err != nil {
			return nil, fmt.Errorf("services[%d]: %v", i, err)
		}
		r := &api.AgentServiceRegistration{
			ID: d.ID, Name: d.Name, Tags: d.Tags, Address: d.Address, Port: d.Port, Meta: d.Meta,
		}
		if d.Weights != nil {
			r.Weights = &api.AgentWeights{Passing: d.Weights.Passing, Warning: d.Weights.Warning}
		}
		// The definition's check type stays unnamed here, so that this
		// file follows the config loader wherever the type lives.
		all := d.Checks[:0:0]
		if d.Check != nil {
			all = append(all, *d.Check)
		}
		all = append(all, d.Checks...)
		for j, c := range all {
			id := c.CheckID
			if id == "" {
				id = c.ID
			}
			args := c.Args
			if len(args) == 0 {
				args = c.ScriptArgs
			}
			ac := &api.AgentServiceCheck{
				CheckID: id, Name: c.Name, Notes: c.Notes, Status: c.Status,
				HTTP: c.HTTP, Method: c.Method, Header: c.Header, Body: c.Body,
				TLSServerName: c.TLSServerName, TLSSkipVerify: c.TLSSkipVerify,
				TCP: c.TCP, GRPC: c.GRPC, GRPCUseTLS: c.GRPCUseTLS,
				TTL: durString(time.Duration(c.TTL)), Args: args,
				Interval: durString(time.Duration(c.Interval)), Timeout: durString(time.Duration(c.Timeout)),
				SuccessBeforePassing:           c.SuccessBeforePassing,
				FailuresBeforeWarning:          c.FailuresBeforeWarning,
				FailuresBeforeCritical:         c.FailuresBeforeCritical,
				DeregisterCriticalServiceAfter: durString(time.Duration(c.DeregisterCriticalServiceAfter)),
			}
			if j == 0 && d.Check != nil {
				r.Check = ac
			} else {
				r.Checks = append(r.Checks, ac)
			}
		}
		regs = append(regs, r)
	}
	return regs, nil
}

// durString renders a definition's duration as the API takes it, "" for
// none.
func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}
