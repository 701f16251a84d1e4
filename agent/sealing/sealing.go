// Package sealing encrypts and authenticates Chorus's own traffic (record
// replication on the gossip port, datacenter summaries on the WAN) with
// the gossip keyring: AES-GCM with the primary key; opening tries every
// installed key, so key rotation works as it does for Serf. A Sealer with
// a nil keyring passes plain text through. It imports nothing of Chorus.
package sealing

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"

	"github.com/hashicorp/memberlist"
)

// AES-GCM's standard nonce and tag sizes: a sealed message is
// NonceSize + len(plain) + TagSize bytes.
const (
	NonceSize = 12
	TagSize   = 16
)

// ErrOpen: no installed key opens the message.
var ErrOpen = errors.New("cannot decrypt: no installed key matches (wrong or missing gossip key?)")

// Sealer seals with Keyring's primary key and opens with any of its keys.
type Sealer struct {
	Keyring *memberlist.Keyring
}

// Seal returns the nonce followed by the encrypted plain, with ad
// authenticated too.
func (s Sealer) Seal(plain, ad []byte) ([]byte, error) {
	if s.Keyring == nil {
		return plain, nil
	}
	gcm, err := newGCM(s.Keyring.GetPrimaryKey())
	if err != nil {
		return nil, err
	}
	out := make([]byte, NonceSize, NonceSize+len(plain)+gcm.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return gcm.Seal(out, out, plain, ad), nil
}

// Open reverses Seal; it fails with ErrOpen.
func (s Sealer) Open(sealed, ad []byte) ([]byte, error) {
	if s.Keyring == nil {
		return sealed, nil
	}
	if len(sealed) < NonceSize {
		return nil, ErrOpen
	}
	for _, k := range s.Keyring.GetKeys() {
		gcm, err := newGCM(k)
		if err != nil {
			continue
		}
		if plain, err := gcm.Open(nil, sealed[:NonceSize], sealed[NonceSize:], ad); err == nil {
			return plain, nil
		}
	}
	return nil, ErrOpen
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithNonceSize(b, NonceSize)
}
