package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIdentity: the key is created once (mode 0600), loaded the same on
// every later start, its tag round-trips, and a damaged key file is an
// error naming the file, not a new identity.
func TestIdentity(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, IdentityFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, fi.Mode())
	}
	k2, err := LoadIdentity(dir)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("second load: %v, same key %v", err, k1.Equal(k2))
	}
	tag := PublicKeyTag(k1)
	if pub := ParseKeyTag(tag); pub == nil || !pub.Equal(k1.Public()) {
		t.Fatalf("tag %q does not round-trip", tag)
	}
	for _, bad := range []string{"", "!!", tag[:20]} {
		if ParseKeyTag(bad) != nil {
			t.Fatalf("ParseKeyTag(%q) is a key", bad)
		}
	}
	os.WriteFile(filepath.Join(dir, IdentityFile), []byte("not a key"), 0o600)
	if _, err := LoadIdentity(dir); err == nil || !strings.Contains(err.Error(), IdentityFile) {
		t.Fatalf("damaged key file: %v, want an error naming it", err)
	}
}
