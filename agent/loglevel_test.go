package agent

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestLogLevelNamesAgree: the log_level key and /v1/agent/monitor's
// ?loglevel= accept the same names (one parser: slog's names plus
// Consul's trace, warning and err, in any case) and refuse the same.
func TestLogLevelNamesAgree(t *testing.T) {
	a := startAgent(t, testConfig(t, "alpha"))
	monitor := func(level string) int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+a.HTTPAddr()+"/v1/agent/monitor?loglevel="+url.QueryEscape(level), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("monitor at %q: %v", level, err)
		}
		resp.Body.Close() // the stream ends with the request
		return resp.StatusCode
	}
	for _, tc := range []struct {
		level string
		ok    bool
	}{
		{"", true}, {"trace", true}, {"TRACE", true}, {"debug", true}, {"info", true}, {"Info+2", true},
		{"warn", true}, {"warning", true}, {"err", true}, {"error", true}, {"ERROR", true},
		{"loud", false}, {"fatal", false}, {"verbose", false},
	} {
		cfg := testConfig(t, "beta")
		cfg.LogLevel = tc.level
		cfgErr := cfg.Validate()
		code := monitor(tc.level)
		if (cfgErr == nil) != tc.ok || (code == http.StatusOK) != tc.ok {
			t.Errorf("level %q: log_level gives %v, ?loglevel= gives %d; want both to accept it: %v", tc.level, cfgErr, code, tc.ok)
		}
		if !tc.ok && code != http.StatusBadRequest {
			t.Errorf("level %q: ?loglevel= gives %d, want 400", tc.level, code)
		}
	}
}
