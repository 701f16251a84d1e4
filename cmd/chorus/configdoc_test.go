package main

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/chorusdns/chorus/agent"
)

// This file generates the key table of docs/configuration.md from the
// configuration itself: the keys from agent.Config's mapstructure tags
// (walked as setDefaults walks them), the defaults from
// agent.DefaultConfig, the flags from the agent command's flag set and the
// environment variables by loadConfig's rule. Only the descriptions are
// written here, and TestConfigurationDoc fails when a key has none, so a
// new key cannot be left out of the page.

// configKey is one row of the table.
type configKey struct {
	Key, Type, Default, Flag, Env, Desc string
}

// keyDescriptions describe the keys that have no flag, and replace the
// flag's help where the page needs more than one line of it.
var keyDescriptions = map[string]string{
	"node":                              "Node name, unique in the cluster; DNS answers `<node>.node.<domain>`.",
	"datacenter":                        "Datacenter name; DNS answers only this datacenter's instances.",
	"zone":                              "Zone of this agent, also published as the node meta `zone`: DNS prefers instances in the asking agent's zone (docs/dns.md, rule 5).",
	"node_meta":                         "Node metadata (string keys and values), served as the TXT record of `<node>.node.<domain>`.",
	"data_dir":                          "Directory for persistent state: registrations, the gossip snapshot and keyring, the node's signing key. Required unless `dev`.",
	"dev":                               "Development mode: one node, a temporary data dir, debug logs, everything on 127.0.0.1, the `local` gossip profile.",
	"advertise":                         "Address peers use to reach this agent (an IP). Default: `bind`, or the first private address when `bind` is 0.0.0.0.",
	"client":                            "Address the HTTP API and DNS listen on (one IP).",
	"log_level":                         "Log level: `debug`, `info`, `warn` or `error` (also Serf's and Consul's `trace`, `warning`, `err`).",
	"bind":                              "Gossip address (an IP; UDP and TCP `serf_port`). 0.0.0.0 listens everywhere.",
	"http_port":                         "HTTP API port, on `client`.",
	"dns_port":                          "DNS port (UDP and TCP), on `client`. 53 needs root or `CAP_NET_BIND_SERVICE`.",
	"serf_port":                         "Gossip port (UDP and TCP), on `bind`; Chorus's own record traffic shares it.",
	"https_port":                        "HTTPS API port, serving the same API with `tls.*`; 0 = off.",
	"join":                              "Agents to join at start (`host` or `host:port`); a failure is logged and the agent runs alone.",
	"retry_join":                        "Agents to join, retried with backoff (`retry_interval`, up to 8×) until one answers, so agents may start in any order.",
	"retry_interval":                    "First wait between `retry_join` attempts; it doubles up to 8×, with jitter.",
	"retry_max":                         "Attempts of `retry_join` before giving up; 0 = no limit.",
	"serf_wan_port":                     "WAN pool port (UDP and TCP, on `bind`), opened only while this agent is one of its datacenter's speakers; same keyring as the LAN pool.",
	"retry_join_wan":                    "Agents of other datacenters (`ip` or `ip:port`, default port `serf_wan_port`) a speaker joins to reach the WAN pool; list several (only speakers listen). Setting it links this datacenter to others.",
	"wan_speakers":                      "How many agents of the datacenter are in the WAN pool (1–16); every agent computes the same set from the LAN members (rendezvous hashing).",
	"wan_reconnect_timeout":             "How long a remote datacenter's summary that cannot be refreshed is kept (marked stale after 30 s); also the WAN pool's reconnect timeout.",
	"encrypt":                           "Gossip encryption key (base64 of 16, 24 or 32 bytes; `chorus keygen`). Read on first start only: afterwards `data_dir/serf/local.keyring` wins, so rotations survive restarts.",
	"enable_script_checks":              "Allow script checks (checks that run a command); without it they are refused.",
	"enable_local_script_checks":        "Allow script and Docker checks only in services from config files (`--config-file`, `--config-dir`), never through the HTTP API, as Consul's key of the same name.",
	"enable_debug":                      "Serve Go's runtime profiles on the HTTP API at `/debug/pprof/` (`go tool pprof http://127.0.0.1:8500/debug/pprof/profile?seconds=30`), as Consul's key. With `acl.enabled` they are served whatever its value, to read tokens (`/debug/pprof/cmdline`, which may show `--encrypt`, to write tokens). On in `dev` mode. Reloadable.",
	"docker_socket":                     "Docker Engine unix socket through which Docker checks (`DockerContainerID`) run their `Args` in the container; they also need `enable_script_checks`.",
	"builtin_service":                   "Name of the service every agent registers for itself in the catalog (its HTTP endpoint, passing while it is alive; not in `/v1/agent/services`); \"\" = off. Read at start.",
	"builtin_service_consul":            "Also register the built-in service as `consul`, for tools that look Consul's servers up that way. Read at start.",
	"acl.enabled":                       "Require API tokens.",
	"acl.default_policy":                "What a request without a known token may do: `allow` (everything) or `deny` (nothing).",
	"acl.tokens":                        "API tokens: a list of `{secret, policy}`, policy `read` (GET) or `write` (everything).",
	"tls.cert_file":                     "PEM certificate of the HTTPS listener.",
	"tls.key_file":                      "PEM private key of the HTTPS listener.",
	"tls.ca_file":                       "PEM CA bundle that client certificates must chain to.",
	"tls.verify_incoming":               "Require a client certificate signed by `tls.ca_file`.",
	"gossip_profile":                    "Gossip timings: `lan` (probe 300 ms, timeout 200 ms, suspicion ×3 up to ×6 unconfirmed, retransmit ×8), `wan` (5 s probes) or `local` (200 ms probes, for one machine). The `gossip.*` keys override single knobs.",
	"gossip.probe_interval":             "Failure-detection probe interval; 0 = the profile's.",
	"gossip.probe_timeout":              "Time to wait for a probe's ack; 0 = the profile's.",
	"gossip.suspicion_mult":             "Suspicion timeout = mult × max(1, log10(members)) × probe interval; 0 = the profile's.",
	"gossip.suspicion_max_timeout_mult": "An unconfirmed suspicion may last up to this × the suspicion timeout; 0 = the profile's.",
	"gossip.gossip_interval":            "Interval of gossip rounds; 0 = the profile's.",
	"gossip.push_pull_interval":         "Interval of full state exchanges with a random member; 0 = the profile's.",
	"gossip.retransmit_mult":            "Each member passes a gossiped message on mult × log10(members+1) times; 0 = the profile's.",
	"event_handlers":                    "Commands run on member events: a list of `{events, handler or args, timeout}`; events `member-join`, `member-leave`, `member-failed`, `member-update`, `member-reap`; timeout default 30 s.",
	"watches":                           "Consul-style watches run by the agent: a list of `{type, service, passing, state, handler or args, token}`; type `service`, `services`, `nodes` or `checks`; the result's JSON goes to the command's standard input at each change.",
	"domain":                            "DNS domain the agent is authoritative for.",
	"failover":                          "Agent-wide failover rule: datacenters (`dc2,dc3`) and `nearest:N` items that DNS and `/v1/health/service/<svc>?failover` answer from when this datacenter has no healthy instance of a service; a service's `chorus-failover` meta wins.",
	"alt_domain":                        "A second domain answered like `domain`.",
	"recursors":                         "Upstream DNS servers (`ip` or `ip:port`), asked in order for names outside the domains. None: such names are REFUSED.",
	"dns.recursor_timeout":              "Time for each attempt at a recursor.",
	"dns.node_ttl":                      "TTL of node, `.addr`, NS and glue records.",
	"dns.service_ttl":                   "TTL of service records, unless `dns.service_ttls` or a `chorus-ttl` meta says otherwise.",
	"dns.service_ttls":                  "TTL per service name: an exact name, a `prefix*`, or `*` for every service; exact beats prefix, the longest prefix wins.",
	"dns.only_passing":                  "Leave instances in the warning state out of answers.",
	"dns.policy":                        "Order of records within a tier: `random` (weighted), `round-robin`, `least-loaded`, `nearest` or `hash`; a service's `chorus-policy` meta overrides it.",
	"dns.zone_failover":                 "When the agent's zone has no instance of a tier, answer the tier's instances in other zones; false makes the zone a hard boundary.",
	"dns.a_record_limit":                "Most A/AAAA records in one answer; 0 = no cap.",
	"dns.udp_answer_limit":              "Most answer records to UDP clients without EDNS0; 0 = no cap.",
	"dns.max_udp_size":                  "Largest EDNS0 UDP payload honoured and advertised (512–65535).",
	"dns.soa.refresh":                   "SOA refresh timer, seconds.",
	"dns.soa.retry":                     "SOA retry timer, seconds.",
	"dns.soa.expire":                    "SOA expire timer, seconds.",
	"dns.soa.min_ttl":                   "SOA minimum, seconds: the TTL of the SOA and of NXDOMAIN and NODATA answers (negative caching).",
	"dns.dnssd":                         "Serve unicast DNS-SD (RFC 6763) browsing names.",
	"dns.rate_limit":                    "Queries per second one source (an IPv4 address or an IPv6 /64) may send; excess is REFUSED. 0 = no limit.",
	"dns.rate_limit_burst":              "Queries a source may send at once before `dns.rate_limit` applies; at least the rate.",
}

