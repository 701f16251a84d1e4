package httpapi

import (
	"bytes"
	"log"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"
)

// logEvery is how often at most one kind of failure is logged at info
// level or above; the lines between are counted and the count is carried
// by the next line as "suppressed".
const logEvery = 10 * time.Second

// rateLog decides which lines of a kind are logged: the first, then one
// per logEvery. Kinds are a fixed set of names chosen by the code, never
// request data, so its maps stay small. Safe for concurrent use.
type rateLog struct {
	mu         sync.Mutex
	every      time.Duration
	now        func() time.Time
	last       map[string]time.Time
	suppressed map[string]int
}

func newRateLog(every time.Duration) *rateLog {
	return &rateLog{every: every, now: time.Now, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// allow reports whether a line of kind is logged now and, if so, how many
// lines of that kind were suppressed since the previous one.
func (l *rateLog) allow(kind string) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if last, seen := l.last[kind]; seen && now.Sub(last) < l.every {
		l.suppressed[kind]++
		return false, 0
	}
	l.last[kind] = now
	n := l.suppressed[kind]
	l.suppressed[kind] = 0
	return true, n
}

// ErrorLog returns a logger for http.Server.ErrorLog. net/http writes a
// line there for each connection it gives up on (TLS handshakes that
// fail, malformed requests, panics), mostly caused by clients: each goes
// to the API's logger at debug level, and one in every 10 s at most at
// warn level, with the number suppressed since the last. It is safe for
// concurrent use by several http.Servers.
func (a *Server) ErrorLog() *log.Logger {
	return log.New(errorLogWriter{a}, "", 0)
}

type errorLogWriter struct{ a *Server }

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	if ok, n := w.a.logs.allow("conn"); ok {
		w.a.logger.Warn("http connection error", "err", msg, "suppressed", n)
	} else {
		w.a.logger.Debug("http connection error", "err", msg)
	}
	return len(p), nil
}

// logFailure logs a request answered with an error status: 5xx (the
// agent's fault) at error level, at most one line per 10 s with the count
// of those suppressed; 4xx (the client's) and 501 (a Consul feature Chorus
// does not provide, such as a KV read by consul-template) at debug level
// only, so that clients cannot flood the log.
func (a *Server) logFailure(method, path string, code int, err error) {
	if code < 500 || code == http.StatusNotImplemented {
		a.logger.Debug("http request refused", "method", method, "path", clip(path), "code", code, "err", err)
		return
	}
	if ok, n := a.logs.allow("5xx"); ok {
		a.logger.Error("http request failed", "method", method, "path", clip(path), "code", code, "err", err, "suppressed", n)
		return
	}
	a.logger.Debug("http request failed", "method", method, "path", clip(path), "code", code, "err", err)
}

// clip shortens s for a log line, cutting at a character boundary.
func clip(s string) string {
	n := 256
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
