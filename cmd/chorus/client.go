package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/spf13/cobra"
)

// Exit codes of the chorus command. They are documented in the root
// command's help and in the README; scripts rely on them.
const (
	exitError       = 1 // any other failure
	exitUsage       = 2 // bad flags, arguments or files
	exitUnreachable = 3 // the agent's HTTP API could not be reached
	exitDenied      = 4 // the agent refused the token (HTTP 403)
	exitNotFound    = 5 // unknown service, check or node (HTTP 404 or an empty answer)
)

// requestTimeout bounds every client request except watches' blocking
// queries.
const requestTimeout = 30 * time.Second

// usageError is a command line the command cannot run (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// notFoundError is an answer that names nothing (exit 5), for endpoints
// that answer an unknown name with an empty list rather than HTTP 404.
type notFoundError struct{ what string }

func (e notFoundError) Error() string { return e.what + " not found" }

// clientFlags are the flags every client command takes; each command has
// its own.
type clientFlags struct {
	addr                      string
	token                     string
	caFile, certFile, keyFile string
	format                    string
	// dc is --datacenter of the catalog reads (nodes, services): another
	// datacenter's, answered from the summary this agent holds.
	dc string
}

// addDatacenter adds --datacenter to a catalog read command.
func (f *clientFlags) addDatacenter(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dc, "datacenter", "", "read another datacenter's catalog (from the summary this agent holds; default: this agent's)")
}

// q is the query options of a catalog read: the datacenter asked for.
func (f *clientFlags) q() *api.QueryOptions {
	if f.dc == "" {
		return nil
	}
	return &api.QueryOptions{Datacenter: f.dc}
}

// register adds the connection flags to cmd, with defaults from the
// CHORUS_* environment, and --format with the given default.
func (f *clientFlags) register(cmd *cobra.Command, formatDefault string) {
	addr := os.Getenv("CHORUS_HTTP_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8500"
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.addr, "http-addr", addr, "agent HTTP address: host:port, http://host:port, https://host:port or unix:///path (env CHORUS_HTTP_ADDR)")
	pf.StringVar(&f.token, "token", os.Getenv("CHORUS_HTTP_TOKEN"), "API token (env CHORUS_HTTP_TOKEN)")
	pf.StringVar(&f.caFile, "ca-file", os.Getenv("CHORUS_CACERT"), "CA certificate to verify the agent's HTTPS certificate; implies HTTPS (env CHORUS_CACERT)")
	pf.StringVar(&f.certFile, "client-cert", os.Getenv("CHORUS_CLIENT_CERT"), "client certificate for HTTPS (env CHORUS_CLIENT_CERT)")
	pf.StringVar(&f.keyFile, "client-key", os.Getenv("CHORUS_CLIENT_KEY"), "client key for HTTPS (env CHORUS_CLIENT_KEY)")
	help := "output format: table or json"
	if formatDefault == "json" {
		help = "output format: json"
	}
	cmd.Flags().StringVar(&f.format, "format", formatDefault, help)
}

// client checks --format and returns a Consul API client for the agent.
// timeout bounds each request (0: none, for blocking queries).
func (f *clientFlags) client(timeout time.Duration) (*api.Client, error) {
	if f.format != "table" && f.format != "json" {
		return nil, usagef("--format %q: want table or json", f.format)
	}
	cfg := &api.Config{
		Address: f.addr,
		Token:   f.token,
		TLSConfig: api.TLSConfig{
			CAFile:   f.caFile,
			CertFile: f.certFile,
			KeyFile:  f.keyFile,
		},
	}
	if !strings.Contains(f.addr, "://") && (f.caFile != "" || f.certFile != "") {
		cfg.Scheme = "https"
	}
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
	}
	hc, err := api.NewHttpClient(transport, cfg.TLSConfig)
	if err != nil {
		return nil, usagef("TLS settings: %v", err)
	}
	hc.Timeout = timeout
	cfg.HttpClient = hc
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, usagef("--http-addr %q: %v", f.addr, err)
	}
	return c, nil
}

// print writes v as indented JSON with --format json, or calls table with
// a tabwriter otherwise.
func (f *clientFlags) print(w io.Writer, v any, table func(tw *tabwriter.Writer)) error {
	if f.format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// exitFor maps an error onto the command's exit code.
func exitFor(err error) int {
	var ec exitCode
	var ue usageError
	var nf notFoundError
	var se api.StatusError
	var ne net.Error
	switch {
	case errors.As(err, &ec):
		return int(ec)
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &nf):
		return exitNotFound
	case errors.As(err, &se):
		switch se.Code {
		case http.StatusForbidden:
			return exitDenied
		case http.StatusNotFound:
			return exitNotFound
		}
		return exitError
	case errors.As(err, &ne) && ne.Timeout():
		return exitUnreachable
	}
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &oe) && oe.Op == "dial" || errors.As(err, &de) {
		return exitUnreachable
	}
	return exitError
}

