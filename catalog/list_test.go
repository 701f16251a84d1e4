package catalog

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

type item struct {
	ID string
	V  int
}

func itemKey(x *item) string { return x.ID }

// checkList fails t unless l holds exactly want, in order, with chunks
// that are non-empty and an index that matches them.
func checkList(t *testing.T, l List[item], want []item) {
	t.Helper()
	if l.Len() != len(want) {
		t.Fatalf("Len %d, want %d", l.Len(), len(want))
	}
	if got := l.Slice(); !slices.Equal(got, want) && len(want) > 0 {
		t.Fatalf("Slice\n got %v\nwant %v", got, want)
	}
	for i, x := range l.All() {
		if *x != want[i] || *l.At(i) != want[i] {
			t.Fatalf("element %d: All %v, At %v, want %v", i, *x, *l.At(i), want[i])
		}
	}
	n := 0
	for k := range l.numChunks() {
		c := l.chunk(k)
		if len(c) == 0 || cap(c) != len(c) {
			t.Fatalf("chunk %d: len %d cap %d", k, len(c), cap(c))
		}
		if l.start(k) != n {
			t.Fatalf("chunk %d starts at %d, want %d", k, l.start(k), n)
		}
		n += len(c)
	}
	if (l.more == nil) != (len(l.ends) == 0) || len(l.more) != len(l.ends) {
		t.Fatalf("%d more chunks, %d ends", len(l.more), len(l.ends))
	}
	if l.numChunks() > 2*(len(want)/listChunk)+2 {
		t.Fatalf("%d chunks for %d elements", l.numChunks(), len(want))
	}
	for _, w := range want {
		i, ok := l.Search(func(x *item) int { return strings.Compare(x.ID, w.ID) })
		if !ok || l.At(i).ID != w.ID {
			t.Fatalf("Search(%q) = %d, %v", w.ID, i, ok)
		}
	}
	if i, ok := l.Search(func(x *item) int { return strings.Compare(x.ID, "~") }); ok || i != len(want) {
		t.Fatalf("Search past the end = %d, %v", i, ok)
	}
}

// applyModel is what Apply must do, on a plain slice.
func applyModel(s []item, edits []Edit[item]) []item {
	out := slices.Clone(s)
	for _, e := range edits {
		i, found := slices.BinarySearchFunc(out, e.ID, func(x item, id string) int { return strings.Compare(x.ID, id) })
		switch {
		case e.Delete && found:
			out = slices.Delete(out, i, i+1)
		case e.Delete:
		case found:
			out[i] = e.Value
		default:
			out = slices.Insert(out, i, e.Value)
		}
	}
	return out
}

// randomEdits returns sorted, unique edits over IDs id-0000…id-(space-1).
func randomEdits(r *rand.Rand, k, space int) []Edit[item] {
	seen := map[string]bool{}
	var edits []Edit[item]
	for range k {
		id := fmt.Sprintf("id-%04d", r.IntN(space))
		if seen[id] {
			continue
		}
		seen[id] = true
		edits = append(edits, Edit[item]{ID: id, Value: item{id, r.IntN(1000)}, Delete: r.IntN(3) == 0})
	}
	slices.SortFunc(edits, func(a, b Edit[item]) int { return strings.Compare(a.ID, b.ID) })
	return edits
}

// TestListApplyMatchesSlice applies random edits, small and large, to a
// List and to a slice, and checks that every version holds what the
// slice does and that the versions before it did not change.
func TestListApplyMatchesSlice(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		space := []int{10, 100, 1000, 3000}[round%4]
		var model []item
		var l List[item]
		var versions []List[item]
		var models [][]item
		for step := range 200 {
			k := 1 + r.IntN(8)
			if step%25 == 0 {
				k = space / 2 // a burst
			}
			edits := randomEdits(r, k, space)
			l = l.Apply(itemKey, edits)
			model = applyModel(model, edits)
			checkList(t, l, model)
			versions, models = append(versions, l), append(models, model)
		}
		for i := range versions {
			checkList(t, versions[i], models[i])
		}
	}
}

// TestListApplyCopiesTheChange shows what a one-element change of a List
// of 10,000 copies: one chunk, and the list of chunks.
func TestListApplyCopiesTheChange(t *testing.T) {
	s := make([]item, 10000)
	for i := range s {
		s[i] = item{fmt.Sprintf("id-%05d", i), i}
	}
	l := ListOf(s)
	next := l.Apply(itemKey, []Edit[item]{{ID: "id-05000", Value: item{"id-05000", -1}}})
	shared := 0
	for k := range next.numChunks() {
		if &next.chunk(k)[0] == &l.chunk(k)[0] {
			shared++
		}
	}
	if shared != l.numChunks()-1 {
		t.Fatalf("%d of %d chunks shared, want all but one", shared, l.numChunks())
	}
	if l.At(5000).V != 5000 || next.At(5000).V != -1 {
		t.Fatalf("old %v new %v", *l.At(5000), *next.At(5000))
	}
	allocs := testing.AllocsPerRun(20, func() {
		l.Apply(itemKey, []Edit[item]{{ID: "id-05000", Value: item{"id-05000", -1}}})
	})
	if allocs > 4 {
		t.Fatalf("%v allocations per one-element Apply", allocs)
	}
	// A short List is one chunk held inline: a change costs the new
	// chunk (and the edits' slice), no array of chunks.
	small := ListOf(s[:10:10])
	if allocs := testing.AllocsPerRun(20, func() {
		small.Apply(itemKey, []Edit[item]{{ID: "id-00005", Value: item{"id-00005", -1}}})
	}); allocs > 2 {
		t.Fatalf("%v allocations per change of a 10-element List", allocs)
	}
}

