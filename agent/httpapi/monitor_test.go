package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// The tap leaves the wrapped handler's output as it was and gives each
// stream the records at its own level, attributes and groups included.
func TestLogTap(t *testing.T) {
	var root bytes.Buffer
	tap := NewLogTap()
	logger := slog.New(tap.Handler(slog.NewTextHandler(&root, &slog.HandlerOptions{Level: slog.LevelInfo})))
	log := logger.With("component", "agent").WithGroup("g").With("k", "v w")

	log.Debug("before any stream") // nobody wants it
	debug := tap.subscribe(slog.LevelDebug, false)
	warn := tap.subscribe(slog.LevelWarn, true)
	log.Debug("quiet", "n", 1)
	log.Warn("loud", "err", "disk full")
	tap.unsubscribe(debug)
	tap.unsubscribe(warn)
	log.Error("after the streams")

	if got := root.String(); strings.Contains(got, "quiet") || strings.Contains(got, "before any stream") ||
		!strings.Contains(got, "loud") || !strings.Contains(got, "after the streams") {
		t.Fatalf("root handler output changed:\n%s", got)
	}
	if len(debug.ch) != 2 || len(warn.ch) != 1 {
		t.Fatalf("debug stream %d lines, warn stream %d, want 2 and 1", len(debug.ch), len(warn.ch))
	}
	first := string(<-debug.ch)
	if !strings.Contains(first, " [DEBUG] agent: quiet: g.k=\"v w\" g.n=1") {
		t.Fatalf("text line: %s", first)
	}
	var j map[string]any
	if err := json.Unmarshal(<-warn.ch, &j); err != nil {
		t.Fatal(err)
	}
	if j["@level"] != "warn" || j["@message"] != "loud" || j["@module"] != "agent" || j["g.err"] != "disk full" || j["g.k"] != "v w" {
		t.Fatalf("json line: %v", j)
	}
	if tap.wants(slog.LevelError) {
		t.Fatal("the tap still wants records with no stream")
	}
}

// A stream that does not read loses lines, counted, and never blocks
// the logger.
func TestLogTapDropsForSlowStream(t *testing.T) {
	tap := NewLogTap()
	logger := slog.New(tap.Handler(slog.DiscardHandler))
	s := tap.subscribe(slog.LevelInfo, false)
	for range logSubBuffer + 10 {
		logger.Info("x")
	}
	if len(s.ch) != logSubBuffer || s.dropped.Load() != 10 {
		t.Fatalf("%d buffered, %d dropped", len(s.ch), s.dropped.Load())
	}
}

// TestParseLogLevel: slog's names with offsets, Consul's extra names
// (trace below debug, warning, err) in any case; anything else is refused.
func TestParseLogLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"": slog.LevelInfo, "info": slog.LevelInfo, "TRACE": slog.LevelDebug - 4, "trace": slog.LevelDebug - 4,
		"debug": slog.LevelDebug, "Warn": slog.LevelWarn, "warning": slog.LevelWarn, "err": slog.LevelError,
		"ERROR": slog.LevelError, "info+2": slog.LevelInfo + 2,
	} {
		if got, err := ParseLogLevel(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"loud", "fatal", "traces"} {
		if _, err := ParseLogLevel(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// BenchmarkLogTap is the cost the tap adds to a log call: with no
// stream (one atomic load), and with a debug stream that drains.
func BenchmarkLogTap(b *testing.B) {
	run := func(b *testing.B, logger *slog.Logger) {
		b.ReportAllocs()
		for b.Loop() {
			logger.Debug("service registered", "service", "web", "source", "api")
		}
	}
	b.Run("bare-handler", func(b *testing.B) {
		run(b, slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})))
	})
	b.Run("tap-no-stream", func(b *testing.B) {
		run(b, slog.New(NewLogTap().Handler(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	})
	b.Run("tap-debug-stream", func(b *testing.B) {
		tap := NewLogTap()
		s := tap.subscribe(slog.LevelDebug, false)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range s.ch {
			}
		}()
		run(b, slog.New(tap.Handler(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))))
		tap.unsubscribe(s)
		close(s.ch)
		<-done
	})
}