// describe turns an error from the Consul API client into one line for
// the operator: an HTTP error shows the agent's message and what the status
// means, an unreachable agent is named.
func describe(err error, addr string) string {
	var se api.StatusError
	if errors.As(err, &se) {
		msg := se.Body
		var body struct{ Error string }
		if json.Unmarshal([]byte(se.Body), &body) == nil && body.Error != "" {
			msg = body.Error
		}
		msg = strings.Join(strings.Fields(msg), " ")
		switch se.Code {
		case http.StatusForbidden:
			msg = fmt.Sprintf("permission denied: %s (HTTP 403; check --token)", msg)
		default:
			msg = fmt.Sprintf("%s (HTTP %d)", msg, se.Code)
		}
		// Keep what the command wrapped around the status.
		return strings.Replace(err.Error(), se.Error(), msg, 1)
	}
	if exitFor(err) == exitUnreachable {
		return fmt.Sprintf("cannot reach the agent at %s: %v", addr, err)
	}
	return err.Error()
}

// addClientCommands adds the HTTP client commands to root. Each command
// has its own flags and reports its errors with the exit codes above.
func addClientCommands(root *cobra.Command) {
	ctors := []struct {
		new    func(*clientFlags) *cobra.Command
		format string
	}{
		{membersCmd, "table"}, {nodesCmd, "table"}, {servicesCmd, "table"}, {registerCmd, "table"},
		{deregisterCmd, "table"}, {joinCmd, "table"}, {leaveCmd, "table"}, {forceLeaveCmd, "table"},
		{maintCmd, "table"}, {checkCmd, "table"}, {keyringCmd, "table"}, {watchCmd, "json"},
		{monitorCmd, "table"},
	}
	for _, ct := range ctors {
		cf := &clientFlags{}
		c := ct.new(cf)
		cf.register(c, ct.format)
		run := c.RunE
		c.RunE = func(cmd *cobra.Command, args []string) error {
			err := run(cmd, args)
			if err == nil || exitFor(err) == exitUsage {
				return err
			}
			return reported(cmd, exitFor(err), describe(err, cf.addr))
		}
		root.AddCommand(c)
	}
}

var statusNames = map[int]string{0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}

func membersCmd(cf *clientFlags) *cobra.Command {
	var wan bool
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the cluster's members as this agent's gossip sees them",
		Long: `List the cluster's members as this agent's gossip (Serf) sees them: name,
gossip address, status (alive, leaving, left, failed), zone and build.

--wan lists the WAN pool instead: the speakers of every datacenter
(<node>.<datacenter>), their WAN address and datacenter. Only a speaker
is in the WAN pool; on any other agent the list is empty.

--format json prints the agent's /v1/agent/members answer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(requestTimeout)
			if err != nil {
				return err
			}
			ms, err := c.Agent().Members(wan)
			if err != nil {
				return err
			}
			sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
			if wan && len(ms) == 0 && cf.format == "table" {
				fmt.Fprintln(cmd.ErrOrStderr(), "this agent is not one of its datacenter's WAN speakers: ask a speaker (GET /v1/agent/members?wan=1 answers on one)")
				return nil
			}
			return cf.print(cmd.OutOrStdout(), ms, func(tw *tabwriter.Writer) {
				if wan {
					fmt.Fprintln(tw, "Node\tAddress\tStatus\tDatacenter\tBuild")
				} else {
					fmt.Fprintln(tw, "Node\tAddress\tStatus\tZone\tBuild")
				}
				for _, m := range ms {
					col := m.Tags["zone"]
					if wan {
						col = m.Tags["dc"]
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, net.JoinHostPort(m.Addr, fmt.Sprint(m.Port)),
						statusNames[m.Status], dash(col), dash(m.Tags["build"]))
				}
			})
		},
	}
	cmd.Flags().BoolVar(&wan, "wan", false, "list the WAN pool (the speakers of every datacenter) instead of the LAN pool")
	return cmd
}

// nodeView is one row of `chorus nodes --format json`: the catalog's node
// object with the node's own checks and their worst status.
type nodeView struct {
	*api.Node
	Status string
	Checks api.HealthChecks
}

func nodesCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "List the catalog's nodes with their address, health, datacenter and zone",
		Long: `List the catalog's nodes: name, address, health (the worst of the node's own
checks: serfHealth turns critical when gossip finds the node failed, and node
maintenance is a critical check), datacenter and zone (node meta "zone").

