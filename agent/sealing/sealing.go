package sealing

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"

	"github.com/hashicorp/memberlist"
)

// AES-GCM's standard nonce and tag sizes: a sealed message is
// NonceSize + len(plain) + TagSize bytes.
const (
	NonceSize = 12
	TagSize   = 16
)

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
