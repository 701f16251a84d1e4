package wan

import "errors"

// ErrSummary marks an encoded summary that does not decode or validate.
var ErrSummary = errors.New("invalid datacenter summary")