--format json prints the catalog's node objects (/v1/catalog/nodes), each with
its node checks (Checks, from /v1/health/state/any) and their worst status
(Status).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(requestTimeout)
			if err != nil {
				return err
			}
			nodes, _, err := c.Catalog().Nodes(cf.q())
			if err != nil {
				return err
			}
			all, _, err := c.Health().State(api.HealthAny, cf.q())
			if err != nil {
				return err
			}
			byNode := map[string]api.HealthChecks{}
			for _, hc := range all {
				if hc.ServiceID == "" {
					byNode[hc.Node] = append(byNode[hc.Node], hc)
				}
			}
			views := make([]nodeView, 0, len(nodes))
			for _, n := range nodes {
				hcs := byNode[n.Node]
				if hcs == nil {
					hcs = api.HealthChecks{}
				}
				views = append(views, nodeView{Node: n, Status: worst(hcs), Checks: hcs})
			}
			sort.Slice(views, func(i, j int) bool { return views[i].Node.Node < views[j].Node.Node })
			return cf.print(cmd.OutOrStdout(), views, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "Node\tAddress\tStatus\tDatacenter\tZone")
				for _, v := range views {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Node.Node, v.Address, v.Status, dash(v.Datacenter), dash(v.Meta["zone"]))
				}
			})
		},
	}
	cf.addDatacenter(cmd)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// worst returns the worst status among checks ("passing" for none), in
// Consul's order: critical over warning over passing.
func worst(checks api.HealthChecks) string {
	rank := map[string]int{api.HealthPassing: 0, api.HealthWarning: 1, api.HealthCritical: 2, api.HealthMaint: 3}
	w := api.HealthPassing
	for _, c := range checks {
		if rank[c.Status] > rank[w] {
			w = c.Status
		}
	}
	return w
}

func servicesCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "services [NAME]",
		Short: "List the catalog's services, or one service's instances with their checks",
		Long: `Without NAME, list every service in the catalog with its number of instances
by health and its tags. With NAME, show each instance of that service: node,
address:port, tags, health, and each of its checks (the node's checks
included) with its status and the first line of its output.

--format json prints, without NAME, an object mapping each service name to its
/v1/health/service/<name> answer; with NAME, that answer.

Exit code 5 when NAME has no instance in the catalog.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(requestTimeout)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				return showService(cmd.OutOrStdout(), cf, c, args[0])
			}
			names, _, err := c.Catalog().Services(cf.q())
			if err != nil {
				return err
			}
			keys := make([]string, 0, len(names))
			all := make(map[string][]*api.ServiceEntry, len(names))
			for n := range names {
				keys = append(keys, n)
				entries, _, err := c.Health().Service(n, "", false, cf.q())
				if err != nil {
					return err
				}
				all[n] = entries
			}
			sort.Strings(keys)
			return cf.print(cmd.OutOrStdout(), all, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "Service\tInstances\tPassing\tWarning\tCritical\tTags")
				for _, n := range keys {
					count := map[string]int{}
					for _, e := range all[n] {
						count[worst(e.Checks)]++
					}
					fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", n, len(all[n]), count[api.HealthPassing], count[api.HealthWarning],
						count[api.HealthCritical]+count[api.HealthMaint], dash(strings.Join(names[n], ",")))
				}
			})
		},
	}
	cf.addDatacenter(cmd)
	return cmd
}

// showService prints one service's instances and their checks.
func showService(w io.Writer, cf *clientFlags, c *api.Client, name string) error {
	entries, _, err := c.Health().Service(name, "", false, cf.q())
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return notFoundError{fmt.Sprintf("service %q", name)}
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].Node.Node != entries[j].Node.Node {
			return entries[i].Node.Node < entries[j].Node.Node
		}
		return entries[i].Service.ID < entries[j].Service.ID
	})
	return cf.print(w, entries, func(*tabwriter.Writer) {
		// One table per instance and one per its checks, so that long
		// check outputs do not widen the instance columns.
		for i, e := range entries {
			if i > 0 {
				fmt.Fprintln(w)
			}
			addr := e.Service.Address
			if addr == "" {
				addr = e.Node.Address
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "Instance\tNode\tAddress\tTags\tStatus")
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Service.ID, e.Node.Node, net.JoinHostPort(addr, fmt.Sprint(e.Service.Port)),
				dash(strings.Join(e.Service.Tags, ",")), worst(e.Checks))
			tw.Flush()
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  Check\tName\tStatus\tOutput")
			for _, hc := range e.Checks {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", hc.CheckID, hc.Name, hc.Status, firstLine(hc.Output))
			}
			tw.Flush()
		}
	})
}

// firstLine returns the first non-empty line of s, cut at 120 characters.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if r := []rune(l); len(r) > 120 {
				return string(r[:119]) + "…"
			}
			return l
		}
	}
	return "-"
}

func deregisterCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "deregister ID",
		Short: "Deregister a service from the local agent",
		Long: `Deregister the service with this ID from the local agent, with its checks.
