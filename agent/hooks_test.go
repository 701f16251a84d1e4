package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/agent/hooks"
	"github.com/chorusdns/chorus/test/testutil"
)

// TestEventHandlersRunOnMemberEvents: a member's failure runs the
// member-failed handler with Serf's environment and the member on stdin;
// a handler that fails is logged and does not stop the others.
func TestEventHandlersRunOnMemberEvents(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "events")
	agents := startCluster(t, 2, func(i int, c *Config) {
		if i != 0 {
			return
		}
		c.EventHandlers = []hooks.EventHandler{
			{Events: []string{"member-join"}, Handler: "exit 3"}, // fails every time
			{Events: []string{"member-join", "member-failed"}, Handler: `{ echo "event=$SERF_EVENT self=$SERF_SELF_NAME role=$SERF_SELF_ROLE"; cat; } >> ` + out},
		}
	})
	testutil.Eventually(t, 5*time.Second, func() error {
		b, _ := os.ReadFile(out)
		if !strings.Contains(string(b), "event=member-join self=node0 role=node") || !strings.Contains(string(b), "node1\t127.0.0.1\tnode\t") {
			return fmt.Errorf("handler output so far: %q", b)
		}
		return nil
	})
	agents[1].Kill()
	testutil.Eventually(t, 15*time.Second, func() error {
		b, _ := os.ReadFile(out)
		if !strings.Contains(string(b), "event=member-failed") {
			return fmt.Errorf("no member-failed run yet: %q", b)
		}
		return nil
	})
}

