package agent

import (
	"fmt"
	"net"
	"strconv"

	"github.com/chorusdns/chorus/catalog"
)

// consulServiceName is the name Consul's servers register themselves
// under; builtin_service_consul adds it.
const consulServiceName = "consul"

// validateBuiltin checks builtin_service: a valid service name, or "" (off).
func (c *Config) validateBuiltin() error {
	if c.BuiltinService == "" {
		return nil
	}
	svc := catalog.Service{ID: c.BuiltinService, Name: c.BuiltinService}
	if err := svc.Validate(); err != nil {
		return fmt.Errorf("builtin_service: %v", err)
	}
	return nil
}

// setBuiltin computes the built-in services from the configuration and the
// bound HTTP address and hands them to the local state, which adds them to
// every record of this node (local.State.SetBuiltin): each is the agent's
// HTTP endpoint, at the node's address when HTTP listens on every address
// (0.0.0.0 or ::), else at the address it listens on; no checks of its
// own, so its health is the node's (serfHealth and node checks): passing
// while the agent is alive. A registration with a built-in service's ID
// takes its place. Called by Start before the first publish.
func (a *Agent) setBuiltin(cfg *Config, httpAddr net.Addr) {
	if cfg.BuiltinService == "" {
		return
	}
	tcp, ok := httpAddr.(*net.TCPAddr)
	if !ok {
		return
	}
	addr := ""
	if !tcp.IP.IsUnspecified() {
		addr = tcp.IP.String()
	}
	meta := map[string]string{"version": Version}
	if cfg.HTTPSPort > 0 && a.httpsLn != nil {
		if t, ok := a.httpsLn.Addr().(*net.TCPAddr); ok {
			meta["https_port"] = strconv.Itoa(t.Port)
		}
	}
	names := []string{cfg.BuiltinService}
	if cfg.BuiltinServiceConsul && cfg.BuiltinService != consulServiceName {
		names = append(names, consulServiceName)
	}
	var svcs []catalog.Service
	for _, n := range names {
		svcs = append(svcs, catalog.Service{ID: n, Name: n, Address: addr, Port: tcp.Port, Meta: meta, Weights: catalog.DefaultWeights})
	}
	if err := a.local.SetBuiltin(svcs); err != nil {
		a.logger.Error("the built-in service does not encode; it is left out", "services", names, "err", err)
	}
}
