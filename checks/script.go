package checks

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// scriptWaitDelay is how long a script check waits for its output pipe to close
// after the process has exited or been killed, in case a child it started (in
// another process group) still holds it.
const scriptWaitDelay = time.Second

// scriptProber runs Args directly, with no shell unless Args name one: exit 0
// is passing, 1 warning, anything else critical. The process runs in its own
// process group, and a timeout (or the check stopping) kills the whole group, so
// the children of the script die with it. A script that exits by itself is not
// chased: what it left running in the background keeps running, as in Consul.
type scriptProber struct {
	args      []string
	timeout   time.Duration
	maxOutput int
}

func (p *scriptProber) probe(ctx context.Context) (string, string) {
	out := newHeadBuffer(p.maxOutput)
	cmd := exec.CommandContext(ctx, p.args[0], p.args[1:]...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group's ID is the leader's PID; kill(-pgid) reaches every member.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = scriptWaitDelay

	err := cmd.Run()
	if ctx.Err() != nil {
		msg := fmt.Sprintf("Timed out (%s) running check", p.timeout)
		if s := out.String(); s != "" {
			msg += "\n\n" + s
		}
		return StatusCritical, msg
	}
	if cmd.ProcessState == nil {
		// Never started: not found, not executable, ...
		return StatusCritical, err.Error()
	}
	output := out.String()
	switch code := cmd.ProcessState.ExitCode(); {
	case err != nil && !errors.Is(err, exec.ErrWaitDelay) && !isExitError(err):
		// Exited, but copying its output failed.
		return StatusCritical, fmt.Sprintf("%s\n\n%v", output, err)
	case code == 0:
		return StatusPassing, output
	case code == 1:
		return StatusWarning, output
	default:
		return StatusCritical, output
	}
}

func isExitError(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}
