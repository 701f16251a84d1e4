package agent

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/chorusdns/chorus/catalog"
)

// consulServiceName is the name Consul's servers register themselves
// under; builtin_service_consul adds it.
const consulServiceName = "consul"

// builtinServices are the services this agent adds to its own node record
// (see Config.BuiltinService): set once the HTTP port is bound, read by
// every publish. A nil list adds nothing.
type builtinServices struct {
	list atomic.Pointer[[]catalog.Service]
	// shadowed is the ID of a built-in service last found taken by a
	// registration (logged once per ID while it stays taken).
	shadowed atomic.Pointer[string]
}

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
// bound HTTP address: each is the agent's HTTP endpoint, at the node's
// address when HTTP listens on every address (0.0.0.0 or ::), else at the
// address it listens on; no checks of its own, so its health is the
// node's (serfHealth and node checks): passing while the agent is alive.
// Called by Start before the first publish.
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
	list := make([]catalog.Service, 0, len(names))
	for _, n := range names {
		list = append(list, catalog.Service{ID: n, Name: n, Address: addr, Port: tcp.Port, Meta: meta, Weights: catalog.DefaultWeights})
	}
	a.builtin.list.Store(&list)
}

// withBuiltin returns rec with the built-in services added when rec is
// this agent's own node record; rec itself is not modified (the local
// state may share it). A registered service whose ID is a built-in
// service's takes its place: the record never holds an ID twice.
func (a *Agent) withBuiltin(rec *catalog.NodeRecord) *catalog.NodeRecord {
	p := a.builtin.list.Load()
	if p == nil || rec.Node.Name != a.cfg.Load().NodeName {
		return rec
	}
	out := *rec
	out.Services = slices.Clone(rec.Services)
	for _, b := range *p {
		if slices.ContainsFunc(rec.Services, func(s catalog.Service) bool { return s.ID == b.ID }) {
			if last := a.builtin.shadowed.Swap(&b.ID); last == nil || *last != b.ID {
				a.logger.Warn("a registered service has the built-in service's ID; the registration takes its place", "service_id", b.ID)
			}
			continue
		}
		out.Services = append(out.Services, b)
	}
	return &out
}
