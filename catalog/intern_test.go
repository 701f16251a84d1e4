package catalog

import (
	"reflect"
	"slices"
	"strconv"
	"testing"
	"unsafe"
)

// TestDecodedRecordsShareStrings decodes two records that name the same
// service, tag, meta and check settings and checks that the decoded
// records are equal to what was encoded and hold one copy of each shared
// string.
func TestDecodedRecordsShareStrings(t *testing.T) {
	rec := func(node string) *NodeRecord {
		r := &NodeRecord{
			Node:    Node{Name: node, Address: "10.0.0.1", Datacenter: "dc1", Meta: map[string]string{"rack": "r1"}},
			Version: 1,
			Services: ListOf([]Service{{ID: "web", Name: "web", Tags: []string{"v1"}, Port: 80, Weights: DefaultWeights,
				Meta: map[string]string{"version": "1.2.3"}, TaggedAddresses: map[string]ServiceAddress{"lan": {Address: "10.0.0.9", Port: 80}}}}),
			Checks: ListOf([]Check{{CheckID: "service:web", Name: "web check", Status: HealthPassing, ServiceID: "web", ServiceName: "web", Type: "http", Interval: "10s",
				Output: "HTTP GET http://10.0.0.1/health: 200 OK, a long output that is not interned"}}),
		}
		r.Sort()
		return r
	}
	decode := func(r *NodeRecord) *NodeRecord {
		b, err := EncodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		d, err := DecodeRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if d.tree == nil {
			t.Fatal("no tree")
		}
		d.tree = nil
		if !reflect.DeepEqual(d, r) {
			t.Fatalf("decoded %+v, want %+v", d, r)
		}
		return d
	}
	a, b := decode(rec("n1")), decode(rec("n2"))
	same := func(what, x, y string) {
		t.Helper()
		if unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s: two copies of %q", what, x)
		}
	}
	same("service name", a.Services.At(0).Name, b.Services.At(0).Name)
	same("service ID and a check's service ID", a.Services.At(0).ID, a.Checks.At(0).ServiceID)
	same("tag", a.Services.At(0).Tags[0], b.Services.At(0).Tags[0])
	same("meta value", a.Services.At(0).Meta["version"], b.Services.At(0).Meta["version"])
	same("node meta value", a.Node.Meta["rack"], b.Node.Meta["rack"])
	same("tagged address", a.Services.At(0).TaggedAddresses["lan"].Address, b.Services.At(0).TaggedAddresses["lan"].Address)
	same("status", a.Checks.At(0).Status, b.Checks.At(0).Status)
	same("interval", a.Checks.At(0).Interval, b.Checks.At(0).Interval)
	if unsafe.SliceData(a.Services.At(0).Tags) != unsafe.SliceData(b.Services.At(0).Tags) {
		t.Error("two copies of an equal tag list")
	}
	if reflect.ValueOf(a.Services.At(0).Meta).UnsafePointer() != reflect.ValueOf(b.Services.At(0).Meta).UnsafePointer() {
		t.Error("two copies of an equal meta map")
	}
	if unsafe.StringData(a.Checks.At(0).Output) == unsafe.StringData(b.Checks.At(0).Output) {
		t.Error("a long output was interned")
	}
}

// TestInternerBounded checks that the table starts again when full and
// that a string interned before still reads the same.
func TestInternerBounded(t *testing.T) {
	in := &interner{}
	first := "s-first"
	in.str(&first)
	for i := range internMaxEntries + 10 {
		s := "s" + strconv.Itoa(i)
		in.str(&s)
		if s != "s"+strconv.Itoa(i) {
			t.Fatalf("interned %q as %q", "s"+strconv.Itoa(i), s)
		}
	}
	if len(in.m) > internMaxEntries {
		t.Fatalf("table holds %d strings, bound %d", len(in.m), internMaxEntries)
	}
	if first != "s-first" {
		t.Fatalf("string interned before the reset reads %q", first)
	}
}

// TestInternKeysDistinguish checks that maps and lists that differ never
// share a table key, so never share storage.
func TestInternKeysDistinguish(t *testing.T) {
	maps := []map[string]string{
		{"a": "b"}, {"a": "b", "c": ""}, {"ab": ""}, {"a": "1:b"}, {"a1": ":b"}, {"": "a"}, {"a": ""},
	}
	seen := map[string]int{}
	for i, m := range maps {
		k, ok := mapKey(m)
		if !ok {
			t.Fatalf("map %v not shareable", m)
		}
		if j, dup := seen[k]; dup {
			t.Fatalf("maps %v and %v share key %q", maps[j], m, k)
		}
		seen[k] = i
	}
	in := &interner{}
	lists := [][]string{{"a", "b"}, {"a\x00b"}, {"ab"}, {"a", "b", ""}, {""}}
	var got [][]string
	for _, l := range lists {
		got = append(got, in.strList(slices.Clone(l)))
	}
	for i, l := range lists {
		if !slices.Equal(got[i], l) {
			t.Fatalf("list %q interned as %q", l, got[i])
		}
	}
	again := in.strList([]string{"a", "b"})
	if unsafe.SliceData(again) != unsafe.SliceData(got[0]) {
		t.Error("an equal list was not shared")
	}
}
