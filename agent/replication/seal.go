package replication

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"

	"github.com/hashicorp/memberlist"
)

// sealer encrypts and authenticates Chorus's own traffic on the gossip
// port (record notices and pulls) with the gossip keyring: AES-GCM with
// the primary key; opening tries every installed key, so rotation works
// as it does for Serf. A nil keyring means plain text.
type sealer struct {
	keyring *memberlist.Keyring
}

// AES-GCM's standard nonce and tag sizes, which seal uses.
const (
	nonceSize = 12
	tagSize   = 16
)

var errOpen = errors.New("cannot decrypt: no installed key matches (wrong or missing gossip key?)")

// seal returns the encrypted form of plain, with ad authenticated too.
func (s sealer) seal(plain, ad []byte) ([]byte, error) {
	if s.keyring == nil {
		return plain, nil
	}
	gcm, err := newGCM(s.keyring.GetPrimaryKey())
	if err != nil {
		return nil, err
	}
	out := make([]byte, gcm.NonceSize(), gcm.NonceSize()+len(plain)+gcm.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return gcm.Seal(out, out, plain, ad), nil
}

// open reverses seal.
func (s sealer) open(sealed, ad []byte) ([]byte, error) {
	if s.keyring == nil {
		return sealed, nil
	}
	for _, k := range s.keyring.GetKeys() {
		gcm, err := newGCM(k)
		if err != nil {
			continue
		}
		if len(sealed) < gcm.NonceSize() {
			return nil, errOpen
		}
		plain, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], ad)
		if err == nil {
			return plain, nil
		}
	}
	return nil, errOpen
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}
