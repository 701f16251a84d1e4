package watch

import "errors"

// ErrInvalidPlan is wrapped by the errors of Plan.Validate.
var ErrInvalidPlan = errors.New("invalid watch")
