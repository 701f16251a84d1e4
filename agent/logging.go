package agent

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"strings"
)

// parseLevel maps a log_level value onto a slog level.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "trace", "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "err", "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q (debug, info, warn or error)", s)
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
