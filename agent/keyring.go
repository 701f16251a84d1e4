package agent

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/chorusdns/chorus/agent/local"
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
	return local.WriteFileAtomic(path, b)
}
