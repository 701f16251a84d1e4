package sealing

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/memberlist"
)

// TestSealOpen: a message opens with the key that sealed it (also after
// a new primary key is installed), not with another keyring, not with
// other authenticated data, and not once tampered with; without a
// keyring it is plain text.
func TestSealOpen(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	kr, err := memberlist.NewKeyring([][]byte{k1}, k1)
	if err != nil {
		t.Fatal(err)
	}
	s := Sealer{Keyring: kr}
	sealed, err := s.Seal([]byte("hello"), []byte("ad"))
	if err != nil || len(sealed) != NonceSize+5+TagSize {
		t.Fatalf("seal: %v, %d bytes", err, len(sealed))
	}
	kr.AddKey(k2)
	kr.UseKey(k2)
	if got, err := s.Open(sealed, []byte("ad")); err != nil || string(got) != "hello" {
		t.Fatalf("open after rotation: %q %v", got, err)
	}
	other, _ := memberlist.NewKeyring([][]byte{k2}, k2)
	if _, err := (Sealer{Keyring: other}).Open(sealed, []byte("ad")); !errors.Is(err, ErrOpen) {
		t.Errorf("opened with another keyring: %v", err)
	}
	if _, err := s.Open(sealed, []byte("other")); !errors.Is(err, ErrOpen) {
		t.Errorf("opened with other authenticated data: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := s.Open(sealed, []byte("ad")); !errors.Is(err, ErrOpen) {
		t.Errorf("opened a tampered message: %v", err)
	}
	if _, err := s.Open([]byte{1, 2}, nil); !errors.Is(err, ErrOpen) {
		t.Errorf("opened a short message: %v", err)
	}
	if got, _ := (Sealer{}).Seal([]byte("plain"), nil); string(got) != "plain" {
		t.Errorf("without a keyring: %q", got)
	}
}
