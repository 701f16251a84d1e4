// Command demo is the web service of the Docker Compose example
// (configs/docker-compose.yml): an HTTP server with a health endpoint for
// a Chorus check and a /metrics page for Prometheus. It is built as a
// static binary into an image FROM scratch (configs/demo/Dockerfile) and
// registered with the agent whose network it shares through a service
// definition (configs/demo/demo.json).
//
//	GET /         "hello from <host>"
//	GET /health   200 "ok", or 503 while /health/fail has been called
//	PUT /health/fail, PUT /health/pass   turn the health answer off and on
//	GET /metrics  demo_http_requests_total in Prometheus's text format
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() { os.Exit(run()) }

func run() int {
	addr := flag.String("addr", ":8080", "listen address")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	host, _ := os.Hostname()

	var requests atomic.Uint64
	var failing atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			http.Error(w, "failing on request", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("PUT /health/fail", func(w http.ResponseWriter, _ *http.Request) { failing.Store(true) })
	mux.HandleFunc("PUT /health/pass", func(w http.ResponseWriter, _ *http.Request) { failing.Store(false) })
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP demo_http_requests_total Requests to /.\n# TYPE demo_http_requests_total counter\ndemo_http_requests_total %d\n", requests.Load())
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("demo listening", "addr", *addr)
	select {
	case err := <-errc:
		logger.Error("listen", "err", err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error("shutdown", "err", err)
		return 1
	}
	return 0
}
