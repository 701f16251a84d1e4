package local

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// IdentityFile is the agent's record-signing key in its data dir: an
// Ed25519 private key, PKCS #8 in PEM, mode 0600.
const IdentityFile = "node.key"

// LoadIdentity returns the agent's record-signing key from dir, creating
// it on first start. The key is this node's identity to its peers: they
// pin its public key (the "k" tag) to the node name and refuse records
// of the node signed with any other.
func LoadIdentity(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, IdentityFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createIdentity(path); err != nil {
			return nil, fmt.Errorf("create node key %s: %w", path, err)
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	key, err := parseIdentity(b)
	if err != nil {
		return nil, fmt.Errorf("node key %s: %w", path, err)
	}
	return key, nil
}

func parseIdentity(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM PRIVATE KEY")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 key", k)
	}
	return key, nil
}

// createIdentity writes a new key to path (WriteFileOnce), so a
// crash leaves no partial key and two agents racing on one data dir end
// up with the same key.
func createIdentity(path string) error {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return WriteFileOnce(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// PublicKeyTag is the "k" tag value of key: its public key, base64
// without padding (43 characters).
func PublicKeyTag(key ed25519.PrivateKey) string {
	return base64.RawStdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
}

// ParseKeyTag reverses PublicKeyTag; nil if the tag is not a key.
func ParseKeyTag(s string) ed25519.PublicKey {
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil
	}
	return ed25519.PublicKey(b)
}
