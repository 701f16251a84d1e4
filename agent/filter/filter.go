package filter

import (
	"errors"
	"fmt"
	"reflect"
)

// maxDepth bounds the nesting of parentheses and "not", so that a hostile
// expression cannot make the parser recurse without limit.
const maxDepth = 64

// Filter is a parsed, type-checked filter expression for values of one Go
// type. It is immutable and safe for concurrent use by many goroutines.
type Filter struct {
	root node
	typ  reflect.Type // the answer type, pointers removed
}

// New parses expr and checks it against the values it will be applied to,
// of type t (a struct, or a map with string keys; a pointer to either is
// the same). A selector that names no field of t, an operator that does
// not fit the selected field or a value of the wrong type is an error.
//
// Every error about expr wraps ErrInvalid, and its message names expr and
// says what is wrong and where, fit to be shown to the client. An empty
// expr is an error too: a caller for which an absent filter means "match
// everything" should not call New (a nil *Filter matches everything). A
// nil t is a programming error, reported by an error that does not wrap
// ErrInvalid.
func New(expr string, t reflect.Type) (*Filter, error) {
	if t == nil {
		return nil, errors.New("filter: nil answer type")
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, &invalidError{expr: expr, err: err}
	}
	t = deref(t)
	p := &parser{toks: toks, typ: t}
	root, err := p.parseOr(0)
	if err == nil && p.peek().kind != tokEOF {
		err = fmt.Errorf("unexpected %s", p.peek())
	}
	if err != nil {
		return nil, &invalidError{expr: expr, err: err}
	}
	return &Filter{root: root, typ: t}, nil
}

// Match reports whether v satisfies the expression. v is a value of the
// type given to New or a pointer to one (a nil pointer has every selector
// absent); any other v is a programming error and Match panics. Match only
// reads v. A nil *Filter matches everything.
func (f *Filter) Match(v any) bool {
	if f == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || deref(rv.Type()) != f.typ {
		panic(fmt.Sprintf("filter: Match on a %T, want a %v", v, f.typ))
	}
	return f.root.eval(rv)
}
