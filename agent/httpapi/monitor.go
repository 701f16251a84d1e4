package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LogTap hands the agent's log records to the /v1/agent/monitor streams.
// Wrap the agent's root handler with Handler; records still reach that
// handler exactly as before (at its own level), and each stream gets
// the records at or above the level it asked for, also below the
// handler's level. A stream that does not keep up loses lines (counted
// and reported in the stream), never slows the logger. It is safe for
// concurrent use.
type LogTap struct {
	mu   sync.Mutex
	subs map[*logSub]struct{}
	// min is the lowest level any stream wants (math.MaxInt64 when none),
	// so that records nobody wants cost one atomic load.
	min atomic.Int64
}

// logSub is one monitor stream.
type logSub struct {
	level   slog.Level
	json    bool
	ch      chan []byte
	dropped atomic.Uint64
}

// logSubBuffer is how many lines a stream may be behind before lines
// are dropped.
const logSubBuffer = 1024

// NewLogTap returns a tap with no streams.
func NewLogTap() *LogTap {
	t := &LogTap{subs: map[*logSub]struct{}{}}
	t.min.Store(math.MaxInt64)
	return t
}

// Handler returns a handler that passes every record to next (as next's
// level allows) and to the tap's streams.
func (t *LogTap) Handler(next slog.Handler) slog.Handler { return &tapHandler{tap: t, next: next} }

func (t *LogTap) subscribe(level slog.Level, asJSON bool) *logSub {
	s := &logSub{level: level, json: asJSON, ch: make(chan []byte, logSubBuffer)}
	t.mu.Lock()
	t.subs[s] = struct{}{}
	t.resetMinLocked()
	t.mu.Unlock()
	return s
}

func (t *LogTap) unsubscribe(s *logSub) {
	t.mu.Lock()
	delete(t.subs, s)
	t.resetMinLocked()
	t.mu.Unlock()
}

func (t *LogTap) resetMinLocked() {
	m := int64(math.MaxInt64)
	for s := range t.subs {
		m = min(m, int64(s.level))
	}
	t.min.Store(m)
}

func (t *LogTap) wants(l slog.Level) bool { return int64(l) >= t.min.Load() }

// tapHandler is LogTap's slog.Handler: next plus the streams.
type tapHandler struct {
	tap  *LogTap
	next slog.Handler
	// attrs are the handler's attributes (WithAttrs), keys already
	// prefixed with their groups.
	attrs  []slog.Attr
	groups []string
}

func (h *tapHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.tap.wants(l) || h.next.Enabled(ctx, l)
}

func (h *tapHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.next.Enabled(ctx, r.Level) {
		err = h.next.Handle(ctx, r)
	}
	if !h.tap.wants(r.Level) {
		return err
	}
	var text, js []byte
	h.tap.mu.Lock()
	for s := range h.tap.subs {
		if r.Level < s.level {
			continue
		}
		var line []byte
		if s.json {
			if js == nil {
				js = h.formatJSON(r)
			}
			line = js
		} else {
			if text == nil {
				text = h.formatText(r)
			}
			line = text
		}
		select {
		case s.ch <- line:
		default:
			s.dropped.Add(1)
		}
	}
	h.tap.mu.Unlock()
	return err
}

func (h *tapHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), h.prefixed(as)...)
	return &c
}

func (h *tapHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.groups = append(append([]string(nil), h.groups...), name)
	return &c
}

// prefixed returns as with the handler's groups in front of each key.
func (h *tapHandler) prefixed(as []slog.Attr) []slog.Attr {
	if len(h.groups) == 0 {
		return as
	}
	p := strings.Join(h.groups, ".") + "."
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = slog.Attr{Key: p + a.Key, Value: a.Value}
	}
	return out
}

// fields returns the record's attributes after the handler's, and the
// component (the module Consul's lines name).
func (h *tapHandler) fields(r slog.Record) (string, []slog.Attr) {
	all := append([]slog.Attr(nil), h.attrs...)
	var own []slog.Attr
	r.Attrs(func(a slog.Attr) bool { own = append(own, a); return true })
	all = append(all, h.prefixed(own)...)
	module := ""
	out := all[:0]
	for _, a := range all {
		if a.Key == "component" {
			module = a.Value.String()
			continue
		}
		out = append(out, a)
	}
	return module, out
}