Exit code 5 when the agent has no service with this ID.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(requestTimeout)
			if err != nil {
				return err
			}
			if err := c.Agent().ServiceDeregister(args[0]); err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), map[string]string{"Deregistered": args[0]}, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "Deregistered service:", args[0])
			})
		},
	}
}

func joinCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "join ADDR...",
		Short: "Make the local agent join a cluster through the given agents",
		Long: `Make the local agent join a cluster through the given agents' gossip addresses
(host or host:port). It succeeds when at least one address could be joined.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(requestTimeout)
			if err != nil {
				return err
			}
			result := struct {
				Joined []string
				Failed map[string]string
			}{Joined: []string{}, Failed: map[string]string{}}
			var last error
			for _, a := range args {
				if err := c.Agent().Join(a, false); err != nil {
					last = err
					result.Failed[a] = describe(err, cf.addr)
					if cf.format == "table" {
						fmt.Fprintf(cmd.ErrOrStderr(), "join %s: %s\n", a, describe(err, cf.addr))
					}
					continue
				}
				result.Joined = append(result.Joined, a)
			}
			if len(result.Joined) == 0 {
				return fmt.Errorf("could not join any address: %w", last)
			}
			return cf.print(cmd.OutOrStdout(), result, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "Successfully joined cluster by contacting %d nodes.\n", len(result.Joined))
			})
		},
	}
}

func leaveCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "leave",
		Short: "Make the local agent leave the cluster gracefully and stop",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(requestTimeout)
			if err != nil {
				return err
			}
			if err := c.Agent().Leave(); err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), map[string]bool{"Left": true}, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "Graceful leave complete")
			})
		},
	}
}

func forceLeaveCmd(cf *clientFlags) *cobra.Command {
	var prune bool
	cmd := &cobra.Command{
		Use:   "force-leave NODE",
		Short: "Remove a failed member from the cluster now",
		Long: `Mark a failed member as left at once instead of waiting for the reaper; with
--prune, forget it entirely. Exit code 5 when no member has this name.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(requestTimeout)
			if err != nil {
				return err
			}
			if prune {
				err = c.Agent().ForceLeavePrune(args[0])
			} else {
				err = c.Agent().ForceLeave(args[0])
			}
			if err != nil {
				return err
			}
			res := struct {
				ForceLeft string
				Prune     bool
			}{args[0], prune}
			return cf.print(cmd.OutOrStdout(), res, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "Force-left node:", args[0])
			})
		},
	}
	cmd.Flags().BoolVar(&prune, "prune", false, "also forget the member entirely")
	return cmd
}

func maintCmd(cf *clientFlags) *cobra.Command {
	var enable, disable bool
	var service, reason string
	cmd := &cobra.Command{
		Use:   "maint (--enable | --disable) [--service ID] [--reason TEXT]",
		Short: "Put the node or one service in or out of maintenance mode",
		Long: `Put this agent's node, or one of its services (--service ID), in or out of
maintenance mode. In maintenance an instance leaves DNS answers and passing
health results. Exit code 5 when the agent has no service with this ID.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if enable == disable {
				return usagef("give exactly one of --enable or --disable")
			}
			c, err := cf.client(requestTimeout)
			if err != nil {
				return err
			}
			a := c.Agent()
			switch {
			case service != "" && enable:
				err = a.EnableServiceMaintenance(service, reason)
			case service != "":
				err = a.DisableServiceMaintenance(service)
			case enable:
				err = a.EnableNodeMaintenance(reason)
			default:
				err = a.DisableNodeMaintenance()
			}
			if err != nil {
				return err
			}
			res := struct {
				Maintenance bool
				Node        bool   `json:",omitempty"`
				Service     string `json:",omitempty"`
				Reason      string `json:",omitempty"`
			}{enable, service == "", service, reason}
			return cf.print(cmd.OutOrStdout(), res, func(tw *tabwriter.Writer) {
				state, target := "enabled", "node"
				if disable {
					state = "disabled"
				}
				if service != "" {
					target = "service " + service
				}
				fmt.Fprintf(tw, "Maintenance mode %s for %s\n", state, target)
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&enable, "enable", false, "enable maintenance mode")
	f.BoolVar(&disable, "disable", false, "disable maintenance mode")
	f.StringVar(&service, "service", "", "service ID (default: the whole node)")
	f.StringVar(&reason, "reason", "", "reason shown in the check's notes")
	return cmd
}
