package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/agent/httpapi"
)

// serfLogger returns a *log.Logger for serf and memberlist whose lines,
// prefixed "[DEBUG]", "[INFO]", "[WARN]" or "[ERR]", go to logger at the
// matching slog level. Warnings and errors about what a remote address
// sent (memberlist ends them with "from=ADDR": undecryptable, malformed
// or unexpected messages, which anyone who reaches the gossip port can
// send by the thousand) are counted in remote, if not nil, and logged at
// most once per kind every remoteLogEvery, with the number of
// occurrences since the previous line. The logger is safe for concurrent
// use.
func serfLogger(logger *slog.Logger, remote prometheus.Counter) *log.Logger {
	return log.New(&levelWriter{logger: logger, remote: remote, last: map[string]remoteLog{}}, "", 0)
}

// remoteLogEvery is the least time between two lines of one kind of
// remote-caused serf or memberlist warning; remoteLogKinds bounds the
// kinds remembered (the table is cleared when full).
const (
	remoteLogEvery = 10 * time.Second
	remoteLogKinds = 256
)

type levelWriter struct {
	logger *slog.Logger
	remote prometheus.Counter

	mu   sync.Mutex
	last map[string]remoteLog // by remoteKind
}

// remoteLog is when a kind of remote-caused line was last written and how
// many occurred since.
type remoteLog struct {
	at    time.Time
	count int
}

func (w *levelWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	// The first "[LEVEL]" names the level (trace, debug, info, warn,
	// err, error), read by the agent's one level parser.
	if i := strings.IndexByte(msg, '['); i >= 0 {
		if j := strings.IndexByte(msg[i:], ']'); j > 1 {
			if l, err := httpapi.ParseLogLevel(msg[i+1 : i+j]); err == nil {
				level = l
				msg = strings.TrimSpace(msg[i+j+1:])
			}
		}
	}
	if level >= slog.LevelWarn {
		if kind, ok := remoteKind(msg); ok {
			if w.remote != nil {
				w.remote.Inc()
			}
			n, write := w.limit(kind)
			if write {
				w.logger.Log(context.Background(), level, msg, "occurrences", n, "log_interval_seconds", remoteLogEvery.Seconds())
			}
			return len(p), nil
		}
	}
	w.logger.Log(context.Background(), level, msg)
	return len(p), nil
}

// limit counts one line of kind and reports whether to write it now, with
// the occurrences it stands for.
func (w *levelWriter) limit(kind string) (int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	l, ok := w.last[kind]
	if !ok && len(w.last) >= remoteLogKinds {
		clear(w.last)
	}
	l.count++
	if ok && now.Sub(l.at) < remoteLogEvery {
		w.last[kind] = l
		return 0, false
	}
	w.last[kind] = remoteLog{at: now}
	return l.count, true
}

// remoteUnaddressed are the beginnings of memberlist's lines about what a
// remote sent that name no address.
var remoteUnaddressed = []string{
	"memberlist: Remote node state size is",
	"memberlist: Got invalid checksum for UDP packet",
}

// remoteKind reports whether msg is about what a remote address sent
// (memberlist appends "from=ADDR", or it is one of remoteUnaddressed) and
// its kind: the text before the address up to the second ": "
// ("memberlist: Decrypt packet failed"), digits dropped ("msg type () not
// supported").
func remoteKind(msg string) (string, bool) {
	for _, p := range remoteUnaddressed {
		if strings.HasPrefix(msg, p) {
			return p, true
		}
	}
	i := strings.LastIndex(msg, " from=")
	if i < 0 {
		return "", false
	}
	kind := msg[:i]
	if j := strings.Index(kind, ": "); j >= 0 {
		if k := strings.Index(kind[j+2:], ": "); k >= 0 {
			kind = kind[:j+2+k]
		}
	}
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, kind), true
}
