package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// MaxHandlerOutput is how much of a handler's combined output RunHandler
// keeps; the rest is read and dropped so the handler never blocks on a full
// pipe.
const MaxHandlerOutput = 64 << 10

// HandlerResult is what one handler run produced.
type HandlerResult struct {
	// Output is the handler's standard output and standard error, in the
	// order written, cut at MaxHandlerOutput bytes.
	Output []byte
	// ExitCode is the handler's exit status: 0 on success, -1 when it
	// could not start or was killed by a signal.
	ExitCode int
	// Duration is how long the handler ran.
	Duration time.Duration
}

// RunHandler runs args[0] with the arguments args[1:] and input on its
// standard input, waits for it to exit and returns its output and exit
// status. The error is non-nil when the handler could not start, exited
// non-zero or was killed (ctx being cancelled kills it); the result is
// filled in either way. RunHandler is safe for concurrent use.
func RunHandler(ctx context.Context, args []string, input []byte) (HandlerResult, error) {
	return RunHandlerEnv(ctx, args, nil, input)
}

// RunHandlerEnv is RunHandler with env ("KEY=value") added to the
// handler's environment, which is otherwise this process's.
//
// The handler runs in a process group of its own, and ending ctx kills the
// whole group: a shell handler's children (`sh -c 'notify; sleep 60'`) end
// with it and do not outlive its time bound.
func RunHandlerEnv(ctx context.Context, args, env []string, input []byte) (HandlerResult, error) {
	if len(args) == 0 {
		return HandlerResult{ExitCode: -1}, errors.New("handler: no command")
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin = bytes.NewReader(input)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	out := &capped{max: MaxHandlerOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group's ID is the leader's PID; kill(-pgid) reaches every member.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// A handler that leaves a child holding its output open must not hold
	// the watch: stop waiting for the pipes soon after the handler exits.
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	// ProcessState.ExitCode is -1 for a handler that did not start
	// (nil state) or was killed by a signal.
	res := HandlerResult{Output: out.bytes(), ExitCode: cmd.ProcessState.ExitCode(), Duration: time.Since(start)}
	if err != nil {
		return res, fmt.Errorf("handler %s: %w", args[0], err)
	}
	return res, nil
}

// capped is a writer that keeps at most max bytes and accepts the rest.
type capped struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *capped) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf.Bytes())
}
