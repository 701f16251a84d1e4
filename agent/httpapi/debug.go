package httpapi

import (
	"net/http"
	"net/http/pprof"
)

// pprof serves Go's runtime profiles under /debug/pprof/ (index,
// cmdline, profile, symbol, trace and the named profiles: heap,
// goroutine, allocs, …) as Consul's agent does: while enable_debug is on,
// or whenever ACLs are enabled, where withACL has already asked for a
// read token (write for the command line, see holdsSecrets). Otherwise
// the paths are not found (404), as in Consul. Both settings are read per
// request, so a reload turns the profiles on or off.
func (a *Server) pprof() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := a.cfg(); !s.EnableDebug && !s.ACL.Enabled {
			http.NotFound(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}
