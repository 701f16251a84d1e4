package catalog

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

func signedTestRecord(t testing.TB, key ed25519.PrivateKey) *NodeRecord {
	t.Helper()
	rec := &NodeRecord{
		Node:    Node{Name: "node1", Address: "10.0.0.1", Datacenter: "dc1", Meta: map[string]string{"rack": "r1"}},
		Version: 1700000000000,
		Services: ListOf([]Service{
			{ID: "web-2", Name: "web", Tags: []string{"b", "a"}, Port: 81, Weights: DefaultWeights, Load: 0.25},
			{ID: "web-1", Name: "web", Port: 80, Meta: map[string]string{"k": "<&>"}, Weights: DefaultWeights},
		}),
		Checks: ListOf([]Check{{CheckID: "c1", Name: "c1", Status: HealthPassing, ServiceID: "web-1", Output: "ok\x00\xff"}}),
		Gossip: "10.0.0.1:8301",
	}
	if err := rec.Sign(key); err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestSignedRecordVerifiesAfterTheWire(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	rec := signedTestRecord(t, key)
	b, err := EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(pub); err != nil {
		t.Fatalf("decoded record does not verify: %v", err)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if err := got.Verify(other); !errors.Is(err, ErrSignature) {
		t.Fatalf("verified against another key: %v", err)
	}
}

// TestSignatureCoversEveryField changes each field of a signed record in
// turn: none may keep the signature valid.
func TestSignatureCoversEveryField(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	for _, tc := range []struct {
		name   string
		change func(r *NodeRecord)
	}{
		{"version", func(r *NodeRecord) { r.Version++ }},
		{"node address", func(r *NodeRecord) { r.Node.Address = "10.0.0.2" }},
		{"node meta", func(r *NodeRecord) { r.Node.Meta = map[string]string{"rack": "r2"} }},
		{"datacenter", func(r *NodeRecord) { r.Node.Datacenter = "dc2" }},
		{"gossip", func(r *NodeRecord) { r.Gossip = "10.0.0.9:8301" }},
		{"service port", func(r *NodeRecord) { r.Services.At(0).Port = 9999 }},
		{"service tags", func(r *NodeRecord) { r.Services.At(1).Tags = []string{"a"} }},
		{"service load", func(r *NodeRecord) { r.Services.At(1).Load = 0.5 }},
		{"service dropped", func(r *NodeRecord) { r.Services = ListOf(r.Services.Slice()[:1]); r.Checks = List[Check]{} }},
		{"check status", func(r *NodeRecord) { r.Checks.At(0).Status = HealthCritical }},
		{"signature flipped", func(r *NodeRecord) { r.Signature[0] ^= 1 }},
		{"unsigned", func(r *NodeRecord) { r.Signature = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := signedTestRecord(t, key)
			rec.Services = ListOf(rec.Services.Slice())
			rec.Checks = ListOf(rec.Checks.Slice())
			rec.Signature = bytes.Clone(rec.Signature)
			tc.change(rec)
			if err := rec.Verify(pub); !errors.Is(err, ErrSignature) {
				t.Fatalf("changed record verifies: %v", err)
			}
		})
	}
}

func TestUnsignedFormatRefused(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	b, err := EncodeRecord(signedTestRecord(t, key))
	if err != nil {
		t.Fatal(err)
	}
	b[0] = 1 // the unsigned format of earlier versions
	if _, err := DecodeRecord(b); !errors.Is(err, ErrRecordCorrupt) {
		t.Fatalf("format 1 decoded: %v", err)
	}
}

// FuzzSignedRecordRoundTrip: what DecodeRecord accepts is
// canonical: encoding it and decoding again yields the same signed bytes
// (so a signature made by the owner verifies at every receiver), and a
// signature over it verifies after the round trip and fails for any other
// key.
func FuzzSignedRecordRoundTrip(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(nil)
	b, err := EncodeRecord(signedTestRecord(f, key))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{recordFormat})
	f.Add([]byte{recordFormat, 0x03, 0x00})
	f.Add([]byte{1, 2, 3})
	fuzzPub, fuzzKey, _ := ed25519.GenerateKey(nil)
	otherPub, _, _ := ed25519.GenerateKey(nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := DecodeRecord(b)
		if err != nil {
			return
		}
		want, err := rec.SignedBytes()
		if err != nil {
			t.Fatal(err)
		}
		enc, err := EncodeRecord(rec)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		again, err := DecodeRecord(enc)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		got, _ := again.SignedBytes()
		if !bytes.Equal(got, want) {
			t.Fatalf("signed bytes change across a round trip:\n%s\n%s", want, got)
		}
		if err := rec.Sign(fuzzKey); err != nil {
			t.Fatal(err)
		}
		enc, err = EncodeRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		again, err = DecodeRecord(enc)
		if err != nil {
			t.Fatal(err)
		}
		if err := again.Verify(fuzzPub); err != nil {
			t.Fatalf("signed record does not verify after the round trip: %v", err)
		}
		if err := again.Verify(otherPub); err == nil {
			t.Fatal("verified against another key")
		}
	})
}

// FuzzSignArbitraryStrings: a record whose free-text fields hold any
// bytes (a check's output may be invalid UTF-8) verifies at the receiver.
func FuzzSignArbitraryStrings(f *testing.F) {
	f.Add("ok", "v", "notes")
	f.Add("ok\xff\xfe", "\xc3", "\u2028<&>")
	f.Add("\\ufffd", "\ufffd", "\x00")
	pub, key, _ := ed25519.GenerateKey(nil)
	f.Fuzz(func(t *testing.T, output, meta, notes string) {
		rec := signedTestRecord(t, key)
		rec.Checks.At(0).Output, rec.Checks.At(0).Notes = output, notes
		rec.Node.Meta = map[string]string{meta: meta}
		if err := rec.Sign(key); err != nil {
			t.Fatal(err)
		}
		b, err := EncodeRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRecord(b)
		if err != nil {
			return // a meta key that validation refuses
		}
		if err := got.Verify(pub); err != nil {
			t.Fatalf("record with output %q, meta %q does not verify: %v", output, meta, err)
		}
	})
}

// TestDecodeRecordLimit: a record whose JSON is over the limit is refused
// with ErrRecordTooLarge however small its encoding (one meta value of
// 1 MiB deflates to about a kilobyte); within it, it decodes as
// DecodeRecord does.
func TestDecodeRecordLimit(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	rec := &NodeRecord{Node: Node{Name: "n1", Address: "10.0.0.1"}, Version: 3,
		Services: ListOf([]Service{{ID: "s", Name: "s", Port: 1, Weights: DefaultWeights, Meta: map[string]string{"m": string(bytes.Repeat([]byte{'a'}, 1<<20))}}})}
	if err := rec.Sign(key); err != nil {
		t.Fatal(err)
	}
	b, err := EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeRecordLimit(b, 64<<10); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("a record of 1 MiB of JSON in %d bytes, limit 64 KiB: %v, want ErrRecordTooLarge", len(b), err)
	}
	got, err := DecodeRecordLimit(b, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("decoded within the limit: %v", err)
	}
}
