package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/serf/coordinate"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/ui"
)

// maxBody bounds request bodies; larger ones get 413.
const maxBody = 1 << 20

// maxURIBytes bounds a request's target (path and query string); longer
// ones get 414. (http.Server.MaxHeaderBytes bounds the request line and
// headers together before any handler runs.)
const maxURIBytes = 16 << 10

// defaultBodyTimeout is how long a request's body may take to arrive,
// counted from the moment its headers have been read: at maxBody, 100 KB/s.
// Requests without a body (every read, blocking queries included) have no
// such deadline.
const defaultBodyTimeout = 10 * time.Second

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
	case errors.Is(err, local.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, local.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, local.ErrInvalid), errors.Is(err, local.ErrNotTTL):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// apiFunc handles a request and returns the value to encode as JSON (nil
// for an empty 200, an encoded value for a body already encoded) or an
// error.
type apiFunc func(w http.ResponseWriter, r *http.Request) (any, error)

// encoded is a response body already encoded as compact JSON.
type encoded []byte

// streamed is returned by a handler that has written its whole answer
// itself (a stream, or another format): wrap writes nothing more.
type streamed struct{}

// Settings are the agent settings the API reports or obeys. A reload
// replaces them as a whole (Server.SetSettings).
type Settings struct {
	Datacenter string
	NodeName   string
	Zone       string
	Domain     string
	NodeMeta   map[string]string
	// Version is the agent's build version.
	Version string
	ACL     ACLConfig
	// DebugConfig, when set, returns /v1/agent/self's DebugConfig: the
	// agent's settings under Consul's key names.
	DebugConfig func() map[string]any
	// Failover is the agent-wide failover rule (catalog.ParseFailover)
	// of /v1/health/service/<name>?failover.
	Failover string
	// EnableDebug serves /debug/pprof/ (debug.go).
	EnableDebug bool
}

// Gossip is the gossip layer and the agent's membership operations as the
// API sees them. The agent implements it over Serf.
type Gossip interface {
	// Members lists every known member in Consul's AgentMember shape.
	Members() []Member
	// LocalMember is this agent's own member.
	LocalMember() Member
	// Stats are the gossip layer's figures for /v1/agent/self.
	Stats() map[string]string
	// Addr is this agent's gossip address ("ip:port").
	Addr() string
	// Join contacts the members at addrs; it returns how many answered.
	Join(addrs []string) (int, error)
	// Leave leaves the cluster gracefully and stops the agent; it
	// returns once the leave has been broadcast (bounded by ctx and a
	// timeout of its own), the stop going on in the background.
	Leave(ctx context.Context)
	// ForceLeave marks a failed member as left.
	ForceLeave(node string, prune bool) error
	// KeyringOp runs a keyring operation across the cluster: "list",
	// "install", "use" or "remove".
	KeyringOp(op, key string) (*KeyringResponse, error)
	// Coordinate is a node's last known network coordinate ("" or the
	// agent's own name for its own).
	Coordinate(node string) (*coordinate.Coordinate, bool)
	// RTT estimates the round-trip time from this agent to node.
	RTT(node string) (time.Duration, bool)
}

// Member is Consul's AgentMember JSON shape.
type Member struct {
	Name        string
	Addr        string
	Port        uint16
	Tags        map[string]string
	Status      int
	ProtocolMin uint8
	ProtocolMax uint8
	ProtocolCur uint8
	DelegateMin uint8
	DelegateMax uint8
	DelegateCur uint8
}

