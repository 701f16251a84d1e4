package dns

import (
	"bytes"
	"testing"
	"unsafe"
)

// TestPackKeepsRecords checks that a finished entry's units read the
// records, counts and ordering inputs of their drafts, each unit's bytes
// within one shared buffer.
func TestPackKeepsRecords(t *testing.T) {
	drafts := []draft{
		{rr: []byte("answer-1"), nrr: 1, glue: []byte("glue-1"), nglue: 1, glueID: 0, extra: []byte("txt-1"), nextra: 1, weight: 2, load: 0.5, node: "a", key: 7},
		{rr: []byte("answer-2"), nrr: 1, glueID: -1, weight: 1, node: "b", key: 9},
		{rr: []byte("answer-3+4"), nrr: 2, extra: []byte("srv+txt"), nextra: 2, glueID: -1},
	}
	e := &entry{drafts: append([]draft(nil), drafts...)}
	e.finish()
	if e.drafts != nil || len(e.units) != len(drafts) {
		t.Fatalf("%d units, drafts left %v", len(e.units), e.drafts != nil)
	}
	for i, d := range drafts {
		u := &e.units[i]
		if !bytes.Equal(u.rr(), d.rr) || !bytes.Equal(u.glue(), d.glue) || !bytes.Equal(u.extra(), d.extra) ||
			u.nrr != d.nrr || u.nglue != d.nglue || u.nextra != d.nextra || u.glueID != d.glueID ||
			u.weight != d.weight || u.load != d.load || u.node != d.node || u.key != d.key {
			t.Errorf("unit %d = %+v, draft %+v", i, u, d)
		}
		if u.size(true) != len(d.rr)+len(d.glue)+len(d.extra) || u.size(false) != len(d.rr)+len(d.extra) {
			t.Errorf("unit %d sizes %d/%d", i, u.size(true), u.size(false))
		}
		if cap(u.b) != len(u.b) {
			t.Errorf("unit %d can grow into its neighbour", i)
		}
	}
	if uintptr(unsafe.Pointer(&e.units[1].b[0])) != uintptr(unsafe.Pointer(&e.units[0].b[0]))+uintptr(len(e.units[0].b)) {
		t.Error("units are not in one buffer")
	}
	if e.finish(); len(e.units) != len(drafts) {
		t.Error("a second finish lost the units")
	}
}