// specialDefaults are defaults that depend on the machine.
var specialDefaults = map[string]string{"node": "the host name"}

// configKeys lists every key of agent.Config in declaration order, with
// its type, default, flag and environment variable. flags is the agent
// command's flag set.
func configKeys(flags *pflag.FlagSet) []configKey {
	byKey := map[string]*pflag.Flag{}
	flags.VisitAll(func(f *pflag.Flag) {
		key, ok := flagKeys[f.Name]
		if !ok {
			key = strings.ReplaceAll(f.Name, "-", "_")
		}
		byKey[key] = f
	})
	var out []configKey
	var walk func(prefix string, rv reflect.Value)
	walk = func(prefix string, rv reflect.Value) {
		rt := rv.Type()
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			parts := strings.Split(f.Tag.Get("mapstructure"), ",")
			tag := parts[0]
			if tag == "" && slices.Contains(parts[1:], "squash") {
				walk(prefix, rv.Field(i))
				continue
			}
			if tag == "" || tag == "-" {
				continue
			}
			key := tag
			if prefix != "" {
				key = prefix + "." + tag
			}
			fv := rv.Field(i)
			if f.Type.Kind() == reflect.Struct {
				walk(key, fv)
				continue
			}
			k := configKey{Key: key, Type: typeName(f.Type), Default: defaultString(key, fv)}
			if fl, ok := byKey[key]; ok {
				k.Flag = "--" + fl.Name
				if fl.Value.Type() == "stringArray" {
					k.Flag += " (repeatable)"
				}
				k.Desc = fl.Usage
			}
			if envCapable(f.Type) {
				k.Env = "CHORUS_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
			}
			if d, ok := keyDescriptions[key]; ok {
				k.Desc = d
			}
			out = append(out, k)
		}
	}
	walk("", reflect.ValueOf(agent.DefaultConfig()))
	return out
}

