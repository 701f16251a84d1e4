package agent

import (
	"errors"
	"fmt"
	"reflect"
)

// Reload applies a new configuration read after SIGHUP: config-file
// services and their checks (added, changed and removed; API
// registrations untouched), DNS settings and check settings. Settings that
// need a restart (ports, addresses, node name, data dir, datacenter) keep
// their running values; changing them is reported as an error and nothing
// is applied.
func (a *Agent) Reload(next Config) error {
	cur := a.cfg.Load()
	for _, c := range []struct {
		key     string
		changed bool
	}{
		{"node", next.NodeName != cur.NodeName},
		{"data_dir", next.DataDir != cur.DataDir && next.DataDir != ""},
		{"bind", next.Bind != cur.Bind},
		{"advertise", next.Advertise != cur.Advertise},
		{"client", next.Client != cur.Client},
		{"http_port", next.HTTPPort != cur.HTTPPort},
		{"https_port", next.HTTPSPort != cur.HTTPSPort},
		{"dns_port", next.DNSPort != cur.DNSPort},
		{"serf_port", next.SerfPort != cur.SerfPort},
		{"serf_wan_port", next.SerfWANPort != cur.SerfWANPort},
		{"wan_reconnect_timeout", next.WANReconnectTimeout != cur.WANReconnectTimeout},
		{"datacenter", next.Datacenter != cur.Datacenter},
		{"docker_socket", next.DockerSocket != cur.DockerSocket},
		{"builtin_service", next.BuiltinService != cur.BuiltinService},
		{"builtin_service_consul", next.BuiltinServiceConsul != cur.BuiltinServiceConsul},
	} {
		if c.changed {
			return fmt.Errorf("reload: %s cannot change without a restart", c.key)
		}
	}
	next.DataDir = cur.DataDir
	if err := next.Validate(); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if err := a.dns.Reload(a.dnsConfig(&next, a.local.Node().Address)); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	a.cfg.Store(&next)
	a.api.SetSettings(a.apiSettings(&next))
	a.local.SetEnableScriptChecks(next.EnableScriptChecks, next.EnableLocalScriptChecks)
	a.gossip.WAN().SetConfig(next.wanConfig())
	if !reflect.DeepEqual(next.Watches, cur.Watches) {
		a.hooks.SetWatches(a.ctx, a.HTTPAddr(), next.Watches)
	}
	if err := a.local.LoadConfigServices(next.Services); err != nil {
		return fmt.Errorf("reload services: %w", err)
	}
	return nil
}

// SetReloadSource sets how PUT /v1/agent/reload reloads this agent: load
// the configuration again from where it came from (the config files and
// flags) and apply it with Reload, as SIGHUP does. f must be safe to call
// from any goroutine; until it is set, the endpoint answers that the
// agent has no configuration source to reload from.
func (a *Agent) SetReloadSource(f func() error) { a.reloadSource.Store(&f) }

// reloadFromSource is the HTTP API's reload.
func (a *Agent) reloadFromSource() error {
	p := a.reloadSource.Load()
	if p == nil {
		return errors.New("this agent was not started from configuration files, so there is nothing to reload from")
	}
	return (*p)()
}
