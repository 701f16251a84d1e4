package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// summary is the distribution of one measurement. Percentiles are
// nearest-rank, so with fewer than 100 samples p99 is the maximum.
type summary struct {
	n                       int
	min, p50, p90, p99, max time.Duration
	timeouts                int // samples that never completed
	timeoutAfter            time.Duration
}

func summarize(d []time.Duration, timeouts int, timeoutAfter time.Duration) summary {
	s := summary{n: len(d), timeouts: timeouts, timeoutAfter: timeoutAfter}
	if len(d) == 0 {
		return s
	}
	sorted := slices.Clone(d)
	slices.Sort(sorted)
	s.min, s.max = sorted[0], sorted[len(sorted)-1]
	s.p50 = rank(sorted, 0.50)
	s.p90 = rank(sorted, 0.90)
	s.p99 = rank(sorted, 0.99)
	return s
}

// rank returns the nearest-rank p-quantile of sorted.
func rank[T any](sorted []T, p float64) T {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// fmtDur prints a latency with a precision that suits its size.
func fmtDur(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

// cells returns the n, min, median, p90, p99 and max columns.
func (s summary) cells() []string {
	if s.n == 0 {
		n := "0"
		if s.timeouts > 0 {
			n = fmt.Sprintf("0 (+%d timed out after %s)", s.timeouts, fmtDur(s.timeoutAfter))
		}
		return []string{n, "–", "–", "–", "–", "–"}
	}
	n := fmt.Sprint(s.n)
	if s.timeouts > 0 {
		n += fmt.Sprintf(" (+%d timed out after %s)", s.timeouts, fmtDur(s.timeoutAfter))
	}
	return []string{n, fmtDur(s.min), fmtDur(s.p50), fmtDur(s.p90), fmtDur(s.p99), fmtDur(s.max)}
}
