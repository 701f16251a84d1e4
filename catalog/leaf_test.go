package catalog

import (
	"crypto/sha256"
	"encoding/json"
	"testing"
)

// TestLeafSumDefinition checks leaves against their definition: SHA-256
// of the kind and the piece's JSON as json.Marshal writes it (taken
// through one round trip when it holds invalid UTF-8), for pieces with
// HTML characters, invalid UTF-8 and the largest buffers, in a row so
// that a reused buffer or digest would show.
func TestLeafSumDefinition(t *testing.T) {
	want := func(kind byte, v any) [32]byte {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var rt any
		switch v.(type) {
		case *Service:
			rt = new(Service)
		case *Check:
			rt = new(Check)
		}
		if err := json.Unmarshal(raw, rt); err != nil {
			t.Fatal(err)
		}
		if raw, err = json.Marshal(rt); err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(append([]byte{kind}, raw...))
	}
	big := make([]byte, 200<<10)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	services := []*Service{
		{ID: "web-1", Name: "web", Tags: []string{"a"}, Port: 80, Weights: DefaultWeights, Meta: map[string]string{"k": "<b>&amp;</b>"}},
		{ID: "bad", Name: "bad", Meta: map[string]string{"x": "ok \xff\xfe"}},
		{ID: "big", Name: "big", Meta: map[string]string{"x": string(big)}},
		{ID: "web-2", Name: "web"},
	}
	for _, s := range services {
		l, n, err := ServiceLeaf(s)
		if err != nil {
			t.Fatal(err)
		}
		if l.Kind != PieceService || l.ID != s.ID || l.Sum != want(PieceService, s) || n <= 0 {
			t.Errorf("service %q: leaf %x (%d bytes) differs from its definition", s.ID, l.Sum, n)
		}
	}
	checks := []*Check{
		{CheckID: "c1", Name: "<script>", Status: HealthPassing, Output: "a & b"},
		{CheckID: "c2", Status: HealthCritical, Output: "\xff"},
		{CheckID: "c3", Status: HealthWarning},
	}
	for _, c := range checks {
		l, _, err := CheckLeaf(c)
		if err != nil {
			t.Fatal(err)
		}
		if l.Kind != PieceCheck || l.ID != c.CheckID || l.Sum != want(PieceCheck, c) {
			t.Errorf("check %q: leaf differs from its definition", c.CheckID)
		}
	}
}
