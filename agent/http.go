package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chorusdns/chorus/catalog"
)

// maxBody bounds request bodies; larger ones get 413.
const maxBody = 1 << 20

// Blocking-query waits, as Consul: 5 minutes by default, at most 10, plus
// up to 1/16 of jitter so that many watchers do not wake in step.
const (
	defaultWait = 5 * time.Minute
	maxWait     = 10 * time.Minute
)

// httpError is an error with an HTTP status.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// statusOf maps an error onto its HTTP status.
func statusOf(err error) int {
	var he *httpError
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.code
	case errors.As(err, &mb):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrNotTTL):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// apiFunc handles a request and returns the value to encode as JSON (nil
// for an empty 200) or an error.
type apiFunc func(w http.ResponseWriter, r *http.Request) (any, error)

// httpHandler builds the HTTP API.
func (a *Agent) httpHandler() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, f apiFunc) { mux.Handle(pattern, a.wrap(f)) }

	// Agent endpoints.
	h("GET /v1/agent/self", a.apiSelf)
	h("GET /v1/agent/members", a.apiMembers)
	h("GET /v1/agent/services", a.apiAgentServices)
	h("GET /v1/agent/service/{id}", a.apiAgentService)
	h("PUT /v1/agent/service/register", a.apiRegister)
	h("GET /v1/agent/service/register", methodNotAllowed("PUT"))
	h("PUT /v1/agent/service/deregister/{id}", a.apiDeregister)
	h("PUT /v1/agent/service/maintenance/{id}", a.apiServiceMaint)
	h("PUT /v1/agent/service/load/{id}", a.apiServiceLoad)
	h("GET /v1/agent/checks", a.apiAgentChecks)
	h("PUT /v1/agent/check/register", a.apiCheckRegister)
	h("PUT /v1/agent/check/deregister/{id}", a.apiCheckDeregister)
	h("PUT /v1/agent/check/pass/{id}", a.apiCheckTTL(catalog.HealthPassing))
	h("PUT /v1/agent/check/warn/{id}", a.apiCheckTTL(catalog.HealthWarning))
	h("PUT /v1/agent/check/fail/{id}", a.apiCheckTTL(catalog.HealthCritical))
	h("PUT /v1/agent/check/update/{id}", a.apiCheckUpdate)
	h("PUT /v1/agent/maintenance", a.apiNodeMaint)
	h("PUT /v1/agent/join/{addr}", a.apiJoin)
	h("PUT /v1/agent/leave", a.apiLeave)
	h("PUT /v1/agent/force-leave/{node}", a.apiForceLeave)

	// Catalog and health: reads of the replicated catalog.
	h("GET /v1/catalog/datacenters", a.apiDatacenters)
	h("GET /v1/catalog/services", a.apiCatalogServices)
	h("GET /v1/catalog/service/{name}", a.apiCatalogService)
	h("GET /v1/catalog/nodes", a.apiCatalogNodes)
	h("GET /v1/catalog/node/{node}", a.apiCatalogNode)
	h("GET /v1/health/service/{name}", a.apiHealthService)
	h("GET /v1/health/checks/{name}", a.apiHealthChecks)
	h("GET /v1/health/node/{node}", a.apiHealthNode)
	h("GET /v1/health/state/{state}", a.apiHealthState)
	h("GET /v1/status/leader", a.apiStatusLeader)
	h("GET /v1/status/peers", a.apiStatusPeers)

	mux.Handle("GET /metrics", promhttp.HandlerFor(a.gather, promhttp.HandlerOpts{Registry: a.reg}))
	mux.Handle("/v1/", a.wrap(func(w http.ResponseWriter, r *http.Request) (any, error) {
		return nil, errorf(http.StatusNotFound, "%s %s: Chorus does not provide this endpoint (no KV, sessions, ACL management or Connect; see docs/api.md)", r.Method, r.URL.Path)
	}))
	return mux
}

// methodNotAllowed answers 405 where a literal path would otherwise be
// taken for a {id} wildcard of another method.
func methodNotAllowed(allow string) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		w.Header().Set("Allow", allow)
		return nil, errorf(http.StatusMethodNotAllowed, "method %s not allowed (use %s)", r.Method, allow)
	}
}