// Server serves the HTTP API of one agent: Consul's paths over the
// catalog (reads), the local state (this agent's registrations) and the
// gossip layer. It adds what only the API needs: the blocking-query hub
// and the per-snapshot render cache. Create it with New; Run wakes
// blocking queries and must run while the handler serves.
type Server struct {
	settings atomic.Pointer[Settings]
	store    *catalog.Store
	local    Local
	// externals is nil on an agent that does not set external nodes up.
	externals Externals
	gossip    Gossip
	logger    *slog.Logger
	reg       prometheus.Registerer
	gather    prometheus.Gatherer
	metrics   *metrics

	hub   *watchHub
	cache *renderCache
	// results indexes the answers to questions (X-Consul-Index); objects
	// the nodes, services and checks inside them (CreateIndex and
	// ModifyIndex).
	results *indexTable
	objects *indexTable
	// stopped is closed when Run returns: parked queries answer then.
	stopped chan struct{}
	// bodyTimeout is how long a request body may take to arrive.
	bodyTimeout time.Duration
	// logs rate-limits the log lines that clients can cause.
	logs *rateLog
	// extCoords holds coordinates set with PUT /v1/coordinate/update for
	// nodes that run no agent, by lower-case node name.
	extCoords sync.Map
	// logTap feeds /v1/agent/monitor (SetLogTap).
	logTap atomic.Pointer[LogTap]
	// reload reloads the agent's configuration (SetReload).
	reload atomic.Pointer[func() error]
}

// SetReload sets what PUT /v1/agent/reload runs: the agent's reload from
// its configuration source.
func (a *Server) SetReload(f func() error) { a.reload.Store(&f) }

// apiReload is PUT /v1/agent/reload: the configuration files are read
// again and applied, as on SIGHUP; a reload that fails (a bad file, a
// setting that needs a restart) is a 500 naming why, and nothing changes.
func (a *Server) apiReload(w http.ResponseWriter, r *http.Request) (any, error) {
	f := a.reload.Load()
	if f == nil {
		return nil, errorf(http.StatusInternalServerError, "this agent cannot reload")
	}
	if err := (*f)(); err != nil {
		return nil, errorf(http.StatusInternalServerError, "%v", err)
	}
	return nil, nil
}

// New returns the API of an agent. reg receives the API's metrics;
// gather serves /metrics. It starts no goroutine.
func New(settings Settings, store *catalog.Store, st Local, ext Externals, gossip Gossip, logger *slog.Logger, reg prometheus.Registerer, gather prometheus.Gatherer) *Server {
	a := &Server{
		store: store, local: st, externals: ext, gossip: gossip, logger: logger.With("component", "http"), reg: reg, gather: gather,
		hub: newWatchHub(store), cache: newRenderCache(),
		results: newIndexTable(1 << 14), objects: newIndexTable(1 << 17),
		stopped: make(chan struct{}), bodyTimeout: defaultBodyTimeout, logs: newRateLog(logEvery),
	}
	a.settings.Store(&settings)
	a.metrics = newMetrics(reg, func() float64 { return float64(a.hub.waiting()) }, a.results.size)
	return a
}

// SetSettings replaces the settings (a reload).
func (a *Server) SetSettings(s Settings) { a.settings.Store(&s) }

// cfg returns the settings in force.
func (a *Server) cfg() *Settings { return a.settings.Load() }

// NodeName is this agent's node name.
func (a *Server) NodeName() string { return a.cfg().NodeName }

// Run wakes parked blocking queries as the catalog changes, until ctx is
// done; parked queries then answer at once.
func (a *Server) Run(ctx context.Context) {
	defer close(a.stopped)
	a.hub.run(ctx)
}

// Handler returns the API's handler, ACL enforcement included. It
// answers 414 to a request target longer than 16 KiB, and gives a request
// with a body 10 s from the end of its headers for the body to arrive (the
// connection is closed if it has not); requests without a body, blocking
// queries among them, have no deadline.
func (a *Server) Handler() http.Handler { return a.guard(a.withACL(a.routes())) }

