package checks

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/chorusdns/chorus/test/testutil"
)

// TestDockerCheck runs commands in a real container through the Docker
// Engine API: exit 0 passing, 1 warning, other critical; stdout and
// stderr both kept; output bounded; an unknown container critical.
func TestDockerCheck(t *testing.T) {
	id := testutil.DockerProbeContainer(t)
	cfg := Config{EnableScriptChecks: true, DockerSocket: testutil.DockerSocket, OutputMaxSize: 64}
	m, _ := startManager(t, cfg)
	tick := 200 * time.Millisecond
	mustAdd(t, m, Definition{ID: "pass", DockerContainerID: id, Args: []string{"/probe", "0", "hello", "world"}, Interval: tick})
	mustAdd(t, m, Definition{ID: "warn", DockerContainerID: id, Args: []string{"/probe", "1", "meh"}, Interval: tick})
	mustAdd(t, m, Definition{ID: "crit", DockerContainerID: id, Args: []string{"/probe", "2"}, Interval: tick, Status: StatusPassing})
	mustAdd(t, m, Definition{ID: "big", DockerContainerID: id, Args: []string{"/probe", "big", "100000"}, Interval: tick})
	mustAdd(t, m, Definition{ID: "nocmd", DockerContainerID: id, Args: []string{"/no/such/binary"}, Interval: tick, Status: StatusPassing})
	mustAdd(t, m, Definition{ID: "nocontainer", DockerContainerID: "chorus-no-such-container", Args: []string{"/probe", "0"}, Interval: tick, Status: StatusPassing})

	res := waitStatus(t, m, "pass", StatusPassing, 20*time.Second)
	if !strings.Contains(res.Output, "out hello world") || !strings.Contains(res.Output, "err") {
		t.Errorf("pass output %q: want stdout and stderr", res.Output)
	}
	waitOutput(t, m, "warn", StatusWarning, "out meh", 20*time.Second)
	waitStatus(t, m, "crit", StatusCritical, 20*time.Second)
	res = waitStatus(t, m, "big", StatusPassing, 20*time.Second)
	if len(res.Output) != 64 {
		t.Errorf("big output is %d bytes, want the first 64", len(res.Output))
	}
	waitStatus(t, m, "nocmd", StatusCritical, 20*time.Second)
	waitOutput(t, m, "nocontainer", StatusCritical, "404", 20*time.Second)
}

// TestDockerCheckGated: Docker checks run commands, so they are refused
// while script checks are off, and they need their Args.
func TestDockerCheckGated(t *testing.T) {
	d := Definition{ID: "d", DockerContainerID: "abc", Args: []string{"/bin/true"}, Interval: time.Second}
	if err := d.Validate(Config{}); err == nil || !strings.Contains(err.Error(), "enable_script_checks") {
		t.Fatalf("docker check with script checks off: %v", err)
	}
	d.Args = nil
	if err := d.Validate(Config{EnableScriptChecks: true}); err == nil || !strings.Contains(err.Error(), "Args") {
		t.Fatalf("docker check without Args: %v", err)
	}
	if typ := d.Type(); typ != TypeDocker {
		t.Fatalf("type %q", typ)
	}
	d.Args = []string{"/bin/true"}
	m, _ := startManager(t, Config{EnableScriptChecks: true})
	if err := m.Add(d); err == nil || !strings.Contains(err.Error(), "docker_socket") {
		t.Fatalf("docker check without a socket: %v", err)
	}
}

func dockerFrame(stream byte, payload string) []byte {
	b := make([]byte, 8, 8+len(payload))
	b[0] = stream
	binary.BigEndian.PutUint32(b[4:], uint32(len(payload)))
	return append(b, payload...)
}

func TestDemuxDockerStream(t *testing.T) {
	in := append(dockerFrame(1, "out\n"), dockerFrame(2, "err\n")...)
	var out bytes.Buffer
	if err := demuxDockerStream(&out, bytes.NewReader(in)); err != nil || out.String() != "out\nerr\n" {
		t.Fatalf("%q %v", out.String(), err)
	}
	for _, bad := range [][]byte{
		dockerFrame(9, "x"),        // unknown stream
		dockerFrame(1, "abc")[:10], // truncated payload
		dockerFrame(1, "abc")[:5],  // truncated header
	} {
		if err := demuxDockerStream(&out, bytes.NewReader(bad)); err == nil {
			t.Errorf("%x: no error", bad)
		}
	}
}

// FuzzDemuxDockerStream: any bytes either demultiplex or fail; the output
// is never longer than the input.
func FuzzDemuxDockerStream(f *testing.F) {
	f.Add(append(dockerFrame(1, "out\n"), dockerFrame(2, "err\n")...))
	f.Add(dockerFrame(3, "oops"))
	f.Add([]byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		out := newHeadBuffer(1 << 20)
		_ = demuxDockerStream(out, bytes.NewReader(in))
		if out.total > int64(len(in)) {
			t.Fatalf("%d bytes out of %d in", out.total, len(in))
		}
	})
}

// BenchmarkDockerProbe measures one Docker check probe against the real
// engine: create the exec, start it attached, read the exit code.
func BenchmarkDockerProbe(b *testing.B) {
	id := testutil.DockerProbeContainer(b)
	p := newDockerProber(Definition{DockerContainerID: id, Args: []string{"/probe", "0", "bench"}, Timeout: 10 * time.Second},
		Config{DockerSocket: testutil.DockerSocket})
	for b.Loop() {
		if status, out := p.probe(b.Context()); status != StatusPassing {
			b.Fatalf("%s %q", status, out)
		}
	}
}

// TestSetEnableScriptChecks: a reload that turns script checks on lets
// later Adds of script and Docker checks through, and off refuses them.
func TestSetEnableScriptChecks(t *testing.T) {
	m, _ := startManager(t, Config{DockerSocket: testutil.DockerSocket})
	script := Definition{ID: "s", Args: []string{"/bin/true"}, Interval: time.Minute}
	docker := Definition{ID: "d", DockerContainerID: "abc", Args: []string{"/bin/true"}, Interval: time.Minute}
	for _, d := range []Definition{script, docker} {
		if err := m.Add(d); err == nil {
			t.Fatalf("%s added with script checks off", d.Type())
		}
	}
	m.SetEnableScriptChecks(true)
	mustAdd(t, m, script)
	mustAdd(t, m, docker)
	m.SetEnableScriptChecks(false)
	script.ID = "s2"
	if err := m.Add(script); err == nil {
		t.Fatal("script check added after script checks were turned off")
	}
}
