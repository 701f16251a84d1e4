package replication

import "errors"

var (
	// errFrame marks a frame that breaks the stream protocol: larger than
	// its type allows, or a header that does not open.
	errFrame = errors.New("bad frame")
	// errMalformed marks a stream message that opens but does not decode.
	errMalformed = errors.New("malformed message")
	// errClosed ends a catch-up exchange that was queued when the Syncer
	// closed.
	errClosed = errors.New("the syncer is closed")
	// errStreamBudget ends a memberlist stream that read past its share.
	errStreamBudget = errors.New("gossip stream closed: the streams open from this address or in total have read more than they may hold at once")
)
