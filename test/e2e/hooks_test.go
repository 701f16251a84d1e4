package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chorusdns/chorus/test/testutil"
)

// TestHooksFromConfigFile runs the binary as an operator would, with a
// config file holding a watch and an event handler: the watch's handler
// gets the passing instances of web at every change, its failure is
// logged with its exit code and output and the watch goes on; SIGHUP
// replaces the watch with the file's new one; and when a peer dies
// (SIGKILL) the member-failed handler runs with the dead member on stdin.
func TestHooksFromConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hooks.yaml")
	failed, webRuns, dbRuns := filepath.Join(dir, "failed"), filepath.Join(dir, "web-runs"), filepath.Join(dir, "db-runs")
	write := func(watches string) {
		t.Helper()
		body := fmt.Sprintf(`event_handlers:
  - events: [member-failed]
    handler: '{ echo "$SERF_EVENT"; cat; } >> %s'
watches:
%s`, failed, watches)
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The web watch's handler records its input, one line per run, then
	// fails as a load balancer's reload script might.
	write(fmt.Sprintf(`  - type: service
    service: web
    passing: true
    handler: 'tr -d "\n" >> %s; echo >> %s; echo "lb reload failed" >&2; exit 2'
`, webRuns, webRuns))
	a := testutil.StartAgent(t, testutil.AgentOptions{Node: "hooks-1", Args: []string{"--config-file", cfg}})
	b := testutil.StartAgent(t, testutil.AgentOptions{Node: "hooks-2",
		Args: []string{"--join", "127.0.0.1:" + strconv.Itoa(a.SerfPort)}})

	lines := func(path string) []string {
		data, _ := os.ReadFile(path)
		return strings.Split(strings.TrimSpace(string(data)), "\n")
	}
	waitRun := func(path string, n int, want string) {
		t.Helper()
		testutil.Eventually(t, 15*time.Second, func() error {
			l := lines(path)
			if len(l) < n || !strings.Contains(l[n-1], want) {
				return fmt.Errorf("%s: runs %q, want run %d with %s", filepath.Base(path), l, n, want)
			}
			return nil
		})
	}
	waitRun(webRuns, 1, "[]") // the first result: no instance yet
	mustPut(t, a.URL("/v1/agent/service/register"), "", `{"Name":"web","ID":"web-1","Port":8080,
		"Check":{"CheckID":"web-1-ttl","TTL":"10m","Status":"passing"}}`)
	waitRun(webRuns, 2, `"ID":"web-1"`)
	testutil.Eventually(t, 5*time.Second, func() error {
		if out := a.Output.String(); !strings.Contains(out, "watch handler failed") || !strings.Contains(out, "exit_code=2") ||
			!strings.Contains(out, "lb reload failed") {
			return fmt.Errorf("no log of the handler's failure with its exit code and output:\n%s", out)
		}
		return nil
	})
	// The watch goes on after the failure: web-1 going critical leaves
	// no passing instance.
	n := len(lines(webRuns))
	mustPut(t, a.URL("/v1/agent/check/fail/web-1-ttl"), "", "")
	waitRun(webRuns, n+1, "[]")

	// SIGHUP with a file that watches db instead of web.
	write(fmt.Sprintf(`  - type: service
    service: db
    args: [/bin/sh, -c, 'tr -d "\n" >> %s; echo >> %s']
`, dbRuns, dbRuns))
	a.Signal(t, syscall.SIGHUP)
	waitRun(dbRuns, 1, "[]")
	webBefore := len(lines(webRuns))
	mustPut(t, a.URL("/v1/agent/check/pass/web-1-ttl"), "", "")
	mustPut(t, a.URL("/v1/agent/service/register"), "", `{"Name":"db","ID":"db-1","Port":5432}`)
	waitRun(dbRuns, 2, `"ID":"db-1"`)
	if got := len(lines(webRuns)); got != webBefore {
		t.Fatalf("the web watch still ran after the reload removed it: %d runs, had %d", got, webBefore)
	}

	// A peer dies: the member-failed handler runs with it on stdin.
	b.Signal(t, syscall.SIGKILL)
	testutil.Eventually(t, 20*time.Second, func() error {
		data, _ := os.ReadFile(failed)
		if !strings.Contains(string(data), "member-failed\nhooks-2\t127.0.0.1\t") {
			return fmt.Errorf("member-failed handler input so far: %q", data)
		}
		return nil
	})
}