var durationType = reflect.TypeOf(time.Duration(0))

// typeName is the user's name of a key's type.
func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Bool:
		return "bool"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "integer"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "list of strings"
	case t.Kind() == reflect.Slice:
		return "list of objects"
	case t.Kind() == reflect.Map && t.Elem() == durationType:
		return "map of durations"
	case t.Kind() == reflect.Map:
		return "map of strings"
	}
	return t.String()
}

// envCapable reports whether a CHORUS_* variable can set a key of type t:
// scalars, durations and lists of strings (comma-separated) can; maps and
// lists of objects are for config files.
func envCapable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Map:
		return false
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	}
	return true
}

// defaultString formats a key's default for the table.
func defaultString(key string, v reflect.Value) string {
	if s, ok := specialDefaults[key]; ok {
		return s
	}
	if v.Type() == durationType {
		return "`" + time.Duration(v.Int()).String() + "`"
	}
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return "—"
		}
		return "`" + v.String() + "`"
	case reflect.Slice, reflect.Map:
		if v.Len() == 0 {
			return "—"
		}
	}
	return fmt.Sprintf("`%v`", v.Interface())
}

// configReference renders the generated part of docs/configuration.md.
func configReference(flags *pflag.FlagSet) string {
	var b strings.Builder
	b.WriteString("| key | type | default | flag | environment | what it does |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, k := range configKeys(flags) {
		cell := func(s string) string {
			if s == "" {
				return "—"
			}
			return strings.ReplaceAll(s, "|", `\|`)
		}
		code := func(s string) string {
			if s == "" {
				return "—"
			}
			if i := strings.Index(s, " ("); i > 0 {
				return "`" + s[:i] + "`" + s[i:]
			}
			return "`" + s + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n",
			k.Key, k.Type, cell(k.Default), code(k.Flag), code(k.Env), cell(k.Desc))
	}
	// Flags that are no config key.
	var only []string
	keys := map[string]bool{}
	for _, k := range configKeys(flags) {
		keys[k.Key] = true
	}
	flags.VisitAll(func(f *pflag.Flag) {
		key, ok := flagKeys[f.Name]
		if !ok {
			key = strings.ReplaceAll(f.Name, "-", "_")
		}
		if !keys[key] && f.Name != "help" {
			only = append(only, f.Name)
		}
	})
	sort.Strings(only)
	b.WriteString("\nFlags that are not config keys:\n\n")
	b.WriteString("| flag | environment | what it does |\n|---|---|---|\n")
	for _, name := range only {
		f := flags.Lookup(name)
		env := "CHORUS_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		fl := "--" + name
		if f.Value.Type() == "stringArray" {
			fl += "` (repeatable)"
		} else {
			fl += "`"
		}
		fmt.Fprintf(&b, "| `%s | `%s` | %s |\n", fl, env, f.Usage)
	}
	return b.String()
}
