package checks

// statusHandler damps flapping exactly as Consul's StatusHandler
// (agent/checks/check.go): a passing or warning result is reported only once
// SuccessBeforePassing consecutive passing-or-warning results have been seen, and
// a critical result only once FailuresBeforeCritical consecutive critical results
// have been seen; from FailuresBeforeWarning consecutive critical results on (when
// that is lower) the check is reported as warning instead. A result that does not
// reach its threshold is not reported at all: status and output stay as they were.
//
// Both counters start at their thresholds, so the first probe is always reported,
// as in Consul: a new check does not wait N intervals to leave its initial status.
//
// A statusHandler is owned by one check goroutine and is not safe for concurrent use.
type statusHandler struct {
	successBeforePassing   int
	failuresBeforeWarning  int
	failuresBeforeCritical int

	successes int
	failures  int
}

// newStatusHandler takes the thresholds of a Definition after withDefaults (so
// failuresBeforeWarning already defaults to failuresBeforeCritical).
func newStatusHandler(successBeforePassing, failuresBeforeWarning, failuresBeforeCritical int) *statusHandler {
	return &statusHandler{
		successBeforePassing:   successBeforePassing,
		failuresBeforeWarning:  failuresBeforeWarning,
		failuresBeforeCritical: failuresBeforeCritical,
		successes:              successBeforePassing,
		failures:               failuresBeforeCritical,
	}
}

// update records one probe result and returns the status to report, or ok false
// when the result must not be reported yet.
func (s *statusHandler) update(status string) (report string, ok bool) {
	if status == StatusPassing || status == StatusWarning {
		s.successes++
		s.failures = 0
		if s.successes >= s.successBeforePassing {
			return status, true
		}
		return "", false
	}
	s.failures++
	s.successes = 0
	if s.failures >= s.failuresBeforeCritical {
		return StatusCritical, true
	}
	if s.failures >= s.failuresBeforeWarning {
		return StatusWarning, true
	}
	return "", false
}
