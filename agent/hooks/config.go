package hooks

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chorusdns/chorus/watch"
)

// EventHandler is one entry of event_handlers: a command run, as
// Serf's event handlers are, when members join, leave, fail, change or
// are reaped.
type EventHandler struct {
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

// Watch is one entry of watches: Consul's watch semantics, run by
// the agent against its own HTTP API.
type Watch struct {
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
	// watchRetry is how long a watch whose query failed waits before it
	// asks again.
	watchRetry = 5 * time.Second
)

// memberEvents are the event names event_handlers accept.
var memberEvents = []string{"member-join", "member-leave", "member-failed", "member-update", "member-reap"}

// Validate checks the entry at index i of event_handlers; the error
// names the key as the user wrote it (event_handlers[i].events…).
func (c *EventHandler) Validate(i int) error {
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

func (c *Watch) plan() watch.Plan {
	return watch.Plan{Type: c.Type, Service: c.Service, Passing: c.Passing, State: c.State, Handler: commandOf(c.Handler, c.Args)}
}

// Validate checks the entry at index i of watches; the error names the
// key as the user wrote it (watches[i]…).
func (c *Watch) Validate(i int) error {
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
