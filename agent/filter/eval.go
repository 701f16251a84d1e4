package filter

import (
	"reflect"
	"regexp"
	"strings"
)

// node is a parsed expression. eval only reads v.
type node interface {
	eval(v reflect.Value) bool
}

type andNode struct{ l, r node }

func (n *andNode) eval(v reflect.Value) bool { return n.l.eval(v) && n.r.eval(v) }

type orNode struct{ l, r node }

func (n *orNode) eval(v reflect.Value) bool { return n.l.eval(v) || n.r.eval(v) }

type notNode struct{ x node }

func (n *notNode) eval(v reflect.Value) bool { return !n.x.eval(v) }

// matchNode is one type-checked match: a selector resolved into steps, an
// operator, and the value (converted to the field's type) or regexp.
type matchNode struct {
	steps []step
	op    matchOp
	val   reflect.Value
	re    *regexp.Regexp
}

func (m *matchNode) eval(v reflect.Value) bool { return m.walk(v, 0) }

// walk follows the selector from step depth; lists apply to any element.
func (m *matchNode) walk(v reflect.Value, depth int) bool {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return m.absent()
		}
		v = v.Elem()
	}
	if depth == len(m.steps) {
		return m.leaf(v)
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if m.walk(v.Index(i), depth) {
				return true
			}
		}
		return false
	case reflect.Struct:
		f, err := v.FieldByIndexErr(m.steps[depth].field)
		if err != nil { // through a nil embedded pointer
			return m.absent()
		}
		return m.walk(f, depth+1)
	case reflect.Map:
		e := v.MapIndex(m.steps[depth].key)
		if !e.IsValid() {
			return m.absent()
		}
		return m.walk(e, depth+1)
	}
	return false
}

// absent is the result for a selector whose value does not exist (a
// missing map key or a nil pointer): it is empty, equal to nothing and
// contains nothing.
func (m *matchNode) absent() bool {
	switch m.op {
	case opNe, opNotIn, opEmpty, opNotMatches:
		return true
	}
	return false
}

func (m *matchNode) leaf(v reflect.Value) bool {
	var r bool
	switch m.op {
	case opEq, opNe:
		r = scalarEqual(m.val, v)
	case opIn, opNotIn:
		switch v.Kind() {
		case reflect.String:
			r = strings.Contains(v.String(), m.val.String())
		case reflect.Slice, reflect.Array:
			for i := 0; i < v.Len() && !r; i++ {
				r = scalarEqual(m.val, reflect.Indirect(v.Index(i)))
			}
		case reflect.Map:
			r = v.MapIndex(m.val).IsValid()
		}
	case opEmpty, opNotEmpty:
		r = v.Len() == 0
	case opMatches, opNotMatches:
		r = m.re.MatchString(v.String())
	}
	if m.op.negated() {
		return !r
	}
	return r
}

func scalarEqual(want, got reflect.Value) bool {
	switch got.Kind() {
	case reflect.String:
		return want.String() == got.String()
	case reflect.Bool:
		return want.Bool() == got.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return want.Int() == got.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return want.Uint() == got.Uint()
	case reflect.Float32, reflect.Float64:
		return want.Float() == got.Float()
	}
	return false
}
