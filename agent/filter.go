package agent

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file implements the subset of Consul's filter expression language
// (hashicorp/go-bexpr, as Consul 1.x evaluates it) that Chorus's HTTP API
// accepts in ?filter=:
//
//	Expression := Or
//	Or         := And { "or" And }
//	And        := Unary { "and" Unary }
//	Unary      := "not" Unary | "(" Or ")" | Match
//	Match      := Selector ("==" | "!=") Value
//	            | Selector ["not"] ("contains" | "matches") Value
//	            | Selector "is" ["not"] "empty"
//	            | Value ["not"] "in" Selector
//	Selector   := Ident { "." Ident | "[" String "]" }
//	Value      := String | Number | Ident { "." Ident }
//
// Strings are double-quoted (Go escapes) or back-quoted (raw). Selectors
// name the fields of the JSON objects the endpoint returns (ServiceName,
// ServiceMeta.env, Service.Tags, Checks.Status…), so each endpoint has
// Consul's selector names. A selector that passes through a list applies
// to any element (Checks.Status == critical: some check is critical); a
// map key that is absent makes ==, in, matches and "is not empty" false
// and their negations true. Expressions are checked against the type when
// parsed: an unknown selector, an operator that does not fit the field or
// a value of the wrong type is an error that names the problem.

// maxFilterDepth bounds nesting so that a hostile expression cannot
// recurse without limit.
const maxFilterDepth = 64

// filter is a parsed, type-checked filter expression. It is immutable and
// safe for concurrent use.
type filter struct {
	root fnode
	typ  reflect.Type
}

// parseFilter parses expr and checks it against the values it will be
// applied to, of type typ (a struct type). Errors wrap ErrInvalid and say
// what is wrong and where.
func parseFilter(expr string, typ reflect.Type) (*filter, error) {
	toks, err := lexFilter(expr)
	if err != nil {
		return nil, fmt.Errorf("filter %q: %v: %w", expr, err, ErrInvalid)
	}
	p := &filterParser{toks: toks, typ: typ}
	root, err := p.parseOr(0)
	if err == nil && p.peek().kind != tokEOF {
		err = p.errorf("unexpected %s", p.peek())
	}
	if err != nil {
		return nil, fmt.Errorf("filter %q: %v: %w", expr, err, ErrInvalid)
	}
	return &filter{root: root, typ: typ}, nil
}

// match reports whether v (a value or pointer of the filter's type)
// satisfies the expression. A nil filter matches everything.
func (f *filter) match(v any) bool {
	if f == nil {
		return true
	}
	rv := reflect.Indirect(reflect.ValueOf(v))
	return f.root.eval(rv)
}

// --- lexer ---

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokString
	tokNumber
	tokDot
	tokLParen
	tokRParen
	tokLBrack
	tokRBrack
	tokEq
	tokNe
)

type token struct {
	kind tokKind
	text string // identifier, number, or the unquoted string
	pos  int    // byte offset in the expression
}

func (t token) String() string {
	switch t.kind {
	case tokEOF:
		return "end of expression"
	case tokString:
		return fmt.Sprintf("string %q at position %d", t.text, t.pos)
	}
	return fmt.Sprintf("%q at position %d", t.text, t.pos)
}

