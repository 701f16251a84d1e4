package gossip

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/memberlist"

	"github.com/chorusdns/chorus/agent/local"
)

// keyringPath is where the gossip keyring is kept in the data dir, in
// Serf's keyring file format (Serf rewrites it on every rotation).
func keyringPath(dataDir string) string {
	return filepath.Join(dataDir, "serf", "local.keyring")
}

// LoadKeyring returns the gossip keyring: the persisted one in the data
// dir if present (it holds rotations), else the configured key encrypt
// (base64), written to the keyring file, else nil (gossip in plain text).
// The same keyring seals the replication's and the WAN exchange's
// traffic and must be handed to New.
func LoadKeyring(dataDir, encrypt string) (*memberlist.Keyring, error) {
	path := keyringPath(dataDir)
	if b, err := os.ReadFile(path); err == nil {
		keys, err := parseKeyringFile(b)
		if err != nil {
			return nil, fmt.Errorf("keyring file %s: %w", path, err)
		}
		if len(keys) > 0 {
			return memberlist.NewKeyring(keys, keys[0])
		}
	}
	if encrypt == "" {
		return nil, nil
	}
	k, err := DecodeKey(encrypt)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	kr, err := memberlist.NewKeyring(nil, k)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if err := writeKeyringFile(path, [][]byte{k}); err != nil {
		return nil, fmt.Errorf("keyring file %s: %w", path, err)
	}
	return kr, nil
}

// DecodeKey parses a base64 gossip encryption key of 16, 24 or 32 bytes.
func DecodeKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not valid base64: %v", err)
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("key is %d bytes; it must be 16, 24 or 32 bytes (use 'chorus keygen')", len(k))
}

// parseKeyringFile reads Serf's keyring file: a JSON array of base64 keys,
// the primary first.
func parseKeyringFile(b []byte) ([][]byte, error) {
	var enc []string
	if err := json.Unmarshal(b, &enc); err != nil {
		return nil, fmt.Errorf("not a JSON list of keys: %v", err)
	}
	keys := make([][]byte, 0, len(enc))
	for i, s := range enc {
		k, err := DecodeKey(s)
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
	return local.WriteFileAtomic(path, b)
}
