package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// client talks to a local agent's HTTP API.
type client struct {
	addr  string
	token string
	http  *http.Client
	err   error // a TLS setting that could not be loaded
}

// clientFlags are shared by every client command.
type clientFlags struct {
	addr                      string
	token                     string
	caFile, certFile, keyFile string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	addr := os.Getenv("CHORUS_HTTP_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8500"
	}
	cmd.PersistentFlags().StringVar(&f.addr, "http-addr", addr, "agent HTTP address (env CHORUS_HTTP_ADDR)")
	cmd.PersistentFlags().StringVar(&f.token, "token", os.Getenv("CHORUS_HTTP_TOKEN"), "API token (env CHORUS_HTTP_TOKEN)")
	cmd.PersistentFlags().StringVar(&f.caFile, "ca-file", os.Getenv("CHORUS_CACERT"), "CA certificate to verify the agent's HTTPS certificate (env CHORUS_CACERT)")
	cmd.PersistentFlags().StringVar(&f.certFile, "client-cert", os.Getenv("CHORUS_CLIENT_CERT"), "client certificate for HTTPS (env CHORUS_CLIENT_CERT)")
	cmd.PersistentFlags().StringVar(&f.keyFile, "client-key", os.Getenv("CHORUS_CLIENT_KEY"), "client key for HTTPS (env CHORUS_CLIENT_KEY)")
}

func (f *clientFlags) client() *client {
	addr := f.addr
	if !strings.Contains(addr, "://") {
		scheme := "http://"
		if f.caFile != "" || f.certFile != "" {
			scheme = "https://"
		}
		addr = scheme + addr
	}
	c := &client{addr: strings.TrimSuffix(addr, "/"), token: f.token, http: &http.Client{Timeout: 30 * time.Second}}
	if strings.HasPrefix(addr, "https://") {
		tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if f.caFile != "" {
			pem, err := os.ReadFile(f.caFile)
			if err == nil {
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM(pem)
				tlsCfg.RootCAs = pool
			} else {
				c.err = fmt.Errorf("--ca-file: %v", err)
			}
		}
		if f.certFile != "" || f.keyFile != "" {
			cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
			if err != nil {
				c.err = fmt.Errorf("--client-cert/--client-key: %v", err)
			}
			tlsCfg.Certificates = []tls.Certificate{cert}
		}
		c.http.Transport = &http.Transport{TLSClientConfig: tlsCfg}
	}
	return c
}

