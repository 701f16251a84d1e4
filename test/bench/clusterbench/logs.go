package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// recorder is the slog handler every agent of one cluster logs to. It
// keeps the gossip events the benchmark scores (failure declarations,
// suspicions, refutations), counts warnings and errors by message, and
// writes warnings, errors and scored events to the shared log file.
// It is safe for concurrent use.
type recorder struct {
	out *syncWriter

	mu       sync.Mutex
	stopped  bool
	failed   []gossipEvent // "serf: EventMemberFailed: <member> <addr>"
	suspects []gossipEvent // "memberlist: Suspect <member> has failed, no acks received"
	refutes  []gossipEvent // the accused node refuting a suspect or dead message
	killed   map[string]time.Time
	warnings map[string]int // normalised message → count
}

// gossipEvent is one scored log line: observer logged it about member.
type gossipEvent struct {
	observer, member string
	at               time.Time
}

// syncWriter serialises writes to the log file shared by all clusters.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) printf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, format, args...)
}

func newRecorder(out *syncWriter) *recorder {
	return &recorder{out: out, killed: map[string]time.Time{}, warnings: map[string]int{}}
}

// logger returns the logger to hand the agent named node.
func (r *recorder) logger(node string) *slog.Logger {
	return slog.New(&logHandler{r: r, node: node})
}

// markKilled records that node is about to be crashed on purpose: its
// failure from now on is expected.
func (r *recorder) markKilled(node string) {
	r.mu.Lock()
	r.killed[node] = time.Now()
	r.mu.Unlock()
}

// stop makes the recorder ignore events from now on (cluster teardown).
func (r *recorder) stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
}

func (r *recorder) expectedLocked(member string, at time.Time) bool {
	k, ok := r.killed[member]
	return ok && !at.Before(k)
}

// firstFailed returns, for each observer, when it first declared member
// failed at or after since.
func (r *recorder) firstFailed(member string, since time.Time) map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]time.Time{}
	for _, e := range r.failed {
		if e.member != member || e.at.Before(since) {
			continue
		}
		if t, ok := out[e.observer]; !ok || e.at.Before(t) {
			out[e.observer] = e.at
		}
	}
	return out
}

// falseCounts is what went wrong with members nobody killed.
type falseCounts struct {
	failures   int      // failure declarations (observer, member) of live members
	members    []string // distinct members falsely declared failed
	suspicions int      // suspicions raised against live members
	refutes    int      // suspect/dead messages refuted by the accused
}

// falseBetween counts false failures and suspicions logged in [from, to).
func (r *recorder) falseBetween(from, to time.Time) falseCounts {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	var fc falseCounts
	seen := map[string]bool{}
	for _, e := range r.failed {
		if in(e.at) && !r.expectedLocked(e.member, e.at) {
			fc.failures++
			if !seen[e.member] {
				seen[e.member] = true
				fc.members = append(fc.members, e.member)
			}
		}
	}
	sort.Strings(fc.members)
	for _, e := range r.suspects {
		if in(e.at) && !r.expectedLocked(e.member, e.at) {
			fc.suspicions++
		}
	}
	for _, e := range r.refutes {
		if in(e.at) {
			fc.refutes++
		}
	}
	return fc
}

// topWarnings returns the most frequent warning and error messages.
func (r *recorder) topWarnings(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	type kv struct {
		msg string
		n   int
	}
	var all []kv
	for m, c := range r.warnings {
		all = append(all, kv{m, c})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].msg < all[j].msg
	})
	var out []string
	for i := 0; i < len(all) && i < n; i++ {
		out = append(out, fmt.Sprintf("%d× %s", all[i].n, all[i].msg))
	}
	return out
}

// handle scores one log line from the agent named node.
func (r *recorder) handle(node string, attrs []slog.Attr, rec slog.Record) {
	msg := rec.Message
	var ev *[]gossipEvent
	var member string
	switch {
	case strings.Contains(msg, "EventMemberFailed: "):
		ev, member = &r.failed, firstField(msg[strings.Index(msg, "EventMemberFailed: ")+len("EventMemberFailed: "):])
	case strings.HasPrefix(msg, "memberlist: Suspect ") && strings.Contains(msg, " has failed"):
		ev, member = &r.suspects, firstField(strings.TrimPrefix(msg, "memberlist: Suspect "))
	case strings.Contains(msg, "Refuting a suspect message") || strings.Contains(msg, "Refuting a dead message"):
		ev, member = &r.refutes, node
	}
	if ev == nil && rec.Level < slog.LevelWarn {
		return
	}
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	if ev != nil {
		*ev = append(*ev, gossipEvent{observer: node, member: member, at: rec.Time})
	}
	if rec.Level >= slog.LevelWarn {
		r.warnings[normalise(msg)]++
	}
	r.mu.Unlock()

	var b strings.Builder
	for _, a := range attrs {
		if a.Key != "node" {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		}
	}
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.out.printf("%s %-5s %s %s%s\n", rec.Time.Format("15:04:05.000"), rec.Level, node, msg, b.String())
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return strings.TrimSuffix(f[0], ",")
	}
	return ""
}

// normalise masks digits so that messages differing only in addresses,
// ports or counts group together.
func normalise(msg string) string {
	var b strings.Builder
	digits := false
	for _, c := range msg {
		if c >= '0' && c <= '9' {
			if !digits {
				b.WriteByte('#')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(c)
	}
	s := b.String()
	if len(s) > 140 {
		s = s[:140] + "…"
	}
	return s
}

// logHandler is the slog.Handler of one agent; node comes from the
// agent's name, attrs from the loggers the agent derives.
type logHandler struct {
	r     *recorder
	node  string
	attrs []slog.Attr
}

var _ slog.Handler = (*logHandler)(nil)

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *logHandler) Handle(_ context.Context, rec slog.Record) error {
	h.r.handle(h.node, h.attrs, rec)
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &n
}

func (h *logHandler) WithGroup(string) slog.Handler { return h }