// guard applies the limits every request is held to before anything else
// looks at it: the target's length and the body's deadline.
func (a *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := len(r.RequestURI); n > maxURIBytes {
			a.writeError(w, r, errorf(http.StatusRequestURITooLong,
				"request target is %d bytes, over the limit of %d bytes (shorten the query string, e.g. the filter expression)", n, maxURIBytes), time.Now())
			return
		}
		if r.ContentLength != 0 { // a body: announced, or chunked (-1)
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(a.bodyTimeout)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the body's read deadline once the whole body has
// been read, so that what follows on the connection (net/http's watch for
// the client going away during a long answer) is not cut short by it.
type deadlineBody struct {
	io.ReadCloser
	rc *http.ResponseController
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (a *Server) routes() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, f apiFunc) { mux.Handle(pattern, a.wrap(f)) }

	// The web page: static files that read this API from the browser.
	mux.Handle("GET /ui/", ui.Handler())
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusMovedPermanently))

	// Agent endpoints: this agent's own state.
	h("GET /v1/agent/self", a.apiSelf)
	h("GET /v1/agent/host", a.apiHost)
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
	h("PUT /v1/agent/reload", a.apiReload)
	h("GET /v1/agent/metrics", a.apiAgentMetrics)
	h("GET /v1/agent/monitor", a.apiAgentMonitor)
	h("GET /v1/agent/health/service/id/{id}", a.apiAgentHealthByID)
	h("GET /v1/agent/health/service/name/{name}", a.apiAgentHealthByName)

	// Catalog and health: reads of the replicated catalog.
	h("GET /v1/catalog/datacenters", a.apiDatacenters)
	h("GET /v1/chorus/datacenters", a.apiChorusDatacenters)
	h("GET /v1/catalog/services", a.apiCatalogServices)
	h("GET /v1/catalog/service/{name}", a.apiCatalogService)
	h("GET /v1/catalog/nodes", a.apiCatalogNodes)
	h("GET /v1/catalog/node/{node}", a.apiCatalogNode)
	h("GET /v1/catalog/node-services/{node}", a.apiCatalogNodeServices)
	h("PUT /v1/catalog/register", a.apiCatalogRegister)
	h("PUT /v1/catalog/deregister", a.apiCatalogDeregister)
	h("GET /v1/health/service/{name}", a.apiHealthService)
	h("GET /v1/health/checks/{name}", a.apiHealthChecks)
	h("GET /v1/health/node/{node}", a.apiHealthNode)
	h("GET /v1/health/state/{state}", a.apiHealthState)
	h("GET /v1/coordinate/datacenters", a.apiCoordinateDatacenters)
	h("GET /v1/coordinate/nodes", a.apiCoordinateNodes)
	h("GET /v1/coordinate/node/{node}", a.apiCoordinateNode)
	h("PUT /v1/coordinate/update", a.apiCoordinateUpdate)
	h("GET /v1/status/leader", a.apiStatusLeader)
	h("GET /v1/status/peers", a.apiStatusPeers)

	// Gossip keyring (keyring.go): GET lists, POST installs, PUT
	// makes primary, DELETE removes.
	for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
		h(m+" /v1/operator/keyring", a.apiKeyring)
	}

	mux.Handle("/debug/pprof/", a.pprof())
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.gather, promhttp.HandlerOpts{Registry: a.reg}))
	mux.Handle("/v1/", a.wrap(func(w http.ResponseWriter, r *http.Request) (any, error) {
		return nil, notProvided(mux, r)
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

// wrap adapts an apiFunc: body limit, datacenter and consistency checks,
// JSON encoding, error mapping, Consul's consistency headers and metrics.
func (a *Server) wrap(f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := a.checkDC(r); err != nil {
			a.writeError(w, r, err, start)
			return
		}
		stale, err := consistency(r)
		if err != nil {
			a.writeError(w, r, err, start)
			return
		}
		v, err := f(w, r)
		if err != nil {
			a.writeError(w, r, err, start)
			return
		}
		if _, ok := v.(streamed); ok {
			a.observe(r, http.StatusOK, start)
			return
		}
		hdr := w.Header()
		// Every read is a local read of this agent's replica; there is no
		// leader to be out of contact with, so the answer is as fresh as
		// this agent's catalog and clients asking for a maximum staleness
		// (consul-template's max_stale) never need to retry.
		hdr.Set("X-Consul-KnownLeader", "true")
		hdr.Set("X-Consul-LastContact", "0")
		hdr.Set("X-Consul-Effective-Consistency", stale)
		if _, ok := params(r)["cached"]; ok {
			hdr.Set("X-Cache", "MISS")
			hdr.Set("Age", "0")
		}
		hdr.Set("Content-Type", "application/json")
		if sa, ok := v.(statusAnswer); ok {
			a.writeStatusAnswer(w, r, sa, start)
			return
		}
		if v == nil {
			w.WriteHeader(http.StatusOK)
			a.observe(r, http.StatusOK, start)
			return
		}
		b, ok := v.(encoded)
		if !ok {
			if b, err = json.Marshal(v); err != nil {
				hdr.Del("Content-Type")
				a.writeError(w, r, err, start)
				return
			}
		}
		if _, ok := params(r)["pretty"]; ok {
			var buf bytes.Buffer
			if json.Indent(&buf, b, "", "    ") == nil {
				b = buf.Bytes()
			}
		}
		w.WriteHeader(http.StatusOK)
		w.Write(b)
		w.Write([]byte("\n"))
		a.observe(r, http.StatusOK, start)
	})
}

// params returns the request's query parameters, parsed once per request
// (the API reads them in many places; r.URL.Query parses every time).
func params(r *http.Request) url.Values {
	if r.Form == nil {
		r.Form = r.URL.Query()
	}
	return r.Form
}

// consistency validates the consistency-mode parameters and returns the
// mode to report. Chorus serves every read from the local replica, so
// stale, consistent and cached are all accepted and answered the same way.
func consistency(r *http.Request) (string, error) {
	q := params(r)
	_, stale := q["stale"]
	_, consistent := q["consistent"]
	if stale && consistent {
		return "", errorf(http.StatusBadRequest, "cannot specify ?stale with ?consistent, conflicting semantics")
	}
	return "stale", nil
}

func (a *Server) writeError(w http.ResponseWriter, r *http.Request, err error, start time.Time) {
	code := statusOf(err)
	msg := err.Error()
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		msg = fmt.Sprintf("request body is larger than %d bytes", mb.Limit)
	}
	var me *methodError
	if errors.As(err, &me) {
		w.Header().Set("Allow", me.allow)
	}
	a.logFailure(r.Method, r.URL.Path, code, err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
	a.observe(r, code, start)
}

// writeStatusAnswer writes an answer whose status is not 200 but whose
// body is an answer, not an error (the agent health endpoints).
func (a *Server) writeStatusAnswer(w http.ResponseWriter, r *http.Request, sa statusAnswer, start time.Time) {
	var b []byte
	if sa.text {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		b = []byte(sa.reason)
	} else {
		var err error
		if b, err = json.Marshal(sa.v); err != nil {
			a.writeError(w, r, err, start)
			return
		}
		b = append(b, '\n')
	}
	if sa.reason != "" {
		w.Header().Set("X-Consul-Reason", sa.reason)
	}
	w.WriteHeader(sa.code)
	w.Write(b)
	a.observe(r, sa.code, start)
}

func (a *Server) observe(r *http.Request, code int, start time.Time) {
	a.metrics.httpRequests.WithLabelValues(r.Method, strconv.Itoa(code)).Inc()
	a.metrics.httpDuration.WithLabelValues(r.Method).Observe(time.Since(start).Seconds())
}

// checkDC decides where a request's ?dc= sends it; it is the one place
// that does, for every endpoint. Empty or this agent's own datacenter is
// answered here, and so is any datacenter on the paths Consul answers
// from the local agent without reading dc (localDCPath). Any other
// answers as Consul answers a datacenter it has no path to: HTTP 500
// "No path to datacenter", unless it is a catalog or health read of a
// datacenter whose summary this agent holds (datacenters.go).
func (a *Server) checkDC(r *http.Request) error {
	dc := params(r).Get("dc")
	if dc == "" || strings.EqualFold(dc, a.cfg().Datacenter) || localDCPath(r.URL.Path) {
		params(r).Del("dc") // the same question as without it
		return nil
	}
	// A catalog or health read of a datacenter whose summary this agent
	// holds is answered from it (datacenters.go).
	_, err := a.remoteDC(r)
	return err
}

// localDCPath reports whether Consul's agent answers path itself without
// reading ?dc=: its /v1/agent/ endpoints (the agent's own state; Consul's
// Go client adds its configured dc to every request, these included),
// the gossip keyring, and the lists of datacenters. A dc there changes
// nothing, in Consul as here.
func localDCPath(path string) bool {
	switch path {
	case "/v1/catalog/datacenters", "/v1/coordinate/datacenters", "/v1/operator/keyring":
		return true
	}
	return strings.HasPrefix(path, "/v1/agent/")
}

// readBody reads the whole request body (bounded by wrap's limit).
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, err
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, errorf(http.StatusRequestTimeout, "the request body did not arrive in time: send it right after the headers")
		}
		return nil, errorf(http.StatusBadRequest, "read body: %v", err)
	}
	return b, nil
}

