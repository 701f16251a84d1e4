package gossip

import "errors"

// ErrNameConflict is returned by Run when Serf shut this agent's member
// down because another alive agent claims its node name.
var ErrNameConflict = errors.New("node name conflict")
