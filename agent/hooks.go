package agent

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/chorusdns/chorus/agent/gossip"
	"github.com/chorusdns/chorus/watch"
)

// EventHandlerConfig is one entry of event_handlers: a command run, as
// Serf's event handlers are, when members join, leave, fail, change or
// are reaped.
type EventHandlerConfig struct {
	// Events are the member events that run it: member-join,
	// member-leave, member-failed, member-update, member-reap.
	Events []string `mapstructure:"events"`
	// Handler is a shell command line (run with /bin/sh -c); Args a
	// command and its arguments, run directly. One of the two.
	Handler string   `mapstructure:"handler"`
	Args    []string `mapstructure:"args"`
	// Timeout bounds one run; 0 means 30 s.
	Timeout time.Duration `mapstructure:"timeout"`
}

// WatchConfig is one entry of watches: Consul's watch semantics, run by
// the agent against its own HTTP API.
type WatchConfig struct {
	// Type is service, services, nodes or checks.
	Type    string `mapstructure:"type"`
	Service string `mapstructure:"service"`
	Passing bool   `mapstructure:"passing"`
	State   string `mapstructure:"state"`
	// Handler is a shell command line, Args a command and its arguments,
	// run with the result's JSON on standard input at every change.
	Handler string   `mapstructure:"handler"`
	Args    []string `mapstructure:"args"`
	// Token is sent with the watch's queries when ACLs are on.
	Token string `mapstructure:"token"`
}

// Handler limits: how many event handlers run at once, how many events
// may wait for a free slot (more are dropped and logged), and the default
// timeout of one run.
const (
	handlerWorkers        = 4
	handlerQueue          = 256
	defaultHandlerTimeout = 30 * time.Second
)

// memberEvents are the event names event_handlers accept.
var memberEvents = []string{"member-join", "member-leave", "member-failed", "member-update", "member-reap"}

func (c *EventHandlerConfig) validate(i int) error {
	key := fmt.Sprintf("event_handlers[%d]", i)
	if len(c.Events) == 0 {
		return fmt.Errorf("%s.events: name at least one of %s", key, strings.Join(memberEvents, ", "))
	}
	for _, e := range c.Events {
		if !slices.Contains(memberEvents, e) {
			return fmt.Errorf("%s.events: %q: want one of %s", key, e, strings.Join(memberEvents, ", "))
		}
	}
	if (c.Handler == "") == (len(c.Args) == 0) {
		return fmt.Errorf("%s: set handler (a shell command) or args (a command and its arguments), one of the two", key)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%s.timeout: must not be negative", key)
	}
	return nil
}

func (c *WatchConfig) plan() watch.Plan {
	return watch.Plan{Type: c.Type, Service: c.Service, Passing: c.Passing, State: c.State, Handler: commandOf(c.Handler, c.Args)}
}

func (c *WatchConfig) validate(i int) error {
	key := fmt.Sprintf("watches[%d]", i)
	p := c.plan()
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%s: %v", key, err)
	}
	if (c.Handler == "") == (len(c.Args) == 0) {
		return fmt.Errorf("%s: set handler (a shell command) or args (a command and its arguments), one of the two", key)
	}
	return nil
}

// commandOf is the command line of a handler given as a shell line or as
// arguments.
func commandOf(shell string, args []string) []string {
	if shell != "" {
		return []string{"/bin/sh", "-c", shell}
	}
	return args
}

// handlerJob is one run of an event handler.
type handlerJob struct {
	cfg   EventHandlerConfig
	event string
	input []byte
	env   []string
}

// eventHandlers queues the event handlers a member event runs (the
// gossip layer's event hook). It never blocks the event loop: a full
// queue drops the runs and says so.
func (a *Agent) eventHandlers(e gossip.Event) {
	handlers := a.cfg.Load().EventHandlers
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
		case a.handlerJobs <- handlerJob{cfg: h, event: event, input: input, env: env}:
		default:
			a.logger.Warn("event handler dropped: too many runs waiting", "event", event, "waiting", handlerQueue)
		}
	}
}

// runHandlers runs queued event handlers, handlerWorkers at a time, until
// ctx is done.
func (a *Agent) runHandlers(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for range handlerWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case job := <-a.handlerJobs:
					a.runEventHandler(ctx, job)
				}
			}
		})
	}
}

func (a *Agent) runEventHandler(ctx context.Context, job handlerJob) {
	timeout := job.cfg.Timeout
	if timeout == 0 {
		timeout = defaultHandlerTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := watch.RunHandlerEnv(ctx, commandOf(job.cfg.Handler, job.cfg.Args), job.env, job.input)
	if err != nil {
		a.logger.Warn("event handler failed", "event", job.event, "exit_code", res.ExitCode,
			"duration_seconds", res.Duration.Seconds(), "output", string(res.Output), "err", err)
		return
	}
	a.logger.Debug("event handler ran", "event", job.event, "duration_seconds", res.Duration.Seconds())
}

// runWatches runs the configured watches until ctx is done; a reload
// cancels ctx and starts the new set.
func (a *Agent) runWatches(ctx context.Context, watches []WatchConfig) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for i, w := range watches {
		client, err := api.NewClient(&api.Config{Address: a.HTTPAddr(), Token: w.Token, HttpClient: &http.Client{}})
		if err != nil {
			a.logger.Error("watch", "watch", i, "err", err)
			continue
		}
		plan := w.plan()
		plan.Logger = a.logger.With("watch", i)
		wg.Go(func() {
			// The first query fails only while the agent's API is not yet
			// up or the watch is denied: retry until ctx ends.
			for ctx.Err() == nil {
				err := plan.Run(ctx, client, func(result []byte) {
					res, err := watch.RunHandler(ctx, plan.Handler, result)
					if err != nil && ctx.Err() == nil {
						a.logger.Warn("watch handler failed", "watch", i, "type", plan.Type, "exit_code", res.ExitCode,
							"output", string(res.Output), "err", err)
					}
				})
				if err == nil {
					return
				}
				a.logger.Warn("watch query failed; retrying", "watch", i, "type", plan.Type, "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(5 * time.Second):
				}
			}
		})
	}
}

// startWatches (re)starts the configured watches under the agent's wait
// group, stopping the previous set first.
func (a *Agent) startWatches(watches []WatchConfig) {
	a.watchMu.Lock()
	defer a.watchMu.Unlock()
	if a.stopWatches != nil {
		a.stopWatches()
	}
	ctx, cancel := context.WithCancel(a.ctx)
	done := make(chan struct{})
	a.stopWatches = func() { cancel(); <-done }
	a.wg.Go(func() {
		defer close(done)
		a.runWatches(ctx, watches)
	})
}