// readQuery describes one read endpoint for serve.
type readQuery struct {
	// key names the catalog data the answer depends on; blocking queries
	// wake only when its index moves.
	key watchKey
	// render builds the answer from a snapshot. For catalog reads it must
	// depend on nothing else, so that answers can be shared between
	// requests for the same snapshot.
	render func(*catalog.Snapshot) (any, error)
	// order, when set, reorders a rendered answer for this request only
	// (?near=): it must return a new value and leave its argument alone.
	order func(any) any
	// local marks answers read from the agent's local state rather than
	// the snapshot: they are never cached, they carry
	// X-Consul-ContentHash and they support ?hash= blocking.
	local bool
}

// queryOpts are the blocking parameters of a read.
type queryOpts struct {
	index uint64
	wait  time.Duration
	hash  string
}

func parseQueryOpts(r *http.Request) (queryOpts, error) {
	q := params(r)
	o := queryOpts{wait: defaultWait, hash: q.Get("hash")}
	if s := q.Get("index"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return o, errorf(http.StatusBadRequest, "index %q: not an unsigned integer", s)
		}
		o.index = v
	}
	if s := q.Get("wait"); s != "" {
		d, err := parseWait(s)
		if err != nil {
			return o, errorf(http.StatusBadRequest, "wait %q: %v", s, err)
		}
		o.wait = min(d, maxWait)
	}
	return o, nil
}

