package watch_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chorusdns/chorus/test/testutil"
	"github.com/chorusdns/chorus/watch"
)

func TestRunHandler(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		output string
		fails  bool
	}{
		{"stdin to stdout", []string{"sh", "-c", "cat; echo; echo err >&2"}, 0, "{\"a\":1}\nerr\n", false},
		{"exit status", []string{"sh", "-c", "echo boom; exit 7"}, 7, "boom\n", true},
		{"no such command", []string{"/nonexistent/handler"}, -1, "", true},
		{"no command", nil, -1, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := watch.RunHandler(ctx, tc.args, []byte(`{"a":1}`))
			if (err != nil) != tc.fails || res.ExitCode != tc.code || string(res.Output) != tc.output {
				t.Fatalf("RunHandler = %+v (output %q), %v; want exit %d, output %q, failure %v", res, res.Output, err, tc.code, tc.output, tc.fails)
			}
		})
	}
}

func TestRunHandlerOutputCapped(t *testing.T) {
	res, err := watch.RunHandler(context.Background(), []string{"sh", "-c", "head -c 200000 /dev/zero | tr '\\0' x"}, nil)
	if err != nil || len(res.Output) != watch.MaxHandlerOutput || strings.Trim(string(res.Output), "x") != "" {
		t.Fatalf("RunHandler = %d bytes, %v; want %d bytes of x", len(res.Output), err, watch.MaxHandlerOutput)
	}
}

func TestRunHandlerCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := watch.RunHandler(ctx, []string{"sleep", "30"}, nil)
	if err == nil || res.ExitCode != -1 || time.Since(start) > 5*time.Second {
		t.Fatalf("RunHandler of a cancelled handler = %+v, %v after %v", res, err, time.Since(start))
	}
}

// TestRunHandlerCancelledKillsChildren: a shell handler whose child is
// still running when ctx ends has the child killed too, not left behind
// holding the time bound's promise.
func TestRunHandlerCancelledKillsChildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res, err := watch.RunHandler(ctx, []string{"sh", "-c", "sleep 30 & echo $! > " + pidFile + "; wait"}, nil)
	if err == nil || res.ExitCode != -1 {
		t.Fatalf("RunHandler of a cancelled handler = %+v, %v", res, err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// The child is killed with the group; it is gone once its parent (the
	// shell, itself killed) no longer holds it as a zombie: kill(pid, 0)
	// then fails with ESRCH.
	t.Cleanup(func() {
		if t.Failed() {
			syscall.Kill(pid, syscall.SIGKILL) // the child outlived its handler
		}
	})
	testutil.Eventually(t, 5*time.Second, func() error {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		if state, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(state), ") Z ") {
			return nil // killed, waiting to be reaped by init
		}
		return fmt.Errorf("the handler's child %d still runs after the handler was cancelled", pid)
	})
}
