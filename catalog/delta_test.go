package catalog

import (
	"bytes"
	"compress/flate"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// deltaTestRecords returns a signed record with n services (each with a
// check) and a signed later version with one service changed, one added,
// one removed (with its check) and one check's status changed.
func deltaTestRecords(t testing.TB, key ed25519.PrivateKey, n int) (base, next *NodeRecord) {
	t.Helper()
	base = &NodeRecord{Node: Node{Name: "node1", Address: "10.0.0.1"}, Version: 1000, Gossip: "10.0.0.1:8301"}
	for i := range n {
		id := fmt.Sprintf("web-%04d", i)
		base.Services = base.Services.Append(Service{ID: id, Name: "web", Port: 8000 + i, Tags: []string{"a"}, Weights: DefaultWeights})
		base.Checks = base.Checks.Append(Check{CheckID: "service:" + id, Name: "c", Status: HealthPassing, ServiceID: id, ServiceName: "web"})
	}
	if err := base.Sign(key); err != nil {
		t.Fatal(err)
	}
	next = &NodeRecord{Node: base.Node, Version: 1001, Gossip: base.Gossip}
	next.Services = ListOf(base.Services.Slice())
	next.Checks = ListOf(base.Checks.Slice())
	next.Services.At(1).Port = 1
	next.Checks.At(2).Status, next.Checks.At(2).Output = HealthCritical, "down \xff"
	next.Services = ListOf(slices.Delete(next.Services.Slice(), 3, 4))
	next.Checks = ListOf(slices.Delete(next.Checks.Slice(), 3, 4))
	next.Services = next.Services.Append(Service{ID: "zz-new", Name: "db", Port: 5432, Weights: DefaultWeights})
	if err := next.Sign(key); err != nil {
		t.Fatal(err)
	}
	return base, next
}

// received returns r as a peer holds it after the wire.
func received(t testing.TB, r *NodeRecord) *NodeRecord {
	t.Helper()
	b, err := EncodeRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestDeltaAppliesAndVerifies(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	base, next := deltaTestRecords(t, key, 300)
	d, err := EncodeDelta(base, next)
	if err != nil {
		t.Fatal(err)
	}
	full, _ := EncodeRecord(next)
	if len(d) >= len(full)/10 {
		t.Fatalf("delta of 4 pieces is %d bytes, the whole record %d", len(d), len(full))
	}
	node, bv, v, err := DeltaHeader(d)
	if err != nil || node != "node1" || bv != base.Version || v != next.Version {
		t.Fatalf("header %q %d %d %v", node, bv, v, err)
	}
	held := received(t, base)
	got, err := ApplyDelta(held, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(pub); err != nil {
		t.Fatalf("applied delta does not verify: %v", err)
	}
	want := received(t, next)
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("applied delta differs from the record:\n%s\n%s", gb, wb)
	}
	// The tree derived incrementally is the tree computed from scratch.
	fresh, _ := computeTree(got)
	if fresh.Root() != got.tree.Root() {
		t.Fatal("derived tree differs from the computed one")
	}
	// The held record is untouched.
	if held.Version != base.Version || held.Services.Len() != 300 {
		t.Fatal("ApplyDelta modified the base")
	}
	other := received(t, next)
	if _, err := ApplyDelta(other, d); !errors.Is(err, ErrDeltaBase) {
		t.Fatalf("delta applied against another version: %v", err)
	}
}

// TestDeltaSharesUnchangedChunks applies a one-service delta to a record
// of 10,000 services: the result shares every chunk of the held record's
// services but the changed one, and all of its checks, so a peer applies
// a change at its cost, not the record's.
func TestDeltaSharesUnchangedChunks(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	base := &NodeRecord{Node: Node{Name: "node1", Address: "10.0.0.1"}, Version: 1000}
	svcs := make([]Service, 10000)
	for i := range svcs {
		svcs[i] = Service{ID: fmt.Sprintf("web-%05d", i), Name: "web", Port: 8000, Weights: DefaultWeights}
	}
	base.Services = ListOf(svcs)
	base.Checks = ListOf([]Check{{CheckID: "mem", Name: "mem", Status: HealthPassing}})
	if err := base.Sign(key); err != nil {
		t.Fatal(err)
	}
	next := *base
	next.Version++
	changed := *base.Services.At(5000)
	changed.Port = 9000
	next.Services = base.Services.Apply(func(s *Service) string { return s.ID }, []Edit[Service]{{ID: changed.ID, Value: changed}})
	next.tree, next.Signature = nil, nil
	if err := next.Sign(key); err != nil {
		t.Fatal(err)
	}
	d, err := EncodeDelta(base, &next)
	if err != nil {
		t.Fatal(err)
	}
	held := received(t, base)
	got, err := ApplyDelta(held, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(pub); err != nil {
		t.Fatal(err)
	}
	if got.Services.At(5000).Port != 9000 || held.Services.At(5000).Port != 8000 {
		t.Fatal("the delta's change is not in the result, or is in the held record")
	}
	shared := 0
	for k := range got.Services.numChunks() {
		if &got.Services.chunk(k)[0] == &held.Services.chunk(k)[0] {
			shared++
		}
	}
	if n := held.Services.numChunks(); shared != n-1 {
		t.Fatalf("%d of %d service chunks shared with the held record, want all but one", shared, n)
	}
	if &got.Checks.chunk(0)[0] != &held.Checks.chunk(0)[0] {
		t.Fatal("the unchanged checks were copied")
	}
}

// TestDeltaForgedPieceRefused changes a piece inside a delta signed by the
// owner: the result must not verify.
func TestDeltaForgedPieceRefused(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	base, next := deltaTestRecords(t, key, 20)
	d, err := EncodeDelta(base, next)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(b *deltaBody)
	}{
		{"service port", func(b *deltaBody) { b.Services[0].Port = 666 }},
		{"check status", func(b *deltaBody) { b.Checks[0].Status = HealthPassing }},
		{"removal dropped", func(b *deltaBody) { b.DelServices = nil; b.DelChecks = nil }},
		{"extra removal", func(b *deltaBody) {
			b.DelServices = append(b.DelServices, "web-0010")
			b.DelChecks = append(b.DelChecks, "service:web-0010")
		}},
		{"extra service", func(b *deltaBody) {
			b.Services = append(b.Services, Service{ID: "zzz", Name: "evil", Port: 1, Weights: DefaultWeights})
		}},
		{"gossip", func(b *deltaBody) { b.Head.Gossip = "10.6.6.6:8301" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forged := reencodeDelta(t, d, tc.change)
			got, err := ApplyDelta(received(t, base), forged)
			if err != nil {
				return // refused outright is fine too
			}
			if err := got.Verify(pub); !errors.Is(err, ErrSignature) {
				t.Fatalf("forged delta verifies: %v", err)
			}
		})
	}
}

func reencodeDelta(t *testing.T, d []byte, change func(b *deltaBody)) []byte {
	t.Helper()
	_, _, _, rest, err := deltaHeader(d)
	if err != nil {
		t.Fatal(err)
	}
	head := d[:len(d)-len(rest)]
	var body deltaBody
	if err := json.NewDecoder(flate.NewReader(bytes.NewReader(rest))).Decode(&body); err != nil {
		t.Fatal(err)
	}
	change(&body)
	raw, _ := json.Marshal(&body)
	var buf bytes.Buffer
	buf.Write(head)
	zw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	zw.Write(raw)
	zw.Close()
	return buf.Bytes()
}

// FuzzApplyDelta: whatever a delta holds, ApplyDelta either refuses it
// or returns a valid record whose attached tree is the tree of its
// pieces, so that Verify checks the owner's signature over exactly what
// is applied.
func FuzzApplyDelta(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(nil)
	base, next := deltaTestRecords(f, key, 12)
	d, err := EncodeDelta(base, next)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(d)
	f.Add([]byte{deltaFormat})
	f.Add([]byte{deltaFormat, 5, 'n', 'o', 'd', 'e', '1', 0xe8, 0x07, 0xe9, 0x07})
	held := received(f, base)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ApplyDelta(held, b)
		if err != nil {
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("applied delta is not a valid record: %v", err)
		}
		fresh, err := computeTree(got)
		if err != nil {
			t.Fatal(err)
		}
		if fresh.Root() != got.tree.Root() {
			t.Fatal("the attached tree is not the tree of the record's pieces")
		}
		if held.Version != base.Version || held.Services.Len() != 12 {
			t.Fatal("ApplyDelta modified the base")
		}
	})
}