// answer is one answer to a read: the snapshot it was built from, the
// rendering, and the answer's index.
type answer struct {
	snap *catalog.Snapshot
	rendered
	index uint64
}

// serve answers a read, blocking as Consul's blocking queries do.
//
// Each distinct question (path and answer-shaping parameters) has an
// index that moves only when its answer changes. With ?index=N serve
// answers at once when that index is past N, or when N is ahead of this
// agent's catalog (the client talked to another agent: it must reset).
// Otherwise it waits up to ?wait= (default 5 min, max 10 min, plus up to
// 1/16 jitter) and answers as soon as the answer changes: changes
// elsewhere in the catalog neither wake it nor end it. Local endpoints
// also accept ?hash= (the X-Consul-ContentHash of a previous answer).
//
// X-Consul-Index is always set, always ≥ 1, and for one question never
// lower than an index this agent answered before.
func (a *Server) serve(w http.ResponseWriter, r *http.Request, q readQuery) (any, error) {
	o, err := parseQueryOpts(r)
	if err != nil {
		return nil, err
	}
	if q, err = a.forDC(w, r, q); err != nil {
		return nil, err
	}
	ckey := questionKey(r)
	ans, err := a.answer(q, ckey)
	if err != nil {
		return nil, err
	}
	wait := false
	switch {
	case q.local && o.hash != "":
		wait = a.contentHash(ans) == o.hash
	case o.index > 0:
		wait = ans.index <= o.index && o.index <= ans.snap.Index
	}
	if wait {
		if ans, err = a.await(r, q, ckey, o, ans); err != nil {
			return nil, err
		}
	}
	w.Header().Set("X-Consul-Index", strconv.FormatUint(max(ans.index, 1), 10))
	if q.local {
		w.Header().Set("X-Consul-ContentHash", a.contentHash(ans))
	}
	if q.order != nil {
		return q.order(ans.v), nil
	}
	return encoded(ans.body), nil
}

// answer renders q from the newest snapshot and looks up its index.
func (a *Server) answer(q readQuery, ckey string) (answer, error) {
	for {
		snap := a.store.Snapshot()
		r, err := a.result(snap, q, ckey)
		if err != nil {
			return answer{}, err
		}
		if _, idx, ok := a.results.get(ckey, snap.Index, q.key.index(snap), r.hash); ok {
			return answer{snap: snap, rendered: r, index: idx}, nil
		}
		// Another request already saw a newer snapshot with a different
		// answer: answer from the newest snapshot instead.
	}
}

