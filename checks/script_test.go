package checks

import (
	"errors"
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

func TestScriptCheck(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		status string
		output string // exact, unless prefix
		prefix bool
	}{
		{"exit 0", []string{"/bin/sh", "-c", "echo fine"}, StatusPassing, "fine\n", false},
		{"exit 1", []string{"/bin/sh", "-c", "echo degraded; exit 1"}, StatusWarning, "degraded\n", false},
		{"exit 2", []string{"/bin/sh", "-c", "echo broken; exit 2"}, StatusCritical, "broken\n", false},
		{"stdout and stderr", []string{"/bin/sh", "-c", "echo out; echo err >&2; exit 0"}, StatusPassing, "out\nerr\n", false},
		{"no shell", []string{"/bin/echo", "$HOME", "a;b"}, StatusPassing, "$HOME a;b\n", false},
		{"not found", []string{"/nonexistent/check"}, StatusCritical, "fork/exec /nonexistent/check", true},
		{"killed by a signal", []string{"/bin/sh", "-c", "kill -TERM $$"}, StatusCritical, "", false},
	}
	m, _ := startManager(t, Config{EnableScriptChecks: true})
	for _, tc := range tests {
		initial := StatusPassing
		if tc.status == StatusPassing {
			initial = StatusCritical
		}
		mustAdd(t, m, Definition{ID: tc.name, Args: tc.args, Interval: 200 * time.Millisecond, Status: initial})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Wait for the expected result: under load a probe may time out first.
			testutil.Eventually(t, 10*time.Second, func() error {
				res, _ := lastResult(m, tc.name)
				if res.Status != tc.status || tc.prefix && !strings.HasPrefix(res.Output, tc.output) || !tc.prefix && res.Output != tc.output {
					return fmt.Errorf("%s %q, want %s %q", res.Status, res.Output, tc.status, tc.output)
				}
				return nil
			})
		})
	}
}

func TestScriptOutputIsTruncated(t *testing.T) {
	p := &scriptProber{
		args:      []string{"/bin/sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; echo; echo tail >&2"},
		timeout:   5 * time.Second,
		maxOutput: 64,
	}
	status, out := p.probe(t.Context())
	if status != StatusPassing || out != strings.Repeat("x", 64) {
		t.Errorf("probe = %s %q, want passing with the first 64 bytes", status, out)
	}
}

// TestScriptTimeoutKillsProcessGroup: a script that outlives its Timeout is
// critical and is killed together with the child it started.
func TestScriptTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	script := fmt.Sprintf("echo started; sleep 60 & echo $! > %s; wait", pidFile)
	m, _ := startManager(t, Config{EnableScriptChecks: true})
	mustAdd(t, m, Definition{
		ID: "hang", Args: []string{"/bin/sh", "-c", script},
		Interval: time.Minute, Timeout: time.Second, Status: StatusPassing,
	})

	res := waitStatus(t, m, "hang", StatusCritical, 5*time.Second)
	if want := "Timed out (1s) running check\n\nstarted\n"; res.Output != want {
		t.Errorf("output %q, want %q", res.Output, want)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the script did not record its child: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if alive(pid) {
			return fmt.Errorf("child %d of the timed-out script is still running", pid)
		}
		return nil
	})
}

// alive reports whether pid runs; a zombie waiting for its (re)parent to reap it
// counts as dead.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

// TestScriptStopKillsProcessGroup: removing a check kills its running script.
func TestScriptStopKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "script.pid")
	m, _ := startManager(t, Config{EnableScriptChecks: true})
	mustAdd(t, m, Definition{
		ID: "long", Args: []string{"/bin/sh", "-c", "echo $$ > " + pidFile + "; sleep 60"},
		Interval: time.Minute,
	})
	var pid int
	testutil.Eventually(t, 5*time.Second, func() error {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return err
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	})
	m.Remove("long")
	testutil.Eventually(t, 5*time.Second, func() error {
		if alive(pid) {
			return fmt.Errorf("script %d still running after Remove", pid)
		}
		return nil
	})
}
