package journal

import (
	"errors"
	"fmt"
)

// Sentinel errors of the journal.
var (
	// ErrClosed: the journal was closed.
	ErrClosed = errors.New("journal closed")
	// ErrBroken: an earlier failed write could not be undone, so the log
	// may hold bytes of a batch whose callers were told it failed. Every
	// later Append fails until the journal is closed and opened again.
	ErrBroken = errors.New("journal broken")
	// ErrCorrupt: a file holds damage that is not a torn final write. The
	// error is a *CorruptError naming the file and offset.
	ErrCorrupt = errors.New("journal corrupt")
	// ErrTooLarge: an entry is longer than Options.MaxEntryBytes.
	ErrTooLarge = errors.New("entry too large")
	// ErrLocked: another Journal (in this or another process) has the
	// directory open.
	ErrLocked = errors.New("journal directory in use")
	// ErrNoFold: Checkpoint was called without Options.Fold.
	ErrNoFold = errors.New("no fold function configured")
)

// CorruptError reports damage that Open will not repair by itself: the
// file, the byte offset where the damage starts, what is wrong, and what
// the operator can do about it. errors.Is(err, ErrCorrupt) holds for it.
type CorruptError struct {
	File   string
	Offset int64
	Reason string
	// Recovery says how to get the agent running again.
	Recovery string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("journal: %s is corrupt at offset %d: %s; %s", e.File, e.Offset, e.Reason, e.Recovery)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }
