package testutil

import (
	"io"
	"log/slog"
	"sync"
	"testing"
)

// Logger returns a debug-level logger whose lines go to t's output, the
// stream of t.Log: they show when t fails or under -v, next to t's own.
//
// Lines logged once t's cleanups reach the one Logger registers are
// dropped, so a goroutine that outlives the test cannot make it panic.
// Cleanups run last-registered first: whatever is started after Logger
// and stopped by a cleanup of its own logs to the end.
func Logger(t testing.TB) *slog.Logger {
	t.Helper()
	w := &testWriter{w: t.Output()}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testWriter writes to a test's output until closed, then discards.
type testWriter struct {
	mu sync.Mutex
	w  io.Writer // nil once closed
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.w == nil {
		return len(p), nil
	}
	return w.w.Write(p)
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.w = nil
	w.mu.Unlock()
}
