package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

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
		c.EventHandlers = []EventHandlerConfig{
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
	cfg.Watches = []WatchConfig{{Type: "service", Service: "web", Handler: `cat >> ` + out + `; echo >> ` + out}}
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
	next.Watches = []WatchConfig{{Type: "service", Service: "db", Args: []string{"/bin/sh", "-c", "cat > " + out2}}}
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
			c.EventHandlers = []EventHandlerConfig{{Events: []string{"member-explode"}, Handler: "true"}}
		}, "event_handlers[0].events"},
		{func(c *Config) { c.EventHandlers = []EventHandlerConfig{{Events: []string{"member-join"}}} }, "event_handlers[0]"},
		{func(c *Config) { c.Watches = []WatchConfig{{Type: "service", Handler: "true"}} }, "watches[0]"},
		{func(c *Config) { c.Watches = []WatchConfig{{Type: "nodes"}} }, "watches[0]"},
	} {
		c := testConfig(t, "x")
		tc.mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want it to name %s", err, tc.want)
		}
	}
}
