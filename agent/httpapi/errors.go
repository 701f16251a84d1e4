package httpapi

import "errors"

// ErrNoEncryption is returned by keyring operations when gossip
// encryption is off.
var ErrNoEncryption = errors.New("gossip encryption is not enabled on this agent (start it with --encrypt)")