// TestWatchRunsHandlerOnChange: a watch in the agent's config runs its
// handler with the result's JSON on the first result and on every change
// of it, not for unrelated changes; a reload replaces the watches.
func TestWatchRunsHandlerOnChange(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "runs")
	cfg := testConfig(t, "watcher")
	cfg.Watches = []hooks.Watch{{Type: "service", Service: "web", Handler: `cat >> ` + out + `; echo >> ` + out}}
	a := startAgent(t, cfg)
	runs := func() []string {
		b, _ := os.ReadFile(out)
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	// The first result: no instance yet.
	testutil.Eventually(t, 5*time.Second, func() error {
		if r := runs(); len(r) != 1 || r[0] != "[]" {
			return fmt.Errorf("runs %q, want the empty first result", r)
		}
		return nil
	})
	mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80,"Check":{"TTL":"1m","Status":"passing"}}`)
	testutil.Eventually(t, 5*time.Second, func() error {
		r := runs()
		if len(r) != 2 {
			return fmt.Errorf("%d runs, want 2", len(r))
		}
		var entries []api.ServiceEntry
		if err := json.Unmarshal([]byte(r[1]), &entries); err != nil || len(entries) != 1 || entries[0].Service.Port != 80 {
			return fmt.Errorf("second run's input %q (%v)", r[1], err)
		}
		return nil
	})
	// An unrelated change runs nothing.
	mustDo(t, a, "PUT", "/v1/agent/service/register", `{"Name":"db","Port":5432}`)
	mustDo(t, a, "PUT", "/v1/agent/check/fail/service:web", nil)
	testutil.Eventually(t, 5*time.Second, func() error {
		if r := runs(); len(r) != 3 || !strings.Contains(r[2], `"critical"`) {
			return fmt.Errorf("runs %d, want 3 with web critical", len(r))
		}
		return nil
	})
	for _, r := range runs() {
		if strings.Contains(r, `"db"`) {
			t.Fatalf("a run for the unrelated service db: %s", r)
		}
	}

	// Reload with a watch of db instead.
	next := *a.Config()
	out2 := filepath.Join(dir, "db-runs")
	next.Watches = []hooks.Watch{{Type: "service", Service: "db", Args: []string{"/bin/sh", "-c", "cat > " + out2}}}
	if err := a.Reload(next); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		b, _ := os.ReadFile(out2)
		if !strings.Contains(string(b), `"db"`) {
			return fmt.Errorf("db watch input %q", b)
		}
		return nil
	})
}

func TestHookConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		mutate func(c *Config)
		want   string
	}{
		{func(c *Config) {
			c.EventHandlers = []hooks.EventHandler{{Events: []string{"member-explode"}, Handler: "true"}}
		}, "event_handlers[0].events"},
		{func(c *Config) { c.EventHandlers = []hooks.EventHandler{{Events: []string{"member-join"}}} }, "event_handlers[0]"},
		{func(c *Config) { c.Watches = []hooks.Watch{{Type: "service", Handler: "true"}} }, "watches[0]"},
		{func(c *Config) { c.Watches = []hooks.Watch{{Type: "nodes"}} }, "watches[0]"},
	} {
		c := testConfig(t, "x")
		tc.mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want it to name %s", err, tc.want)
		}
	}
}

// startAgentLogged is startAgent with the agent's log lines also kept in
// the returned buffer, for tests that check what the agent logs.
func startAgentLogged(t *testing.T, cfg Config) (*Agent, *testutil.SyncBuffer) {
	t.Helper()
	buf := &testutil.SyncBuffer{}
	logger := slog.New(slog.NewMultiHandler(testLogger(t).Handler(),
		slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	a, err := New(cfg, logger.With("node", cfg.NodeName), prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatalf("new agent %s: %v", cfg.NodeName, err)
	}
	if err := a.Start(); err != nil {
		t.Fatalf("start agent %s: %v", cfg.NodeName, err)
	}
	t.Cleanup(a.Kill)
	return a, buf
}

// waitLog waits until the log holds a line with every one of want.
func waitLog(t *testing.T, log *testutil.SyncBuffer, timeout time.Duration, want ...string) string {
	t.Helper()
	var found string
	testutil.Eventually(t, timeout, func() error {
		for line := range strings.Lines(log.String()) {
			if !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(line, w) }) {
				found = line
				return nil
			}
		}
		return fmt.Errorf("no log line with all of %q", want)
	})
	return found
}

// handlerWorkers is how many event handlers agent/hooks runs at once.
const handlerWorkers = 4

// TestEventHandlerLimits: one member event that runs six handlers runs
// them at most four at a time (handlerWorkers) and all of them; a handler
// that fails is logged with its exit code and output, one that outlives
// its timeout is killed (its children too) and logged, and neither keeps
// the others from running.
func TestEventHandlerLimits(t *testing.T) {
	dir := t.TempDir()
	spans := filepath.Join(dir, "spans")
	const slow = 6
	cfg := testConfig(t, "node0")
	for range slow {
		// Each run writes a start and an end line (O_APPEND: whole lines).
		cfg.EventHandlers = append(cfg.EventHandlers, hooks.EventHandler{Events: []string{"member-join"},
			Handler: `echo "start $$" >> ` + spans + `; sleep 0.4; echo "end $$" >> ` + spans})
	}
	childPID := filepath.Join(dir, "child.pid")
	cfg.EventHandlers = append(cfg.EventHandlers,
		hooks.EventHandler{Events: []string{"member-join"}, Handler: `echo "no route to lb"; echo "on stderr" >&2; exit 3`},
		hooks.EventHandler{Events: []string{"member-join"}, Timeout: 300 * time.Millisecond,
			Handler: `sleep 60 & echo $! > ` + childPID + `; wait`})
	a, log := startAgentLogged(t, cfg)

	// node1's join runs every member-join handler (node0's own join, at
	// start, ran them once already).
	node1 := startAgent(t, testConfig(t, "node1"))
	if _, err := node1.Join([]string{a.SerfAddr()}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		b, _ := os.ReadFile(spans)
		if n := strings.Count(string(b), "end "); n < 2*slow {
			return fmt.Errorf("%d handler runs ended, want %d", n, 2*slow)
		}
		return nil
	})
	b, _ := os.ReadFile(spans)
	running, most := 0, 0
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "start ") {
			running++
		} else {
			running--
		}
		most = max(most, running)
	}
	if most != handlerWorkers {
		t.Errorf("at most %d handlers ran at once, want %d (handlerWorkers):\n%s", most, handlerWorkers, b)
	}

	line := waitLog(t, log, 5*time.Second, "event handler failed", "event=member-join", "exit_code=3")
	if !strings.Contains(line, `no route to lb\non stderr`) {
		t.Errorf("the failure's log line lacks the handler's output: %s", line)
	}
	line = waitLog(t, log, 5*time.Second, "event handler failed", "exit_code=-1", "killed")
	// It ran until its 300 ms timeout, not its 60 s (the bound allows for
	// a loaded machine).
	_, after, _ := strings.Cut(line, "duration_seconds=")
	if d, err := strconv.ParseFloat(strings.Fields(after + " ")[0], 64); err != nil || d < 0.3 || d > 3 {
		t.Errorf("the timed-out handler's log line does not show it stopped at its 300 ms timeout: %s", line)
	}
	pb, err := os.ReadFile(childPID)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pb)))
	testutil.Eventually(t, 5*time.Second, func() error {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(st), ") Z ") {
			return nil // killed, not yet reaped
		}
		return fmt.Errorf("the timed-out handler's child %d still runs", pid)
	})
}

// TestEventHandlersLeave: a member that leaves gracefully runs
// member-leave, with the member on stdin. (A member whose tags change
// raises member-update with the same stdin: gossip's
// TestMemberUpdateEvent.)
func TestEventHandlersLeave(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	agents := startCluster(t, 2, func(i int, c *Config) {
		if i == 0 {
			c.EventHandlers = []hooks.EventHandler{{Events: []string{"member-update", "member-leave"},
				Args: []string{"/bin/sh", "-c", `{ echo "event=$SERF_EVENT"; cat; } >> ` + out}}}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	agents[1].Leave(ctx)
	testutil.Eventually(t, 10*time.Second, func() error {
		b, _ := os.ReadFile(out)
		if !strings.Contains(string(b), "event=member-leave\nnode1\t127.0.0.1\tnode\t") {
			return fmt.Errorf("no member-leave run for node1 yet: %q", b)
		}
		return nil
	})
}
