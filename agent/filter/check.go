package filter

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

type matchOp int

const (
	opEq matchOp = iota
	opNe
	opIn // also "contains"
	opNotIn
	opEmpty
	opNotEmpty
	opMatches
	opNotMatches
)

func (o matchOp) String() string {
	return [...]string{"==", "!=", "in", "not in", "is empty", "is not empty", "matches", "not matches"}[o]
}

// negated reports whether the operator is the negation of a base test;
// matchNode evaluates the base test and flips it at the leaf.
func (o matchOp) negated() bool {
	return o == opNe || o == opNotIn || o == opNotEmpty || o == opNotMatches
}

// step is one resolved selector segment.
type step struct {
	field []int         // struct field index, when the parent is a struct
	key   reflect.Value // map key of the map's key type, when the parent is a map
}

// build type-checks one match against typ and returns its node. val is
// nil for "is empty" and "is not empty".
func build(typ reflect.Type, path []string, op matchOp, val *term) (node, error) {
	name := strings.Join(path, ".")
	steps, leaf, err := resolve(typ, path)
	if err != nil {
		return nil, err
	}
	m := &matchNode{steps: steps, op: op}
	kind := leaf.Kind()
	switch op {
	case opEq, opNe:
		if !isScalar(kind) {
			return nil, fmt.Errorf("selector %s is %s: use in, contains or is empty, not %s", name, aKind(leaf), op)
		}
		m.val, err = coerce(val.raw(), leaf, name)
	case opIn, opNotIn:
		switch kind {
		case reflect.String:
			m.val = reflect.ValueOf(val.raw())
		case reflect.Slice, reflect.Array:
			elem := deref(leaf.Elem())
			if !isScalar(elem.Kind()) {
				return nil, fmt.Errorf("selector %s is a list of %ss: select one of their fields (e.g. %s.<Field>)", name, kindName(elem), name)
			}
			m.val, err = coerce(val.raw(), elem, name)
		case reflect.Map:
			if leaf.Key().Kind() != reflect.String {
				return nil, fmt.Errorf("selector %s is a map without string keys: %s needs a string, list or map with string keys", name, op)
			}
			m.val = reflect.ValueOf(val.raw()).Convert(leaf.Key())
		default:
			return nil, fmt.Errorf("selector %s is %s: %s needs a string, list or map", name, aKind(leaf), op)
		}
	case opEmpty, opNotEmpty:
		switch kind {
		case reflect.String, reflect.Slice, reflect.Array, reflect.Map:
		default:
			return nil, fmt.Errorf("selector %s is %s: is empty needs a string, list or map", name, aKind(leaf))
		}
	case opMatches, opNotMatches:
		if kind != reflect.String {
			return nil, fmt.Errorf("selector %s is %s: matches needs a string", name, aKind(leaf))
		}
		re, rerr := regexp.Compile(val.raw())
		if rerr != nil {
			return nil, fmt.Errorf("matches %q: bad regular expression: %v", val.raw(), rerr)
		}
		m.re = re
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// resolve maps a selector path onto typ: struct fields by JSON name,
// string-keyed map entries, and lists passed through. It returns the steps
// and the type at the end (pointers removed; lists at the end are kept).
func resolve(typ reflect.Type, path []string) ([]step, reflect.Type, error) {
	t := deref(typ)
	steps := make([]step, 0, len(path))
	for i, seg := range path {
		for t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			t = deref(t.Elem())
		}
		switch t.Kind() {
		case reflect.Struct:
			f, ok := findField(t, seg)
			if !ok {
				return nil, nil, fmt.Errorf("unknown selector %s: %s has no field %q (fields: %s)",
					strings.Join(path, "."), describe(path[:i]), seg, strings.Join(fieldNames(t), ", "))
			}
			steps = append(steps, step{field: f.Index})
			t = deref(f.Type)
		case reflect.Map:
			if t.Key().Kind() != reflect.String {
				return nil, nil, fmt.Errorf("unknown selector %s: %s is a map without string keys", strings.Join(path, "."), describe(path[:i]))
			}
			steps = append(steps, step{key: reflect.ValueOf(seg).Convert(t.Key())})
			t = deref(t.Elem())
		default:
			return nil, nil, fmt.Errorf("unknown selector %s: %s is %s and has no field %q", strings.Join(path, "."), describe(path[:i]), aKind(t), seg)
		}
		if t.Kind() == reflect.Interface {
			return nil, nil, fmt.Errorf("selector %s cannot be filtered on", strings.Join(path, "."))
		}
	}
	return steps, t, nil
}

func describe(prefix []string) string {
	if len(prefix) == 0 {
		return "the result"
	}
	return strings.Join(prefix, ".")
}

// fieldName is the name a filter selects a struct field by: its JSON name,
// or "" when the field cannot be selected. An embedded struct is not a
// field of its own: its fields are promoted.
func fieldName(f reflect.StructField) string {
	if !f.IsExported() || f.Anonymous || f.Tag.Get("filter") == "-" {
		return ""
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return ""
	}
	if name, _, _ := strings.Cut(tag, ","); name != "" {
		return name
	}
	return f.Name
}

// findField finds the field selected by name among t's fields and those
// promoted from embedded structs (as encoding/json flattens them): an
// exact match first, then one in any case.
func findField(t reflect.Type, name string) (reflect.StructField, bool) {
	var fold reflect.StructField
	found := false
	for _, f := range reflect.VisibleFields(t) {
		fn := fieldName(f)
		if fn == "" {
			continue
		}
		if fn == name {
			return f, true
		}
		if !found && strings.EqualFold(fn, name) {
			fold, found = f, true
		}
	}
	return fold, found
}

func fieldNames(t reflect.Type) []string {
	var out []string
	for _, f := range reflect.VisibleFields(t) {
		if fn := fieldName(f); fn != "" {
			out = append(out, fn)
		}
	}
	return out
}

func isScalar(k reflect.Kind) bool {
	switch k {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// kindName names a type's kind in the JSON terms a client sees.
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "list"
	case reflect.Map:
		return "map"
	case reflect.Struct:
		return "object"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	}
	return t.Kind().String()
}

// aKind is kindName with its article.
func aKind(t reflect.Type) string {
	n := kindName(t)
	if strings.ContainsRune("aeiou", rune(n[0])) {
		return "an " + n
	}
	return "a " + n
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// coerce converts a raw filter value to the type of the field it is
// compared with.
func coerce(raw string, t reflect.Type, sel string) (reflect.Value, error) {
	v := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return v, fmt.Errorf("selector %s is a boolean: %q is not true or false", sel, raw)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, t.Bits())
		if err != nil {
			return v, fmt.Errorf("selector %s is an integer: %q is not one", sel, raw)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(raw, 10, t.Bits())
		if err != nil {
			return v, fmt.Errorf("selector %s is an unsigned integer: %q is not one", sel, raw)
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(raw, t.Bits())
		if err != nil {
			return v, fmt.Errorf("selector %s is a number: %q is not one", sel, raw)
		}
		v.SetFloat(f)
	default:
		return v, fmt.Errorf("selector %s cannot be compared with a value", sel)
	}
	return v, nil
}
