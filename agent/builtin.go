package agent

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
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
	list atomic.Pointer[builtinList]
	// shadowed is the ID of a built-in service last found taken by a
	// registration (logged once per ID while it stays taken).
	shadowed atomic.Pointer[string]
}

// builtinList is the built-in services, sorted by ID, with their leaves in
// a record's hash tree (catalog.ServiceLeaf), computed once.
type builtinList struct {
	services []catalog.Service
	leaves   []catalog.Leaf
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
	slices.Sort(names)
	list := &builtinList{}
	for _, n := range names {
		svc := catalog.Service{ID: n, Name: n, Address: addr, Port: tcp.Port, Meta: meta, Weights: catalog.DefaultWeights}
		leaf, _, err := catalog.ServiceLeaf(&svc)
		if err != nil {
			a.logger.Error("the built-in service does not encode; it is left out", "service", n, "err", err)
			return
		}
		list.services = append(list.services, svc)
		list.leaves = append(list.leaves, leaf)
	}
	a.builtin.list.Store(list)
}

// withBuiltin returns rec with the built-in services added when rec is
// this agent's own node record; rec itself is not modified (the local
// state may share it). The services go in at their place in ID order (the
// record's canonical order), and their leaves are added to the hash tree
// rec carries (catalog.PieceTree.With), so signing still costs what
// changed. A registered service whose ID is a built-in service's takes its
// place: the record never holds an ID twice.
func (a *Agent) withBuiltin(rec *catalog.NodeRecord) *catalog.NodeRecord {
	p := a.builtin.list.Load()
	if p == nil || rec.Node.Name != a.cfg.Load().NodeName || rec.Deleted {
		return rec
	}
	out := *rec
	out.Services = make([]catalog.Service, 0, len(rec.Services)+len(p.services))
	var leaves []catalog.Leaf
	rest := rec.Services
	sorted := slices.IsSortedFunc(rest, func(x, y catalog.Service) int { return strings.Compare(x.ID, y.ID) })
	for i, b := range p.services {
		var j int
		var taken bool
		if sorted {
			j, taken = slices.BinarySearchFunc(rest, b.ID, func(s catalog.Service, id string) int { return strings.Compare(s.ID, id) })
		} else {
			// Not in canonical order (Sign sorts it): look the ID up.
			taken = slices.ContainsFunc(rec.Services, func(s catalog.Service) bool { return s.ID == b.ID })
		}
		out.Services = append(out.Services, rest[:j]...)
		rest = rest[j:]
		if taken {
			if last := a.builtin.shadowed.Swap(&b.ID); last == nil || *last != b.ID {
				a.logger.Warn("a registered service has the built-in service's ID; the registration takes its place", "service_id", b.ID)
			}
			continue
		}
		out.Services = append(out.Services, b)
		leaves = append(leaves, p.leaves[i])
	}
	out.Services = append(out.Services, rest...)
	if len(leaves) == 0 {
		return rec
	}
	t, err := rec.PieceTree()
	if err != nil {
		a.logger.Error("hash tree of own record", "version", rec.Version, "err", err)
		out.SetPieceTree(nil)
		return &out
	}
	out.SetPieceTree(t.With(leaves, nil))
	return &out
}
