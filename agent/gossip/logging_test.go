package gossip

import (
	"context"
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

// TestSerfLoggerLevels: the "[LEVEL]" prefix Serf and memberlist write
// picks the slog level through the agent's one level parser; a line
// without one is info.
func TestSerfLoggerLevels(t *testing.T) {
	for _, tc := range []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[TRACE] memberlist: a", slog.LevelDebug - 4, "memberlist: a"},
		{"[DEBUG] serf: b", slog.LevelDebug, "serf: b"},
		{"[INFO] serf: c", slog.LevelInfo, "serf: c"},
		{"[WARN] memberlist: d", slog.LevelWarn, "memberlist: d"},
		{"[ERR] memberlist: e", slog.LevelError, "memberlist: e"},
		{"[ERROR] serf: f", slog.LevelError, "serf: f"},
		{"serf: g [x]", slog.LevelInfo, "serf: g [x]"},
	} {
		var got slog.Record
		h := recordHandler{rec: &got}
		serfLogger(slog.New(h), nil).Print(tc.line)
		if got.Level != tc.level || got.Message != tc.msg {
			t.Errorf("%q: level %v message %q; want %v %q", tc.line, got.Level, got.Message, tc.level, tc.msg)
		}
	}
}

// recordHandler keeps the last record it handles.
type recordHandler struct{ rec *slog.Record }

func (h recordHandler) Enabled(context.Context, slog.Level) bool      { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error { *h.rec = r; return nil }
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h recordHandler) WithGroup(string) slog.Handler                 { return h }
