package filter

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary expressions to New for several answer types
// and evaluates what parses. Nothing may panic; every error wraps
// ErrInvalid; a match gives the same answer on a value and on a pointer;
// and "not (expr)" matches exactly when expr does not.
// Seed corpus: testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`Service.Service == web`,
		`Checks.Status != passing and not (Service.Tags contains v1 or "x" in Node.Meta)`,
		`Service.Meta["a.b"] matches "^x+$"`,
		`ServiceTags is not empty`,
		`((((Service.Port == -1))))`,
		"Service.ID == `raw`",
		`Definition.Header.X-Token contains abc or Tags.role not matches "^n"`,
	} {
		f.Add(s)
	}
	e := sampleEntry()
	cs := sampleCatalogService()
	m := agentMember{Name: "node1", Port: 8301, Tags: map[string]string{"role": "node"}}
	targets := []struct {
		typ reflect.Type
		ptr any
		val any
	}{
		{typeServiceEntry, &e, e},
		{typeCatalogService, &cs, cs},
		{typeHealthCheck, &e.Checks[1], e.Checks[1]},
		{typeAgentMember, &m, m},
	}
	f.Fuzz(func(t *testing.T, expr string) {
		for _, tg := range targets {
			flt, err := New(expr, tg.typ)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("%q: error does not wrap ErrInvalid: %v", expr, err)
				}
				continue
			}
			got := flt.Match(tg.ptr)
			if flt.Match(tg.val) != got {
				t.Fatalf("%q on %v: value and pointer disagree", expr, tg.typ)
			}
			neg, err := New("not ("+expr+")", tg.typ)
			if err != nil {
				if !strings.Contains(err.Error(), "nested more than") {
					t.Fatalf("%q parses but not (%[1]s) does not: %v", expr, err)
				}
				continue
			}
			if neg.Match(tg.ptr) == got {
				t.Fatalf("%q on %v: not (expr) = expr = %v", expr, tg.typ, got)
			}
		}
	})
}
