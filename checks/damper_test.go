package checks

import (
	"slices"
	"strings"
	"testing"
)

// TestStatusHandler feeds probe results through the damper and checks what is
// reported; "-" marks a result that is not reported. The expectations follow
// Consul's StatusHandler.
func TestStatusHandler(t *testing.T) {
	const (
		P = StatusPassing
		W = StatusWarning
		C = StatusCritical
	)
	tests := []struct {
		name                  string
		success, warn, failed int // SuccessBeforePassing, FailuresBeforeWarning, FailuresBeforeCritical (after defaults)
		in                    []string
		want                  []string
	}{
		{"no damping", 0, 0, 0, []string{P, C, W, P, C}, []string{P, C, W, P, C}},
		{"counts of one are no damping", 1, 1, 1, []string{P, C, W, P, C}, []string{P, C, W, P, C}},
		{"first result is reported at once", 3, 3, 3, []string{C}, []string{C}},
		{"first success is reported at once", 3, 3, 3, []string{P}, []string{P}},
		{"passing needs 3 in a row after a failure", 3, 0, 0, []string{C, P, P, P, P}, []string{C, "-", "-", P, P}},
		{"a failure resets the success count", 3, 0, 0, []string{C, P, P, C, P, P, P}, []string{C, "-", "-", C, "-", "-", P}},
		{"critical needs 2 in a row after a success", 0, 2, 2, []string{P, C, C, C}, []string{P, "-", C, C}},
		{"a success resets the failure count", 0, 2, 2, []string{P, C, P, C, P}, []string{P, "-", P, "-", P}},
		{"both thresholds", 2, 2, 2, []string{P, C, P, C, C, P, P}, []string{P, "-", "-", "-", C, "-", P}},
		{"warning counts as a success", 2, 0, 0, []string{C, W, W, P}, []string{C, "-", W, P}},
		{"warning resets the failure count", 0, 3, 3, []string{P, C, C, W, C, C, C}, []string{P, "-", "-", W, "-", "-", C}},
		{"failures before warning", 0, 1, 3, []string{P, C, C, C, C}, []string{P, W, W, C, C}},
		{"failures before warning 2 of 4", 0, 2, 4, []string{P, C, C, C, C, P}, []string{P, "-", W, W, C, P}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newStatusHandler(tc.success, tc.warn, tc.failed)
			var got []string
			for _, s := range tc.in {
				if r, ok := h.update(s); ok {
					got = append(got, r)
				} else {
					got = append(got, "-")
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("in  %s\ngot  %s\nwant %s", strings.Join(tc.in, " "), strings.Join(got, " "), strings.Join(tc.want, " "))
			}
		})
	}
}
