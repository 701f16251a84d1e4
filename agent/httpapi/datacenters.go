package httpapi

import (
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/chorusdns/chorus/agent/filter"
	"github.com/chorusdns/chorus/catalog"
)

// Several datacenters. Every agent holds a summary of each remote
// datacenter (catalog.RemoteDatacenter, replicated by agent/wan); the
// reads below answer ?dc=<remote> from it, like the local catalog, and
// list the datacenters nearest first.

// WANGossip is the optional part of Gossip for the WAN pool: the agent
// implements it; a Gossip without it has no WAN pool.
type WANGossip interface {
	// WANMembers lists the WAN pool's members while this agent is one of
	// its datacenter's speakers, else nothing.
	WANMembers() []Member
}

// remoteReads are the path prefixes whose GET answers may come from a
// remote datacenter's summary.
var remoteReads = []string{"/v1/catalog/", "/v1/health/"}

// remoteDC returns the remote datacenter a read names with ?dc=, or nil
// when it names this one (or none). Any other datacenter, or a request
// that cannot be answered from a summary, is "No path to datacenter".
func (a *Server) remoteDC(r *http.Request) (*catalog.RemoteDatacenter, error) {
	dc := params(r).Get("dc")
	if dc == "" || strings.EqualFold(dc, a.cfg().Datacenter) {
		return nil, nil
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		for _, p := range remoteReads {
			if strings.HasPrefix(r.URL.Path, p) && r.URL.Path != "/v1/catalog/datacenters" {
				if rdc, ok := a.store.Snapshot().Remote(dc); ok {
					return rdc, nil
				}
			}
		}
	}
	return nil, errorf(http.StatusInternalServerError, "No path to datacenter")
}

// forDC makes a catalog read answer from the summary of the datacenter
// ?dc= names, when it names a remote one: the answer is rendered from the
// remote catalog held in the snapshot (so it changes with the summary),
// and X-Chorus-Stale reports a summary that could not be refreshed
// lately. It returns q unchanged for this datacenter.
func (a *Server) forDC(w http.ResponseWriter, r *http.Request, q readQuery) (readQuery, error) {
	if q.local {
		return q, nil
	}
	rdc, err := a.remoteDC(r)
	if err != nil || rdc == nil {
		return q, err
	}
	name := rdc.Name
	if rdc.Stale {
		w.Header().Set("X-Chorus-Stale", "true")
	}
	render := q.render
	q.render = func(s *catalog.Snapshot) (any, error) {
		rdc, ok := s.Remote(name)
		if !ok {
			return nil, errorf(http.StatusInternalServerError, "No path to datacenter")
		}
		return render(rdc.Snapshot)
	}
	// The remote catalog's indexes are its own: wake on any change.
	q.key = keyAll
	return q, nil
}

// withFailover makes /v1/health/service/<name>?failover answer from the
// first datacenter of the service's failover rule (its chorus-failover
// meta, else the agent's failover setting) that has a healthy instance,
// when this datacenter has none. Such an answer carries
// X-Chorus-Failover: <datacenter>, counts in
// chorus_http_failover_answers_total and is logged (at most once per
// service and datacenter every logEvery). Without ?failover, or with
// ?dc=, q is returned unchanged.
func (a *Server) withFailover(w http.ResponseWriter, r *http.Request, name string, q readQuery) (readQuery, error) {
	on, err := boolParam(r, "failover")
	if err != nil || !on || params(r).Get("dc") != "" {
		return q, err
	}
	// The rendered answer is shared between requests: the marking is
	// per request, from the datacenter of the entries served.
	order := q.order
	q.order = func(v any) any {
		if dc := remoteOf(v, a.cfg().Datacenter); dc != "" {
			w.Header().Set("X-Chorus-Failover", dc)
			a.metrics.failovers.WithLabelValues(dc).Inc()
			if ok, n := a.logs.allow("failover\x00" + name + "\x00" + dc); ok {
				a.logger.Info("no healthy instance here: answering from another datacenter", "service", name, "datacenter", dc, "suppressed", n)
			}
		}
		if order != nil {
			return order(v)
		}
		return v
	}
	render := q.render
	q.render = func(s *catalog.Snapshot) (any, error) {
		v, err := render(s)
		if err != nil || hasHealthy(v) {
			return v, err
		}
		for _, rdc := range a.failoverRule(s, name).Order(s, a.cfg().Datacenter) {
			rv, err := render(rdc.Snapshot)
			if err == nil && hasHealthy(rv) {
				return rv, nil
			}
		}
		return v, nil
	}
	q.key = keyAll
	return q, nil
}