// do sends a request and decodes a JSON answer into out (when non-nil).
func (c *client) do(method, path string, body any, out any) error {
	if c.err != nil {
		return c.err
	}
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case []byte:
			rd = bytes.NewReader(b)
		default:
			j, err := json.Marshal(b)
			if err != nil {
				return err
			}
			rd = bytes.NewReader(j)
		}
	}
	req, err := http.NewRequest(method, c.addr+path, rd)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("X-Consul-Token", c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the agent at %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

func addClientCommands(root *cobra.Command) {
	var cf clientFlags
	cmds := []*cobra.Command{
		membersCmd(&cf), servicesCmd(&cf), registerCmd(&cf), deregisterCmd(&cf),
		joinCmd(&cf), leaveCmd(&cf), forceLeaveCmd(&cf), maintCmd(&cf), keyringCmd(&cf),
	}
	for _, c := range cmds {
		cf.register(c)
		root.AddCommand(c)
	}
}

type member struct {
	Name   string
	Addr   string
	Port   int
	Tags   map[string]string
	Status int
}

var statusNames = map[int]string{0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}

func membersCmd(cf *clientFlags) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the cluster's members as this agent sees them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ms []member
			if err := cf.client().do("GET", "/v1/agent/members", nil, &ms); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if format == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(ms)
			}
			if format != "table" {
				return fmt.Errorf("--format %q: want table or json", format)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "Node\tAddress\tStatus\tZone\tBuild")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s:%d\t%s\t%s\t%s\n", m.Name, m.Addr, m.Port, statusNames[m.Status], dash(m.Tags["zone"]), dash(m.Tags["build"]))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func servicesCmd(cf *clientFlags) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "services",
		Short: "List the services in the catalog with their instances and health",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := cf.client()
			var names map[string][]string
			if err := c.do("GET", "/v1/catalog/services", nil, &names); err != nil {
				return err
			}
			type inst struct {
				Node    struct{ Node, Address string }
				Service struct {
					ID, Address string
					Port        int
					Tags        []string
				}
				Checks []struct{ Status string }
			}
			all := map[string][]inst{}
			keys := make([]string, 0, len(names))
			for n := range names {
				keys = append(keys, n)
				var is []inst
				if err := c.do("GET", "/v1/health/service/"+url.PathEscape(n), nil, &is); err != nil {
					return err
				}
				all[n] = is
			}
			sort.Strings(keys)
			out := cmd.OutOrStdout()
			if format == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(all)
			}
			if format != "table" {
				return fmt.Errorf("--format %q: want table or json", format)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "Service\tID\tNode\tAddress\tTags\tHealth")
			for _, n := range keys {
				for _, i := range all[n] {
					addr := i.Service.Address
					if addr == "" {
						addr = i.Node.Address
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s:%d\t%s\t%s\n", n, i.Service.ID, i.Node.Node, addr, i.Service.Port,
						dash(strings.Join(i.Service.Tags, ",")), worst(i.Checks))
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func worst(checks []struct{ Status string }) string {
	rank := map[string]int{"passing": 0, "warning": 1, "critical": 2, "maintenance": 3}
	w := "passing"
	for _, c := range checks {
		if rank[c.Status] > rank[w] {
			w = c.Status
		}
	}
	return w
}

func registerCmd(cf *clientFlags) *cobra.Command {
	var name, id, address string
	var port int
	var tags []string
	cmd := &cobra.Command{
		Use:   "register [FILE.json]",
		Short: "Register a service with the local agent (from flags or a JSON definition file)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var body any
			if len(args) == 1 {
				b, err := os.ReadFile(args[0])
				if err != nil {
					return err
				}
				body = b
			} else {
				if name == "" {
					return fmt.Errorf("give a definition file or --name")
				}
				body = map[string]any{"Name": name, "ID": id, "Address": address, "Port": port, "Tags": tags}
			}
			if err := cf.client().do("PUT", "/v1/agent/service/register", body, nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Registered service")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "service name")
	f.StringVar(&id, "id", "", "service ID (default: the name)")
	f.StringVar(&address, "address", "", "service address (default: the node's)")
	f.IntVar(&port, "port", 0, "service port")
	f.StringArrayVar(&tags, "tag", nil, "tag; repeatable")
	return cmd
}

func deregisterCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "deregister ID",
		Short: "Deregister a service from the local agent",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cf.client().do("PUT", "/v1/agent/service/deregister/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Deregistered service:", args[0])
			return nil
		},
	}
}

func joinCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "join ADDR...",
		Short: "Make the local agent join a cluster through the given agents",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := cf.client()
			ok := 0
			var last error
			for _, a := range args {
				if err := c.do("PUT", "/v1/agent/join/"+url.PathEscape(a), nil, nil); err != nil {
					last = err
					fmt.Fprintf(cmd.ErrOrStderr(), "join %s: %v\n", a, err)
					continue
				}
				ok++
			}
			if ok == 0 {
				return fmt.Errorf("could not join any address: %w", last)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Successfully joined cluster by contacting %d nodes.\n", ok)
			return nil
		},
	}
}

func leaveCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "leave",
		Short: "Make the local agent leave the cluster gracefully and stop",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cf.client().do("PUT", "/v1/agent/leave", nil, nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Graceful leave complete")
			return nil
		},
	}
}

func forceLeaveCmd(cf *clientFlags) *cobra.Command {
	var prune bool
	cmd := &cobra.Command{
		Use:   "force-leave NODE",
		Short: "Remove a failed member from the cluster now",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v1/agent/force-leave/" + url.PathEscape(args[0])
			if prune {
				path += "?prune"
			}
			return cf.client().do("PUT", path, nil, nil)
		},
	}
	cmd.Flags().BoolVar(&prune, "prune", false, "also forget the member entirely")
	return cmd
}

func maintCmd(cf *clientFlags) *cobra.Command {
	var enable, disable bool
	var service, reason string
	cmd := &cobra.Command{
		Use:   "maint",
		Short: "Put the node or one service in or out of maintenance mode",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if enable == disable {
				return fmt.Errorf("give exactly one of --enable or --disable")
			}
			q := url.Values{"enable": {fmt.Sprint(enable)}}
			if reason != "" {
				q.Set("reason", reason)
			}
			path := "/v1/agent/maintenance?" + q.Encode()
			if service != "" {
				path = "/v1/agent/service/maintenance/" + url.PathEscape(service) + "?" + q.Encode()
			}
			if err := cf.client().do("PUT", path, nil, nil); err != nil {
				return err
			}
			state := "enabled"
			if disable {
				state = "disabled"
			}
			target := "node"
			if service != "" {
				target = "service " + service
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Maintenance mode %s for %s\n", state, target)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&enable, "enable", false, "enable maintenance mode")
	f.BoolVar(&disable, "disable", false, "disable maintenance mode")
	f.StringVar(&service, "service", "", "service ID (default: the whole node)")
	f.StringVar(&reason, "reason", "", "reason shown in the check's notes")
	return cmd
}
