package agent

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// parseKeyringFile reads Serf's keyring file: a JSON array of base64 keys,
// the primary first.
func parseKeyringFile(b []byte) ([][]byte, error) {
	var enc []string
	if err := json.Unmarshal(b, &enc); err != nil {
		return nil, fmt.Errorf("not a JSON list of keys: %v", err)
	}
	keys := make([][]byte, 0, len(enc))
	for i, s := range enc {
		k, err := decodeKey(s)
		if err != nil {
			return nil, fmt.Errorf("key %d: %v", i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// writeKeyringFile writes keys in Serf's keyring file format, atomically.
func writeKeyringFile(path string, keys [][]byte) error {
	enc := make([]string, len(keys))
	for i, k := range keys {
		enc[i] = base64.StdEncoding.EncodeToString(k)
	}
	b, err := json.MarshalIndent(enc, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

// sealer encrypts and authenticates Chorus's own traffic on the gossip
// port (record notices and pulls) with the gossip keyring: AES-GCM with
// the primary key; opening tries every installed key, so rotation works
// as it does for Serf. A nil keyring means plain text.
type sealer struct {
	keyring *memberlist.Keyring
}

var errOpen = errors.New("cannot decrypt: no installed key matches (wrong or missing gossip key?)")

func (s sealer) enabled() bool { return s.keyring != nil }

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