// failoverRule is the failover rule of service name: the first valid
// chorus-failover meta of its local instances, else the agent's.
func (a *Server) failoverRule(s *catalog.Snapshot, name string) catalog.Failover {
	if se, ok := s.Service(name); ok {
		for _, inst := range se.Instances.Values() {
			if v, ok := inst.Service.Meta[catalog.MetaFailover]; ok {
				if f, err := catalog.ParseFailover(v); err == nil && !f.Empty() {
					return f
				}
			}
		}
	}
	f, _ := catalog.ParseFailover(a.cfg().Failover) // validated by the agent
	return f
}

// remoteOf returns the datacenter of a health answer's entries when it is
// not local (a failover answer), else "".
func remoteOf(v any, local string) string {
	entries, ok := v.([]serviceEntry)
	if !ok || len(entries) == 0 || strings.EqualFold(entries[0].Node.Datacenter, local) {
		return ""
	}
	return entries[0].Node.Datacenter
}

// hasHealthy reports whether a health answer has an entry none of whose
// checks is critical (or worse).
func hasHealthy(v any) bool {
	entries, ok := v.([]serviceEntry)
	if !ok {
		return false
	}
	for _, e := range entries {
		healthy := true
		for _, c := range e.Checks {
			if c.Status != catalog.HealthPassing && c.Status != catalog.HealthWarning {
				healthy = false
				break
			}
		}
		if healthy {
			return true
		}
	}
	return false
}

// datacenterNames lists this datacenter, then the remote ones nearest
// first by WAN round-trip time (unknown RTTs last), as Consul orders
// /v1/catalog/datacenters.
func (a *Server) datacenterNames() []string {
	out := []string{a.cfg().Datacenter}
	for _, r := range a.store.Snapshot().Remotes() {
		out = append(out, r.Name)
	}
	return out
}

// datacenterInfo is one row of /v1/chorus/datacenters.
type datacenterInfo struct {
	Name string
	// Local marks this agent's own datacenter.
	Local bool `json:",omitempty"`
	// Version is the remote summary's version.
	Version uint64 `json:",omitempty"`
	// Confirmed is when a speaker last saw the datacenter reachable.
	Confirmed *time.Time `json:",omitempty"`
	// RTTMillis is the WAN round-trip time (0: unknown).
	RTTMillis float64 `json:",omitempty"`
	// Stale: the summary could not be refreshed lately; it is still
	// answered from.
	Stale    bool `json:",omitempty"`
	Services int
	Nodes    int
}

// apiChorusDatacenters lists every known datacenter with the state of its
// summary, nearest first.
func (a *Server) apiChorusDatacenters(w http.ResponseWriter, r *http.Request) (any, error) {
	return a.serve(w, r, readQuery{key: keyAll, render: func(s *catalog.Snapshot) (any, error) {
		out := []datacenterInfo{{Name: a.cfg().Datacenter, Local: true, Services: s.ServiceCount(), Nodes: s.NodeCount()}}
		for _, rdc := range s.Remotes() {
			c := rdc.Confirmed
			out = append(out, datacenterInfo{
				Name: rdc.Name, Version: rdc.Version, Confirmed: &c, RTTMillis: float64(rdc.RTT.Microseconds()) / 1000,
				Stale: rdc.Stale, Services: rdc.Snapshot.ServiceCount(), Nodes: rdc.Snapshot.NodeCount(),
			})
		}
		return out, nil
	}})
}

// wanMembers lists the WAN pool's members that match f, sorted by name,
// or none when this agent is not a speaker.
func (a *Server) wanMembers(f *filter.Filter) []Member {
	out := []Member{}
	wg, ok := a.gossip.(WANGossip)
	if !ok {
		return out
	}
	ms := wg.WANMembers()
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	for _, m := range ms {
		if f.Match(&m) {
			out = append(out, m)
		}
	}
	return out
}
