package checks

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestOSServiceCheckWithoutSystemd: where systemd is not running, the
// check is critical and says why.
func TestOSServiceCheckWithoutSystemd(t *testing.T) {
	p := newOSServiceProber(Definition{OSService: "ssh"}, Config{})
	p.runDir = t.TempDir() + "/absent"
	status, out := p.probe(context.Background())
	if status != StatusCritical || !strings.Contains(out, "systemd is not running") || !strings.Contains(out, "ssh") {
		t.Fatalf("%s %q", status, out)
	}
}

// TestOSServiceCheckSystemd asks the host's systemd about a unit that
// does not exist (critical) and, where one is active, about it (passing).
func TestOSServiceCheckSystemd(t *testing.T) {
	if fi, err := os.Stat(systemdRunDir); err != nil || !fi.IsDir() {
		t.Skip("systemd is not running on this host")
	}
	m, _ := startManager(t, Config{})
	mustAdd(t, m, Definition{ID: "none", OSService: "chorus-no-such-unit.service", Interval: 100 * time.Millisecond, Status: StatusPassing})
	waitOutput(t, m, "none", StatusCritical, "is not active", 5*time.Second)

	out, _ := exec.Command("systemctl", "list-units", "--state=active", "--type=service", "--no-legend", "--plain").Output()
	fields := strings.Fields(string(out))
	if len(fields) == 0 {
		return
	}
	mustAdd(t, m, Definition{ID: "active", OSService: fields[0], Interval: 100 * time.Millisecond})
	waitOutput(t, m, "active", StatusPassing, "is active", 5*time.Second)
}