// await waits until the answer differs from held, the wait passes, the
// client goes away or the agent stops, and returns the answer then.
func (a *Server) await(r *http.Request, q readQuery, ckey string, o queryOpts, held answer) (answer, error) {
	timer := time.NewTimer(o.wait + rand.N(o.wait/16+1))
	defer timer.Stop()
	hashOf := func(s *catalog.Snapshot) uint64 {
		res, err := a.result(s, q, ckey)
		if err != nil {
			return 0
		}
		return res.hash
	}
	e := a.hub.acquire(ckey, q.key, hashOf, held.snap, held.hash)
	defer a.hub.release(e)
	done := a.stopped
	snap := held.snap
	for {
		// Take the wake-up channel before looking at the catalog, so that
		// no change between the look and the wait can be missed.
		ch := a.hub.wait(e, snap)
		cur, err := a.answer(q, ckey)
		if err != nil || cur.hash != held.hash {
			return cur, err
		}
		snap = cur.snap
		select {
		case <-ch:
		case <-timer.C:
			return a.answer(q, ckey)
		case <-done:
			return cur, nil
		case <-r.Context().Done():
			return answer{}, r.Context().Err()
		}
	}
}

// result renders q for snap. Catalog answers are shared with concurrent
// requests for the same answer of the same snapshot; local answers are
// rendered every time.
func (a *Server) result(snap *catalog.Snapshot, q readQuery, ckey string) (rendered, error) {
	render := func() (rendered, error) {
		v, err := q.render(snap)
		if err != nil {
			return rendered{}, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return rendered{}, err
		}
		return rendered{v: v, body: b, hash: bodyHash(b)}, nil
	}
	if q.local {
		return render()
	}
	return a.cache.get(snap, ckey, render)
}

// contentHash is the X-Consul-ContentHash of an answer: the value's own
// ContentHash when it has one (/v1/agent/service/<id>), else a hash of
// the encoded answer.
func (a *Server) contentHash(ans answer) string {
	if h, ok := ans.v.(interface{ contentHashValue() string }); ok {
		return h.contentHashValue()
	}
	return fmt.Sprintf("%016x", ans.hash)
}

// answerParams are the query parameters that change a read's answer (not
// its order, encoding or blocking), as the endpoints read them: the first
// value of each of first, every value of each of sets in any order, and
// every value of each of lists in order (a later node-meta overrides an
// earlier one for the same key). An endpoint that reads another
// parameter to shape its answer must be listed here.
var answerParams = struct{ first, sets, lists []string }{
	first: []string{"filter", "passing", "wan", "dc", "failover"},
	sets:  []string{"tag"},
	lists: []string{"node-meta"},
}

// questionKey identifies the answer of a read: its path and the
// parameters that change the answer (answerParams). Every other parameter
// (index, wait, hash, stale, near, pretty, token, unknown ones) is left
// out, so that it neither splits one question's index nor grows the
// tables keyed by question. The key is a SHA-256 digest of the parts,
// each prefixed by its length: 32 bytes, however long the request.
func questionKey(r *http.Request) string {
	q := params(r)
	h := sha256.New()
	var n [8]byte
	part := func(s string) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		io.WriteString(h, s)
	}
	part(r.URL.Path)
	for _, name := range answerParams.first {
		if vs := q[name]; len(vs) > 0 {
			part(name)
			part(vs[0])
		}
	}
	for _, name := range answerParams.sets {
		if vs := q[name]; len(vs) > 0 {
			vs = slices.Compact(slices.Sorted(slices.Values(vs)))
			part(name)
			part(strconv.Itoa(len(vs)))
			for _, v := range vs {
				part(v)
			}
		}
	}
	for _, name := range answerParams.lists {
		if vs := q[name]; len(vs) > 0 {
			part(name)
			part(strconv.Itoa(len(vs)))
			for _, v := range vs {
				part(v)
			}
		}
	}
	return string(h.Sum(nil))
}

// parseWait parses Consul's wait parameter: a Go duration ("5m",
// "120000ms") or a bare number of seconds.
func parseWait(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n > uint64(maxWait/time.Second) {
			n = uint64(maxWait / time.Second)
		}
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
	q := params(r)
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
