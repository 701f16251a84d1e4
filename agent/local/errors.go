package local

import (
	"errors"

	"github.com/chorusdns/chorus/catalog"
)

// Sentinel errors of local operations; the HTTP layer maps them to status
// codes.
var (
	// ErrNotFound: no local service or check with that ID.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a definition or argument that does not validate. It is
	// catalog.ErrInvalid, so errors from the model map the same way.
	ErrInvalid = catalog.ErrInvalid
	// ErrNotTTL: a TTL update for a check of another type.
	ErrNotTTL = errors.New("not a TTL check")
	// ErrPersistence: the change could not be written to the data dir; it
	// was rolled back.
	ErrPersistence = errors.New("cannot persist")
	// ErrTooLarge: the change would make this node's record larger than
	// peers accept (catalog.MaxRecordSize); nothing was changed.
	ErrTooLarge = errors.New("node record too large")
)
