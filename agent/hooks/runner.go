package hooks

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/chorusdns/chorus/agent/gossip"
	"github.com/chorusdns/chorus/watch"
)

// job is one run of an event handler.
type job struct {
	cfg   EventHandler
	event string
	input []byte
	env   []string
}

// Runner runs the agent's event handlers and watches. Create it with
// New; Run must run for queued handlers to run. It is safe for
// concurrent use.
type Runner struct {
	logger   *slog.Logger
	handlers func() []EventHandler
	jobs     chan job

	mu          sync.Mutex // guards the fields below
	closed      bool       // Run has returned: no watch starts
	stopWatches func()     // stops the running watches
	watches     sync.WaitGroup
}

// New returns a Runner whose event handlers are those handlers returns at
// each event (the configuration in force: a reload changes them). It
// starts no goroutine.
func New(logger *slog.Logger, handlers func() []EventHandler) *Runner {
	return &Runner{logger: logger, handlers: handlers, jobs: make(chan job, handlerQueue)}
}

// OnEvent queues the event handlers a member event runs (the gossip
// layer's event hook). It never blocks the event loop: a full queue drops
// the runs and says so.
func (r *Runner) OnEvent(e gossip.Event) {
	handlers := r.handlers()
	if len(handlers) == 0 {
		return
	}
	event := e.Type()
	input, env := e.Script()
	for _, h := range handlers {
		if !slices.Contains(h.Events, event) {
			continue
		}
		select {
		case r.jobs <- job{cfg: h, event: event, input: input, env: env}:
		default:
			r.logger.Warn("event handler dropped: too many runs waiting", "event", event, "waiting", handlerQueue)
		}
	}
}

// Run runs queued event handlers, handlerWorkers at a time, until ctx is
// done; it then stops the watches and returns once every handler and
// watch has ended.
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range handlerWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-r.jobs:
					r.runEventHandler(ctx, j)
				}
			}
		})
	}
	wg.Wait()
	r.mu.Lock()
	r.closed = true
	if r.stopWatches != nil {
		r.stopWatches()
	}
	r.mu.Unlock()
	r.watches.Wait()
}

func (r *Runner) runEventHandler(ctx context.Context, j job) {
	timeout := j.cfg.Timeout
	if timeout == 0 {
		timeout = defaultHandlerTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := watch.RunHandlerEnv(ctx, commandOf(j.cfg.Handler, j.cfg.Args), j.env, j.input)
	if err != nil {
		r.logger.Warn("event handler failed", "event", j.event, "exit_code", res.ExitCode,
			"duration_seconds", res.Duration.Seconds(), "output", string(res.Output), "err", err)
		return
	}
	r.logger.Debug("event handler ran", "event", j.event, "duration_seconds", res.Duration.Seconds())
}

// SetWatches (re)starts the watches against the agent's HTTP API at
// httpAddr, stopping the previous set first; they run until ctx is done,
// the next SetWatches or the end of Run, which waits for them. After Run
// has returned it starts nothing.
func (r *Runner) SetWatches(ctx context.Context, httpAddr string, watches []Watch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopWatches != nil {
		r.stopWatches()
		r.stopWatches = nil
	}
	if r.closed {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	r.stopWatches = func() { cancel(); <-done }
	r.watches.Go(func() {
		defer close(done)
		r.runWatches(ctx, httpAddr, watches)
	})
}

// runWatches runs the watches until ctx is done.
func (r *Runner) runWatches(ctx context.Context, httpAddr string, watches []Watch) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for i, w := range watches {
		client, err := api.NewClient(&api.Config{Address: httpAddr, Token: w.Token, HttpClient: &http.Client{}})
		if err != nil {
			r.logger.Error("watch", "watch", i, "err", err)
			continue
		}
		plan := w.plan()
		plan.Logger = r.logger.With("watch", i)
		wg.Go(func() {
			// The first query fails only while the agent's API is not yet
			// up or the watch is denied: retry until ctx ends.
			for ctx.Err() == nil {
				err := plan.Run(ctx, client, func(result []byte) {
					res, err := watch.RunHandler(ctx, plan.Handler, result)
					if err != nil && ctx.Err() == nil {
						r.logger.Warn("watch handler failed", "watch", i, "type", plan.Type, "exit_code", res.ExitCode,
							"output", string(res.Output), "err", err)
					}
				})
				if err == nil {
					return
				}
				r.logger.Warn("watch query failed; retrying", "watch", i, "type", plan.Type, "err", err)
				t := time.NewTimer(watchRetry)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
			}
		})
	}
}
