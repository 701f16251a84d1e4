package httpapi

import (
	"net/http"
	"strings"
)

// notProvidedFeatures names, by path prefix under /v1/, the parts of
// Consul's API that Chorus does not provide. Longer prefixes come first.
var notProvidedFeatures = []struct{ prefix, what string }{
	{"operator/raft", "Raft (Chorus is leaderless: no servers, no Raft peers)"},
	{"operator/autopilot", "Autopilot (Chorus has no servers)"},
	{"operator/area", "network areas (Chorus has one datacenter)"},
	{"operator/segment", "network segments"},
	{"operator/license", "Enterprise licences"},
	{"operator/usage", "usage reports"},
	{"operator/", "this operator endpoint (only /v1/operator/keyring)"},
	{"agent/connect", "Connect (the service mesh)"},
	{"agent/token", "ACL token management (tokens are configured, not managed over the API)"},
	{"catalog/gateway-services", "Connect gateways"},
	{"catalog/connect", "Connect (the service mesh)"},
	{"health/connect", "Connect (the service mesh)"},
	{"health/ingress", "Connect ingress gateways"},
	{"kv", "the KV store"},
	{"acl", "ACL management (tokens are configured, not managed over the API)"},
	{"connect", "Connect (the service mesh)"},
	{"session", "sessions"},
	{"snapshot", "Raft snapshots (Chorus has no servers; each agent persists its own state)"},
	{"query", "prepared queries"},
	{"txn", "transactions"},
	{"event", "user events"},
	{"config", "config entries"},
	{"discovery-chain", "discovery chains"},
	{"exported-services", "exported services (cluster peering)"},
	{"imported-services", "imported services (cluster peering)"},
	{"peering", "cluster peering"},
	{"namespace", "namespaces"},
	{"partition", "admin partitions"},
	{"internal", "Consul's internal UI endpoints"},
	{"lock", "locks"},
	{"semaphore", "semaphores"},
}

// notProvided is the error for a /v1/ request no route of mux takes: 405
// naming the methods that path has when it has some (Consul's answer to a
// wrong method), else 501 Not Implemented with a message naming what
// Chorus does not provide, never 404, which Consul's clients read as "no
// such key" or "no such thing".
func notProvided(mux *http.ServeMux, r *http.Request) error {
	var allow []string
	for _, m := range []string{"GET", "PUT", "POST", "DELETE"} {
		if m == r.Method {
			continue
		}
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pattern := mux.Handler(r2); pattern != "/v1/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		return &methodError{allow: strings.Join(allow, ", "), err: errorf(http.StatusMethodNotAllowed,
			"method %s not allowed on %s (use %s)", r.Method, r.URL.Path, strings.Join(allow, " or "))}
	}
	p := strings.TrimPrefix(r.URL.Path, "/v1/")
	what := "this endpoint"
	for _, f := range notProvidedFeatures {
		if strings.HasPrefix(p, f.prefix) {
			what = f.what
			break
		}
	}
	return errorf(http.StatusNotImplemented, "%s %s: Chorus does not provide %s (see docs/api.md)", r.Method, r.URL.Path, what)
}

// methodError is a 405 whose Allow header lists the methods the path has.
type methodError struct {
	allow string
	err   error
}

func (e *methodError) Error() string { return e.err.Error() }
func (e *methodError) Unwrap() error { return e.err }
