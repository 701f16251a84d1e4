package sealing

import "errors"

// ErrOpen: no installed key opens the message.
var ErrOpen = errors.New("cannot decrypt: no installed key matches (wrong or missing gossip key?)")