// wrap adapts an apiFunc: body limit, JSON encoding, error mapping,
// Consul's consistency headers and metrics.
func (a *Agent) wrap(f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := a.checkDC(r); err != nil {
			a.writeError(w, r, err, start)
			return
		}
		v, err := f(w, r)
		if err != nil {
			a.writeError(w, r, err, start)
			return
		}
		hdr := w.Header()
		// Every read is a local read of this agent's replica; there is no
		// leader to be out of contact with.
		hdr.Set("X-Consul-KnownLeader", "true")
		hdr.Set("X-Consul-LastContact", "0")
		hdr.Set("X-Consul-Effective-Consistency", "leader")
		if v == nil {
			hdr.Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			a.observe(r, http.StatusOK, start)
			return
		}
		var b []byte
		if _, ok := r.URL.Query()["pretty"]; ok {
			b, err = json.MarshalIndent(v, "", "    ")
		} else {
			b, err = json.Marshal(v)
		}
		if err != nil {
			a.writeError(w, r, err, start)
			return
		}
		hdr.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(b)
		w.Write([]byte("\n"))
		a.observe(r, http.StatusOK, start)
	})
}

func (a *Agent) writeError(w http.ResponseWriter, r *http.Request, err error, start time.Time) {
	code := statusOf(err)
	msg := err.Error()
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		msg = fmt.Sprintf("request body is larger than %d bytes", mb.Limit)
	}
	if code >= 500 {
		a.logger.Error("http request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
	a.observe(r, code, start)
}

func (a *Agent) observe(r *http.Request, code int, start time.Time) {
	a.metrics.httpRequests.WithLabelValues(r.Method, strconv.Itoa(code)).Inc()
	a.metrics.httpDuration.WithLabelValues(r.Method).Observe(time.Since(start).Seconds())
}

// checkDC accepts ?dc= only for this agent's own datacenter.
func (a *Agent) checkDC(r *http.Request) error {
	dc := r.URL.Query().Get("dc")
	if dc == "" || strings.EqualFold(dc, a.cfg.Load().Datacenter) {
		return nil
	}
	return errorf(http.StatusBadRequest, "datacenter %q: this agent serves only datacenter %q (Chorus has no cross-datacenter forwarding)", dc, a.cfg.Load().Datacenter)
}

// readBody reads the whole request body (bounded by wrap's limit).
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, err
		}
		return nil, errorf(http.StatusBadRequest, "read body: %v", err)
	}
	return b, nil
}

// blocking serves a read that supports Consul's blocking queries: with
// ?index=N it waits (up to ?wait=, default 5 min, max 10 min) until the
// result's index passes N, then renders. index returns the index of the
// data this query depends on, so unrelated changes do not wake it. The
// X-Consul-Index header is always set and always ≥ 1.
func (a *Agent) blocking(w http.ResponseWriter, r *http.Request, index func(*catalog.Snapshot) uint64, render func(*catalog.Snapshot) (any, error)) (any, error) {
	q := r.URL.Query()
	var minIndex uint64
	if s := q.Get("index"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "index %q: not an unsigned integer", s)
		}
		minIndex = v
	}
	wait := defaultWait
	if s := q.Get("wait"); s != "" {
		d, err := parseWait(s)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "wait %q: %v", s, err)
		}
		wait = min(d, maxWait)
	}
	snap := a.store.Snapshot()
	if minIndex > 0 {
		wait += rand.N(wait/16 + 1)
		timer := time.NewTimer(wait)
		defer timer.Stop()
	loop:
		for {
			cur := index(snap)
			// Return at once when the data moved past the client's index,
			// or when the client is ahead of us (e.g. it last talked to
			// another agent or before a restart): it must reset.
			if cur > minIndex || minIndex > snap.Index {
				break
			}
			select {
			case <-snap.Changed():
				snap = a.store.Snapshot()
			case <-timer.C:
				snap = a.store.Snapshot()
				break loop
			case <-r.Context().Done():
				return nil, r.Context().Err()
			}
		}
	}
	idx := max(index(snap), 1)
	w.Header().Set("X-Consul-Index", strconv.FormatUint(idx, 10))
	return render(snap)
}

// parseWait parses Consul's wait parameter: a Go duration ("5m",
// "120000ms") or a bare number of seconds.
func parseWait(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New("not a duration (e.g. 30s, 5m, 120000ms)")
	}
	return d, nil
}

// boolParam reports whether a flag-style query parameter is set: present
// with no value, or with a true value.
func boolParam(r *http.Request, name string) (bool, error) {
	q := r.URL.Query()
	if _, ok := q[name]; !ok {
		return false, nil
	}
	v := q.Get(name)
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errorf(http.StatusBadRequest, "%s=%q: want true or false", name, v)
	}
	return b, nil
}