func isIdentStart(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isIdentPart(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '_' || c == '/' || c == '-'
}

func lexFilter(s string) ([]token, error) {
	if !utf8.ValidString(s) {
		return nil, errors.New("not valid UTF-8")
	}
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '(':
			toks = append(toks, token{tokLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tokRParen, ")", i})
			i++
		case c == '[':
			toks = append(toks, token{tokLBrack, "[", i})
			i++
		case c == ']':
			toks = append(toks, token{tokRBrack, "]", i})
			i++
		case c == '.':
			toks = append(toks, token{tokDot, ".", i})
			i++
		case c == '=' || c == '!':
			if i+1 >= len(s) || s[i+1] != '=' {
				return nil, fmt.Errorf("unexpected %q at position %d (operators are == and !=)", c, i)
			}
			k := tokEq
			if c == '!' {
				k = tokNe
			}
			toks = append(toks, token{k, s[i : i+2], i})
			i += 2
		case c == '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string starting at position %d", i)
			}
			v, err := strconv.Unquote(s[i : j+1])
			if err != nil {
				return nil, fmt.Errorf("bad string at position %d: %v", i, err)
			}
			toks = append(toks, token{tokString, v, i})
			i = j + 1
		case c == '`':
			j := strings.IndexByte(s[i+1:], '`')
			if j < 0 {
				return nil, fmt.Errorf("unterminated string starting at position %d", i)
			}
			toks = append(toks, token{tokString, s[i+1 : i+1+j], i})
			i += j + 2
		case c == '-' || c >= '0' && c <= '9':
			j := i
			if c == '-' {
				j++
			}
			start := j
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			if j == start || (j < len(s) && isIdentPart(s[j])) {
				return nil, fmt.Errorf("invalid number at position %d", i)
			}
			if _, err := strconv.ParseFloat(s[i:j], 64); err != nil {
				return nil, fmt.Errorf("invalid number %q at position %d", s[i:j], i)
			}
			toks = append(toks, token{tokNumber, s[i:j], i})
			i = j
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && isIdentPart(s[j]) {
				j++
			}
			toks = append(toks, token{tokIdent, s[i:j], i})
			i = j
		default:
			r, _ := utf8.DecodeRuneInString(s[i:])
			return nil, fmt.Errorf("unexpected character %q at position %d", r, i)
		}
	}
	return append(toks, token{kind: tokEOF, pos: len(s)}), nil
}

// --- parser ---

type filterParser struct {
	toks []token
	i    int
	typ  reflect.Type
}

func (p *filterParser) peek() token { return p.toks[p.i] }

func (p *filterParser) peekAt(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}

func (p *filterParser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *filterParser) isWord(t token, w string) bool { return t.kind == tokIdent && t.text == w }

