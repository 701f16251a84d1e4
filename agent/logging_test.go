package agent

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	tu "github.com/chorusdns/chorus/test/testutil"
)

func TestRemoteKind(t *testing.T) {
	for _, tc := range []struct {
		msg, kind string
		remote    bool
	}{
		{"memberlist: Decrypt packet failed: payload is too small to decrypt: 29 from=127.0.0.1:4", "memberlist: Decrypt packet failed", true},
		{"memberlist: Decrypt packet failed: unsupported encryption version 3 from=127.0.0.1:4", "memberlist: Decrypt packet failed", true},
		{"memberlist: msg type (6) not supported from=10.0.0.1:7946", "memberlist: msg type () not supported", true},
		{"memberlist: Remote node state size is (16909060) limit is (20971520)", "memberlist: Remote node state size is", true},
		{"memberlist: Push/Pull with node1 failed: EOF", "", false},
		{"serf: EventMemberJoin: node1 127.0.0.1", "", false},
	} {
		kind, ok := remoteKind(tc.msg)
		if ok != tc.remote || kind != tc.kind {
			t.Errorf("remoteKind(%q) = %q, %v; want %q, %v", tc.msg, kind, ok, tc.kind, tc.remote)
		}
	}
}

// TestSerfLoggerLimitsRemoteLines: 1,000 lines of two kinds about what
// remotes sent are all counted and written as one line per kind; other
// lines are all written.
func TestSerfLoggerLimitsRemoteLines(t *testing.T) {
	out := &tu.SyncBuffer{}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "remote"})
	l := serfLogger(slog.New(slog.NewTextHandler(out, nil)), c)
	for i := range 500 {
		l.Printf("[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=127.0.0.%d:1", i%250)
		l.Printf("[ERR] memberlist: msg type (%d) not supported from=127.0.0.1:1", i%200)
		l.Printf("[WARN] memberlist: Push/Pull with node%d failed: EOF", i%3)
	}
	if v := testutil.ToFloat64(c); v != 1000 {
		t.Fatalf("%g remote lines counted, want 1000", v)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var decrypt, msgType, pushPull int
	for _, line := range lines {
		switch {
		case strings.Contains(line, "Decrypt packet failed"):
			decrypt++
			if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, "occurrences=1") {
				t.Errorf("first line of a kind: %s", line)
			}
		case strings.Contains(line, "msg type"):
			msgType++
		case strings.Contains(line, "Push/Pull"):
			pushPull++
		}
	}
	if decrypt != 1 || msgType != 1 || pushPull != 500 {
		t.Fatalf("lines written: %d decrypt, %d msg type, %d push/pull; want 1, 1, 500", decrypt, msgType, pushPull)
	}
}
