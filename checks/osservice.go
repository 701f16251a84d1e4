package checks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// systemdRunDir exists while systemd is the running init system
// (sd_booted(3) tests the same path).
const systemdRunDir = "/run/systemd/system"

// osServiceProber asks systemd whether a unit is active, with
// `systemctl is-active <unit>`: exit 0 ("active") is passing, anything
// else critical, with systemctl's answer as the output. Where systemd is
// not running, every probe is critical and says so.
type osServiceProber struct {
	unit      string
	maxOutput int
	// runDir and systemctl are systemdRunDir and "systemctl" but for tests.
	runDir    string
	systemctl string
}

func newOSServiceProber(d Definition, cfg Config) *osServiceProber {
	return &osServiceProber{unit: d.OSService, maxOutput: cfg.outputMaxSize(), runDir: systemdRunDir, systemctl: "systemctl"}
}

func (p *osServiceProber) probe(ctx context.Context) (string, string) {
	if fi, err := os.Stat(p.runDir); err != nil || !fi.IsDir() {
		return StatusCritical, fmt.Sprintf("os_service %s: systemd is not running on this host (%s is missing); Chorus checks OS services through systemd only", p.unit, p.runDir)
	}
	out := newHeadBuffer(p.maxOutput)
	// "--" ends the options: the unit name is never read as one.
	cmd := exec.CommandContext(ctx, p.systemctl, "is-active", "--", p.unit)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = scriptWaitDelay
	err := cmd.Run()
	state := strings.TrimSpace(out.String())
	switch {
	case ctx.Err() != nil:
		return StatusCritical, fmt.Sprintf("os_service %s: timed out asking systemd", p.unit)
	case err == nil:
		return StatusPassing, fmt.Sprintf("Service %q is %s", p.unit, state)
	case errors.Is(err, exec.ErrNotFound) || cmd.ProcessState == nil:
		return StatusCritical, fmt.Sprintf("os_service %s: running systemctl: %v", p.unit, err)
	default:
		return StatusCritical, fmt.Sprintf("Service %q is not active: %s", p.unit, state)
	}
}
