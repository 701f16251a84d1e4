package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hashicorp/consul/api"
)

// Types a Plan can watch, as Consul's watch types name them.
const (
	TypeService  = "service"  // instances of one service with their checks (/v1/health/service/<name>)
	TypeServices = "services" // service names and their tags (/v1/catalog/services)
	TypeNodes    = "nodes"    // catalog nodes (/v1/catalog/nodes)
	TypeChecks   = "checks"   // checks of one service or in one state (/v1/health/checks, /v1/health/state)
)

// Defaults used where a Plan leaves a timing at zero.
const (
	DefaultDebounce = 100 * time.Millisecond
	DefaultWaitTime = 5 * time.Minute
	DefaultRetryMax = 30 * time.Second
)

// Plan is one watch: what to query and how to report changes. A Plan is not
// modified by Run; one Plan may be run by several goroutines at once.
type Plan struct {
	// Type is TypeService, TypeServices, TypeNodes or TypeChecks.
	Type string
	// Service is the service name: required by TypeService; with
	// TypeChecks, the checks of that service's instances.
	Service string
	// Passing keeps only instances whose checks all pass (TypeService).
	Passing bool
	// State is a check state for TypeChecks without Service: any,
	// passing, warning or critical (empty: any).
	State string
	// Handler is a command and its arguments for the caller to run with
	// RunHandler on each change. Run itself never reads it.
	Handler []string

	// Debounce is how long a change waits for further changes before it
	// is reported, so a burst is reported once (default DefaultDebounce).
	Debounce time.Duration
	// WaitTime bounds each blocking query (default DefaultWaitTime).
	WaitTime time.Duration
	// RetryMax caps the back-off between failed queries (default
	// DefaultRetryMax; the first retry waits 250 ms, doubling).
	RetryMax time.Duration
	// Logger receives failed queries that Run retries; nil discards them.
	Logger *slog.Logger
}

// Validate reports whether the plan names a known type with the
// parameters that type takes.
func (p *Plan) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidPlan, fmt.Sprintf(format, args...))
	}
	switch p.Type {
	case TypeService:
		if p.Service == "" {
			return bad("type %q needs a service name", p.Type)
		}
		if p.State != "" {
			return bad("state applies to type %q only", TypeChecks)
		}
	case TypeServices, TypeNodes:
		if p.Service != "" || p.Passing || p.State != "" {
			return bad("type %q takes no service, passing or state", p.Type)
		}
	case TypeChecks:
		if p.Passing {
			return bad("passing applies to type %q only (use state for checks)", TypeService)
		}
		if p.Service != "" && p.State != "" {
			return bad("type %q takes a service or a state, not both", p.Type)
		}
		switch p.State {
		case "", "any", "passing", "warning", "critical":
		default:
			return bad("state %q: want any, passing, warning or critical", p.State)
		}
	default:
		return bad("type %q: want %s, %s, %s or %s", p.Type, TypeService, TypeServices, TypeNodes, TypeChecks)
	}
	return nil
}

// Run watches until ctx is cancelled, calling onChange with the JSON of
// the result (the consul/api types' encoding, as Consul's watch handlers
// receive it) first with the initial result and then every time the result
// changes. A result whose JSON equals the last one reported is never
// reported, whatever its index. Changes closer together than Debounce are
// reported once, with the latest result.
//
// onChange runs on Run's goroutine, one call at a time; changes made while
// it runs are picked up by the next query. The first query's error is
// returned at once (a wrong address, a denied token, an unknown service
// show up there); after a first result, failed queries are logged and
// retried with back-off. Run returns nil when ctx is cancelled.
func (p *Plan) Run(ctx context.Context, client *api.Client, onChange func([]byte)) error {
	if err := p.Validate(); err != nil {
		return err
	}
	logger := p.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var (
		index     uint64
		last      []byte    // last reported result
		reported  bool      // whether anything was reported yet
		pending   []byte    // a changed result waiting for the debounce window
		windowEnd time.Time // end of the current debounce window
		failures  int
	)
	for {
		wait := or(p.WaitTime, DefaultWaitTime)
		if pending != nil {
			wait = time.Until(windowEnd)
		}
		var data []byte
		var next uint64
		var err error
		if wait > 0 || pending == nil {
			data, next, err = p.query(ctx, client, index, wait)
		}
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil && !reported:
			return err
		case err != nil:
			failures++
			backoff := min(250*time.Millisecond<<min(failures-1, 10), or(p.RetryMax, DefaultRetryMax))
			logger.Warn("watch query failed; retrying", "type", p.Type, "err", err, "retry_in_seconds", backoff.Seconds())
			if !sleep(ctx, backoff) {
				return nil
			}
			continue
		case data != nil:
			failures = 0
			// Consul's rule: an index that goes backwards means the agent
			// was reset; start over rather than wait for it to catch up.
			if next < index {
				next = 0
			}
			index = max(next, 1)
		}
		if data != nil && pending != nil {
			pending = data
		}
		switch {
		case !reported:
			last, reported = data, true
			onChange(data)
		case pending != nil && !time.Now().Before(windowEnd):
			if !bytes.Equal(pending, last) {
				last = pending
				onChange(pending)
			}
			pending = nil
		case pending == nil && !bytes.Equal(data, last):
			pending = data
			windowEnd = time.Now().Add(or(p.Debounce, DefaultDebounce))
		}
	}
}

// query runs one blocking query and returns the result's JSON and index.
func (p *Plan) query(ctx context.Context, client *api.Client, index uint64, wait time.Duration) ([]byte, uint64, error) {
	q := (&api.QueryOptions{WaitIndex: index, WaitTime: wait}).WithContext(ctx)
	var (
		v    any
		meta *api.QueryMeta
		err  error
	)
	switch p.Type {
	case TypeService:
		v, meta, err = client.Health().Service(p.Service, "", p.Passing, q)
	case TypeServices:
		v, meta, err = client.Catalog().Services(q)
	case TypeNodes:
		v, meta, err = client.Catalog().Nodes(q)
	case TypeChecks:
		if p.Service != "" {
			v, meta, err = client.Health().Checks(p.Service, q)
		} else {
			state := p.State
			if state == "" {
				state = "any"
			}
			v, meta, err = client.Health().State(state, q)
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("watch %s: %w", p.Type, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, 0, fmt.Errorf("watch %s: encode result: %w", p.Type, err)
	}
	return b, meta.LastIndex, nil
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// sleep waits d or until ctx is done, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