func (p *filterParser) errorf(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

func (p *filterParser) parseOr(depth int) (fnode, error) {
	if depth > maxFilterDepth {
		return nil, p.errorf("nested more than %d levels deep", maxFilterDepth)
	}
	left, err := p.parseAnd(depth)
	if err != nil {
		return nil, err
	}
	for p.isWord(p.peek(), "or") {
		p.next()
		right, err := p.parseAnd(depth)
		if err != nil {
			return nil, err
		}
		left = &orNode{left, right}
	}
	return left, nil
}

func (p *filterParser) parseAnd(depth int) (fnode, error) {
	left, err := p.parseUnary(depth)
	if err != nil {
		return nil, err
	}
	for p.isWord(p.peek(), "and") {
		p.next()
		right, err := p.parseUnary(depth)
		if err != nil {
			return nil, err
		}
		left = &andNode{left, right}
	}
	return left, nil
}

func (p *filterParser) parseUnary(depth int) (fnode, error) {
	if depth > maxFilterDepth {
		return nil, p.errorf("nested more than %d levels deep", maxFilterDepth)
	}
	t := p.peek()
	switch {
	case p.isWord(t, "not"):
		p.next()
		x, err := p.parseUnary(depth + 1)
		if err != nil {
			return nil, err
		}
		return &notNode{x}, nil
	case t.kind == tokLParen:
		p.next()
		x, err := p.parseOr(depth + 1)
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tokRParen {
			return nil, p.errorf("expected ) to close ( at position %d, got %s", t.pos, c)
		}
		return x, nil
	}
	return p.parseMatch()
}

// term is a selector or a bare value: identifiers joined by dots, with
// optional ["key"] indexes.
type term struct {
	path    []string
	literal *token // a string or number literal instead of a path
	pos     int
}

func (p *filterParser) parseTerm() (term, error) {
	t := p.next()
	switch t.kind {
	case tokString, tokNumber:
		return term{literal: &t, pos: t.pos}, nil
	case tokIdent:
		if isFilterKeyword(t.text) {
			return term{}, p.errorf("expected a selector or value, got the keyword %s", t)
		}
	default:
		return term{}, p.errorf("expected a selector or value, got %s", t)
	}
	tm := term{path: []string{t.text}, pos: t.pos}
	for {
		switch p.peek().kind {
		case tokDot:
			p.next()
			id := p.next()
			if id.kind != tokIdent && id.kind != tokNumber {
				return term{}, p.errorf("expected a field name after '.', got %s", id)
			}
			tm.path = append(tm.path, id.text)
		case tokLBrack:
			p.next()
			k := p.next()
			if k.kind != tokString {
				return term{}, p.errorf("expected a quoted key inside [ ], got %s", k)
			}
			if c := p.next(); c.kind != tokRBrack {
				return term{}, p.errorf("expected ] after the key %q, got %s", k.text, c)
			}
			tm.path = append(tm.path, k.text)
		default:
			return tm, nil
		}
	}
}

func isFilterKeyword(s string) bool {
	switch s {
	case "and", "or", "not", "in", "contains", "is", "empty", "matches":
		return true
	}
	return false
}

func (t term) raw() string {
	if t.literal != nil {
		return t.literal.text
	}
	return strings.Join(t.path, ".")
}

func (p *filterParser) parseMatch() (fnode, error) {
	first, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	// Value [not] in Selector
	if p.isWord(p.peek(), "in") || (p.isWord(p.peek(), "not") && p.isWord(p.peekAt(1), "in")) {
		op := opIn
		if p.isWord(p.next(), "not") {
			p.next()
			op = opNotIn
		}
		sel, err := p.parseTerm()
		if err != nil {
			return nil, err
		}
		if sel.literal != nil {
			return nil, p.errorf("expected a selector after in, got %s", *sel.literal)
		}
		return p.build(sel, op, &first)
	}
	if first.literal != nil {
		return nil, p.errorf("expected in or not in after the value %s", *first.literal)
	}
	t := p.next()
	var op matchOp
	switch {
	case t.kind == tokEq:
		op = opEq
	case t.kind == tokNe:
		op = opNe
	case p.isWord(t, "contains"):
		op = opIn
	case p.isWord(t, "matches"):
		op = opMatches
	case p.isWord(t, "is"):
		neg := false
		if p.isWord(p.peek(), "not") {
			p.next()
			neg = true
		}
		if e := p.next(); !p.isWord(e, "empty") {
			return nil, p.errorf("expected empty after is, got %s", e)
		}
		if neg {
			return p.build(first, opNotEmpty, nil)
		}
		return p.build(first, opEmpty, nil)
	case p.isWord(t, "not"):
		switch n := p.next(); {
		case p.isWord(n, "contains"):
			op = opNotIn
		case p.isWord(n, "matches"):
			op = opNotMatches
		default:
			return nil, p.errorf("expected contains, matches or in after not, got %s", n)
		}
	default:
		return nil, p.errorf("expected an operator (==, !=, contains, in, matches, is empty) after the selector %s, got %s", first.raw(), t)
	}
	v, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	return p.build(first, op, &v)
}

// --- type checking ---

type matchOp int

const (
	opEq matchOp = iota
	opNe
	opIn
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
	field []int  // struct field index, when the parent is a struct
	key   string // map key, when the parent is a map
}

// build type-checks a match against the parser's type.
func (p *filterParser) build(sel term, op matchOp, val *term) (fnode, error) {
	name := sel.raw()
	steps, leaf, err := resolveSelector(p.typ, sel.path)
	if err != nil {
		return nil, err
	}
	m := &matchNode{sel: name, steps: steps, op: op}
	kind := leaf.Kind()
	switch op {
	case opEq, opNe:
		if !isScalar(kind) {
			return nil, p.errorf("selector %s is a %s: use in, contains or is empty, not %s", name, kindName(leaf), op)
		}
		m.val, err = coerce(val.raw(), leaf, name)
	case opIn, opNotIn:
		switch kind {
		case reflect.String:
			m.val = reflect.ValueOf(val.raw())
		case reflect.Slice, reflect.Array:
			elem := deref(leaf.Elem())
			if !isScalar(elem.Kind()) {
				return nil, p.errorf("selector %s is a list of objects: select one of their fields (e.g. %s.<Field>)", name, name)
			}
			m.val, err = coerce(val.raw(), elem, name)
		case reflect.Map:
			m.val = reflect.ValueOf(val.raw()).Convert(leaf.Key())
		default:
			return nil, p.errorf("selector %s is a %s: %s needs a string, list or map", name, kindName(leaf), op)
		}
	case opEmpty, opNotEmpty:
		if kind != reflect.String && kind != reflect.Slice && kind != reflect.Array && kind != reflect.Map {
			return nil, p.errorf("selector %s is a %s: is empty needs a string, list or map", name, kindName(leaf))
		}
	case opMatches, opNotMatches:
		if kind != reflect.String {
			return nil, p.errorf("selector %s is a %s: matches needs a string", name, kindName(leaf))
		}
		re, rerr := regexp.Compile(val.raw())
		if rerr != nil {
			return nil, p.errorf("matches %q: bad regular expression: %v", val.raw(), rerr)
		}
		m.re = re
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

func isScalar(k reflect.Kind) bool {
	switch k {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "list"
	case reflect.Map:
		return "map"
	case reflect.Struct:
		return "object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "number"
	}
	return t.Kind().String()
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

// resolveSelector maps a selector path onto typ: struct fields by name
// (JSON-visible fields only; exact case first, then any case), map keys,
// and lists passed through transparently. It returns the steps and the
// type at the end.
func resolveSelector(typ reflect.Type, path []string) ([]step, reflect.Type, error) {
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
				return nil, nil, fmt.Errorf("unknown selector %s: %s has no field %q (fields: %s)", strings.Join(path, "."), describe(path[:i]), seg, strings.Join(fieldNames(t), ", "))
			}
			steps = append(steps, step{field: f.Index})
			t = deref(f.Type)
		case reflect.Map:
			if t.Key().Kind() != reflect.String {
				return nil, nil, fmt.Errorf("unknown selector %s", strings.Join(path, "."))
			}
			steps = append(steps, step{key: seg})
			t = deref(t.Elem())
		default:
			return nil, nil, fmt.Errorf("unknown selector %s: %s is a %s and has no field %q", strings.Join(path, "."), strings.Join(path[:i], "."), kindName(t), seg)
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

func findField(t reflect.Type, name string) (reflect.StructField, bool) {
	var fold reflect.StructField
	found := false
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() || f.Tag.Get("json") == "-" || f.Tag.Get("filter") == "-" {
			continue
		}
		if f.Name == name {
			return f, true
		}
		if !found && strings.EqualFold(f.Name, name) {
			fold, found = f, true
		}
	}
	return fold, found
}

func fieldNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.IsExported() && f.Tag.Get("json") != "-" && f.Tag.Get("filter") != "-" {
			out = append(out, f.Name)
		}
	}
	return out
}

// --- evaluation ---

type fnode interface {
	eval(v reflect.Value) bool
}

type andNode struct{ l, r fnode }

func (n *andNode) eval(v reflect.Value) bool { return n.l.eval(v) && n.r.eval(v) }

type orNode struct{ l, r fnode }

func (n *orNode) eval(v reflect.Value) bool { return n.l.eval(v) || n.r.eval(v) }

type notNode struct{ x fnode }

func (n *notNode) eval(v reflect.Value) bool { return !n.x.eval(v) }

type matchNode struct {
	sel   string
	steps []step
	op    matchOp
	val   reflect.Value
	re    *regexp.Regexp
}

func (m *matchNode) eval(v reflect.Value) bool { return m.walk(v, 0) }

// walk follows the selector from depth; lists apply to any element.
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
		return m.walk(v.FieldByIndex(m.steps[depth].field), depth+1)
	case reflect.Map:
		e := v.MapIndex(reflect.ValueOf(m.steps[depth].key))
		if !e.IsValid() {
			return m.absent()
		}
		return m.walk(e, depth+1)
	}
	return false
}

// absent is the result for a selector whose value does not exist (a
// missing map key): it is empty, equal to nothing and contains nothing.
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