func TestListViewAppendSortJSON(t *testing.T) {
	s := make([]item, 200)
	for i := range s {
		s[i] = item{fmt.Sprintf("id-%04d", i), i}
	}
	l := ListOf(slices.Clone(s))
	for _, r := range [][2]int{{0, 0}, {0, 10}, {60, 70}, {63, 65}, {0, 200}, {199, 200}} {
		if got := l.View(r[0], r[1]); !slices.Equal(got, s[r[0]:r[1]]) && r[0] != r[1] {
			t.Fatalf("View(%d, %d) = %v", r[0], r[1], got)
		}
	}
	a := l.Append(item{"a", 1}, item{"b", 2})
	if a.Len() != 202 || l.Len() != 200 || a.At(201).ID != "b" {
		t.Fatalf("Append: %d, %d", a.Len(), l.Len())
	}
	sorted := a.SortFunc(func(x, y *item) int { return strings.Compare(x.ID, y.ID) })
	if sorted.At(0).ID != "a" || sorted.At(1).ID != "b" || a.At(0).ID != "id-0000" {
		t.Fatalf("SortFunc: %v %v, left %v", *sorted.At(0), *sorted.At(1), *a.At(0))
	}
	b, err := json.Marshal(struct {
		L List[item] `json:",omitzero"`
		E List[item] `json:",omitzero"`
	}{L: ListOf(slices.Clone(s[:3]))})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"L":[{"ID":"id-0000","V":0},{"ID":"id-0001","V":1},{"ID":"id-0002","V":2}]}` {
		t.Fatalf("JSON %s", b)
	}
	var back struct{ L, E List[item] }
	if err := json.Unmarshal([]byte(`{"L":[{"ID":"x","V":1}],"E":null}`), &back); err != nil {
		t.Fatal(err)
	}
	if back.L.Len() != 1 || back.L.At(0).ID != "x" || back.E.Len() != 0 {
		t.Fatalf("decoded %+v", back)
	}
	if err := json.Unmarshal([]byte(`{"L":{"ID":"x"}}`), &back); err == nil {
		t.Fatal("an object decoded as a List")
	}
}

// FuzzListApply checks Apply against the slice model for edits drawn
// from the fuzzer's bytes.
func FuzzListApply(f *testing.F) {
	f.Add([]byte{1, 2, 3, 200, 201, 5, 5, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		var l List[item]
		var model []item
		for len(b) >= 2 {
			n := int(b[0]%16) + 1
			if n*2 > len(b)-1 {
				n = (len(b) - 1) / 2
			}
			seen := map[string]bool{}
			var edits []Edit[item]
			for i := range n {
				x, op := b[1+2*i], b[2+2*i]
				id := fmt.Sprintf("id-%03d", x)
				if seen[id] {
					continue
				}
				seen[id] = true
				edits = append(edits, Edit[item]{ID: id, Value: item{id, int(op)}, Delete: op%4 == 0})
			}
			b = b[1+2*n:]
			slices.SortFunc(edits, func(a, b Edit[item]) int { return strings.Compare(a.ID, b.ID) })
			l = l.Apply(itemKey, edits)
			model = applyModel(model, edits)
			checkList(t, l, model)
		}
	})
}

// TestRecordJSONMatchesMarshal: the codec's form of a record (its Lists
// as slices) holds what json.Marshal of the record holds, and decodes
// back to the same record.
func TestRecordJSONMatchesMarshal(t *testing.T) {
	rec := &NodeRecord{Node: Node{Name: "n1", Address: "10.0.0.1"}, Version: 7, Gossip: "10.0.0.1:8301"}
	for i := range 150 {
		id := fmt.Sprintf("web-%03d", i)
		rec.Services = rec.Services.Append(Service{ID: id, Name: "web", Port: 80 + i, Weights: DefaultWeights})
		rec.Checks = rec.Checks.Append(Check{CheckID: "service:" + id, Name: "c", Status: HealthPassing, ServiceID: id, ServiceName: "web"})
	}
	a, err := RecordJSON(rec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var ma, mb map[string]any
	if err := json.Unmarshal(a, &ma); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &mb); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ma) != fmt.Sprint(mb) {
		t.Fatalf("RecordJSON and json.Marshal differ:\n%s\n%s", a, b)
	}
	enc, err := EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeRecord(enc)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := RecordJSON(back)
	if string(c) != string(a) {
		t.Fatalf("decoded record encodes differently:\n%s\n%s", c, a)
	}
}
