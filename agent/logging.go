package agent

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"strings"
)

// ParseLogLevel maps a log_level value onto a slog level: slog's own names
// (debug, info, warn, error, with offsets such as "info+2", any case),
// plus the spellings Serf and Consul use (trace, warning, err); "" is info.
func ParseLogLevel(s string) (slog.Level, error) {
	alias := map[string]string{"": "info", "trace": "debug", "warning": "warn", "err": "error"}
	if a, ok := alias[strings.ToLower(s)]; ok {
		s = a
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("unknown level %q (debug, info, warn or error)", s)
	}
	return l, nil
}

// serfLogger returns a *log.Logger for serf and memberlist whose lines,
// prefixed "[DEBUG]", "[INFO]", "[WARN]" or "[ERR]", go to logger at the
// matching slog level.
func serfLogger(logger *slog.Logger) *log.Logger {
	return log.New(&levelWriter{logger: logger}, "", 0)
}

type levelWriter struct{ logger *slog.Logger }

func (w *levelWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{
		"[TRACE]": slog.LevelDebug - 4, "[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo,
		"[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[ERROR]": slog.LevelError,
	} {
		if i := strings.Index(msg, prefix); i >= 0 {
			level = l
			msg = strings.TrimSpace(msg[i+len(prefix):])
			break
		}
	}
	w.logger.Log(context.Background(), level, msg)
	return len(p), nil
}
