package filter

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every error New returns for an expression that
// does not parse or does not fit the answer type: the HTTP layer answers
// such errors with 400 Bad Request.
var ErrInvalid = errors.New("invalid filter")

// invalidError says what is wrong with an expression. Its message names
// the expression and the problem (not ErrInvalid's text), so it can be
// shown to the client as it is.
type invalidError struct {
	expr string
	err  error
}

func (e *invalidError) Error() string { return fmt.Sprintf("filter %q: %v", e.expr, e.err) }

func (e *invalidError) Unwrap() error { return ErrInvalid }
