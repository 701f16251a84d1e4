package httpapi

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/chorusdns/chorus/catalog"
)

// agentServiceChecksInfo is Consul's AgentServiceChecksInfo JSON shape.
type agentServiceChecksInfo struct {
	AggregatedStatus string
	Service          *agentService
	Checks           []healthCheck
}

// statusAnswer is an answer with a status other than 200 and a body, as
// Consul's agent health endpoints give: JSON of v, or, when text is set,
// the plain text instead. The status goes in X-Consul-Reason as well.
type statusAnswer struct {
	code   int
	reason string
	v      any
	text   bool
}

// wantsText reports whether the client asked for a plain-text answer
// (?format=text or Accept: text/plain), as Consul decides it.
func wantsText(r *http.Request) bool {
	if strings.HasPrefix(r.Header.Get("Accept"), "text/plain") {
		return true
	}
	return params(r).Get("format") == "text"
}

// healthCode is Consul's status for an aggregated health: 200 passing,
// 429 warning, 503 anything else (critical, maintenance).
func healthCode(status string) int {
	switch status {
	case catalog.HealthPassing:
		return http.StatusOK
	case catalog.HealthWarning:
		return http.StatusTooManyRequests
	}
	return http.StatusServiceUnavailable
}

// localServiceHealth is the health of one agent-registered service: its
// own checks and the node's (maintenance included), aggregated as
// Consul's AggregatedStatus does.
func (a *Server) localServiceHealth(svc catalog.Service, all []catalog.Check) agentServiceChecksInfo {
	node := a.NodeName()
	checks := []healthCheck{}
	var cs []catalog.Check
	for _, c := range all {
		if c.ServiceID != "" && c.ServiceID != svc.ID {
			continue
		}
		var tags []string
		if c.ServiceID == svc.ID {
			tags = svc.Tags
		}
		checks = append(checks, toHealthCheck(node, c, tags))
		cs = append(cs, c)
	}
	as := a.toAgentService(svc)
	return agentServiceChecksInfo{AggregatedStatus: catalog.AggregateHealth(cs), Service: &as, Checks: checks}
}

// localChecks are the checks of this agent's own services and node.
func (a *Server) localChecks() []catalog.Check {
	views := a.local.Checks()
	out := make([]catalog.Check, 0, len(views))
	for _, v := range views {
		if !v.External {
			out = append(out, v.Check)
		}
	}
	return out
}

// apiAgentHealthByID is GET /v1/agent/health/service/id/<id>: the
// aggregated health of one service of this agent, as the status (200
// passing, 429 warning, 503 critical or maintenance, 404 unknown) and as
// the body (AgentServiceChecksInfo, or the status alone as text).
func (a *Server) apiAgentHealthByID(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	if id == "" {
		return nil, errorf(http.StatusBadRequest, "missing service ID")
	}
	svc, ok := a.local.Service(id)
	if !ok {
		reason := fmt.Sprintf("ServiceId %s not found", id)
		return statusAnswer{code: http.StatusNotFound, reason: reason, text: wantsText(r),
			v: agentServiceChecksInfo{AggregatedStatus: catalog.HealthCritical}}, nil
	}
	info := a.localServiceHealth(svc, a.localChecks())
	return statusAnswer{code: healthCode(info.AggregatedStatus), reason: info.AggregatedStatus, v: info, text: wantsText(r)}, nil
}

// apiAgentHealthByName is GET /v1/agent/health/service/name/<name>: every
// service of this agent with that name, and the worst of their statuses
// (404 when there is none).
func (a *Server) apiAgentHealthByName(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("name")
	if name == "" {
		return nil, errorf(http.StatusBadRequest, "missing service name")
	}
	code, reason := http.StatusNotFound, fmt.Sprintf("ServiceName %s Not Found", name)
	out := []agentServiceChecksInfo{}
	views := a.localChecks()
	for _, svc := range a.local.Services() {
		if svc.Name != name {
			continue
		}
		info := a.localServiceHealth(svc, views)
		out = append(out, info)
		// The worst status wins: 200 < 429 < 503.
		if c := healthCode(info.AggregatedStatus); code == http.StatusNotFound || c > code {
			code, reason = c, info.AggregatedStatus
		}
	}
	return statusAnswer{code: code, reason: reason, v: out, text: wantsText(r)}, nil
}
