package catalog

import "errors"

// Sentinel errors returned by the catalog. Callers match them with errors.Is.
var (
	// ErrInvalid marks input that fails validation (a bad name, tag, port…).
	ErrInvalid = errors.New("invalid")
	// ErrRecordCorrupt marks a node record that cannot be decoded.
	ErrRecordCorrupt = errors.New("corrupt node record")
	// ErrRecordTooLarge marks an encoded or decoded record over MaxRecordSize.
	ErrRecordTooLarge = errors.New("node record too large")
	// ErrSignature marks a record whose signature is missing or does not
	// verify against its owner's key.
	ErrSignature = errors.New("node record signature does not verify")
	// ErrDeltaBase marks a delta whose base is not the record given.
	ErrDeltaBase = errors.New("delta is not against the record held")
)
