package testutil

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Metric reads one sample from the Prometheus text page at
// baseURL+"/metrics" (baseURL is "http://host:port"). series is the
// sample's name with its labels as the page prints them, e.g.
// `chorus_sync_events_total{event="ae_repair"}`. It is an error when the
// page cannot be read or has no such sample.
func Metric(baseURL, series string) (float64, error) {
	resp, err := http.Get(baseURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), series+" ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", series, err)
		}
		return f, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read /metrics: %w", err)
	}
	return 0, fmt.Errorf("no %s in /metrics", series)
}

// WaitBlockingQueries waits up to timeout until the agent whose HTTP API
// is at baseURL counts exactly want parked blocking queries
// (chorus_http_blocking_queries). A query it counts is registered with
// the agent's watch hub: any change from then on reaches it, so a test
// may make the change as soon as this returns.
func WaitBlockingQueries(t testing.TB, timeout time.Duration, baseURL string, want int) {
	t.Helper()
	Eventually(t, timeout, func() error {
		v, err := Metric(baseURL, "chorus_http_blocking_queries")
		if err != nil {
			return err
		}
		if int(v) != want {
			return fmt.Errorf("%v blocking queries parked, want %d", v, want)
		}
		return nil
	})
}
