package httpapi

import (
	"fmt"
	"log/slog"
	"strings"
)

// ParseLogLevel maps a log level name onto a slog level. It is the one
// parser of level names: the agent's log_level key, ?loglevel= of
// /v1/agent/monitor and the "[LEVEL]" prefixes of Serf's and memberlist's
// log lines all read levels with it. It accepts slog's own names (debug,
// info, warn, error, with offsets such as "info+2", in any case) and the
// names Consul and Serf use besides: trace (below debug, slog.LevelDebug-4,
// as in Consul), warning and err; "" is info.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "":
		return slog.LevelInfo, nil
	case "trace":
		return slog.LevelDebug - 4, nil
	case "warning":
		return slog.LevelWarn, nil
	case "err":
		return slog.LevelError, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("unknown log level %q (want trace, debug, info, warn or error)", s)
	}
	return l, nil
}