// levelName is Consul's (hclog's) name of a level.
func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "TRACE"
	case l < slog.LevelInfo:
		return "DEBUG"
	case l < slog.LevelWarn:
		return "INFO"
	case l < slog.LevelError:
		return "WARN"
	}
	return "ERROR"
}

// formatText renders a record as Consul's monitor lines look:
// "2006-01-02T15:04:05.000Z [INFO]  module: message: key=value".
func (h *tapHandler) formatText(r slog.Record) []byte {
	module, attrs := h.fields(r)
	var b bytes.Buffer
	b.WriteString(r.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	lvl := levelName(r.Level)
	fmt.Fprintf(&b, " [%s] %s", lvl, strings.Repeat(" ", 5-len(lvl)))
	if module != "" {
		b.WriteString(module)
		b.WriteString(": ")
	}
	b.WriteString(r.Message)
	if len(attrs) > 0 {
		b.WriteByte(':')
	}
	for _, a := range attrs {
		b.WriteByte(' ')
		b.WriteString(a.Key)
		b.WriteByte('=')
		v := a.Value.Resolve().String()
		if v == "" || strings.ContainsAny(v, " \t\"=\n") {
			v = strconv.Quote(v)
		}
		b.WriteString(v)
	}
	return bytes.ReplaceAll(b.Bytes(), []byte("\n"), []byte(`\n`))
}

// formatJSON renders a record as Consul's JSON monitor lines look:
// {"@level", "@message", "@module", "@timestamp", attributes…}.
func (h *tapHandler) formatJSON(r slog.Record) []byte {
	module, attrs := h.fields(r)
	m := make(map[string]any, len(attrs)+4)
	for _, a := range attrs {
		v := a.Value.Resolve()
		switch v.Kind() {
		case slog.KindString, slog.KindInt64, slog.KindUint64, slog.KindFloat64, slog.KindBool:
			m[a.Key] = v.Any()
		default:
			m[a.Key] = v.String()
		}
	}
	m["@level"] = strings.ToLower(levelName(r.Level))
	m["@message"] = r.Message
	m["@timestamp"] = r.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	if module != "" {
		m["@module"] = module
	}
	b, err := json.Marshal(m)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"@level": "error", "@message": "unencodable log record: " + err.Error()})
	}
	return b
}

// SetLogTap connects /v1/agent/monitor to the agent's logs.
func (a *Server) SetLogTap(t *LogTap) { a.logTap.Store(t) }

// apiAgentMonitor is GET /v1/agent/monitor: the agent's log lines at
// ?loglevel= and above (default info), as text or with ?logjson as JSON
// lines, streamed until the client goes away or the agent stops.
func (a *Server) apiAgentMonitor(w http.ResponseWriter, r *http.Request) (any, error) {
	level, err := ParseLogLevel(params(r).Get("loglevel"))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "Unknown log level: %s (want trace, debug, info, warn or error)", params(r).Get("loglevel"))
	}
	asJSON, err := boolParam(r, "logjson")
	if err != nil {
		return nil, err
	}
	tap := a.logTap.Load()
	if tap == nil {
		return nil, errorf(http.StatusServiceUnavailable, "this agent's logs cannot be streamed")
	}
	sub := tap.subscribe(level, asJSON)
	defer tap.unsubscribe(sub)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var reported uint64
	for {
		select {
		case line := <-sub.ch:
			w.Write(line)
			w.Write([]byte("\n"))
			// Write what else is waiting before flushing once.
			for n := len(sub.ch); n > 0; n-- {
				w.Write(<-sub.ch)
				w.Write([]byte("\n"))
			}
			if err := rc.Flush(); err != nil {
				return streamed{}, nil
			}
		case <-tick.C:
			if d := sub.dropped.Load(); d > reported {
				fmt.Fprintf(w, "%s [WARN]  http: monitor dropped %d log lines (the stream did not keep up)\n",
					time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"), d-reported)
				reported = d
				if err := rc.Flush(); err != nil {
					return streamed{}, nil
				}
			}
		case <-r.Context().Done():
			return streamed{}, nil
		case <-a.stopped:
			return streamed{}, nil
		}
	}
}
