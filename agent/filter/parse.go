package filter

import (
	"fmt"
	"reflect"
	"strings"
)

// parser is a recursive-descent parser over the tokens of one expression.
// Each match it reads is type-checked against typ as soon as it is parsed.
type parser struct {
	toks []token
	i    int
	typ  reflect.Type
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) peekAt(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func isWord(t token, w string) bool { return t.kind == tokIdent && t.text == w }

func (p *parser) parseOr(depth int) (node, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested more than %d levels deep", maxDepth)
	}
	left, err := p.parseAnd(depth)
	if err != nil {
		return nil, err
	}
	for isWord(p.peek(), "or") {
		p.next()
		right, err := p.parseAnd(depth)
		if err != nil {
			return nil, err
		}
		left = &orNode{left, right}
	}
	return left, nil
}

func (p *parser) parseAnd(depth int) (node, error) {
	left, err := p.parseUnary(depth)
	if err != nil {
		return nil, err
	}
	for isWord(p.peek(), "and") {
		p.next()
		right, err := p.parseUnary(depth)
		if err != nil {
			return nil, err
		}
		left = &andNode{left, right}
	}
	return left, nil
}

func (p *parser) parseUnary(depth int) (node, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested more than %d levels deep", maxDepth)
	}
	t := p.peek()
	switch {
	case isWord(t, "not"):
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
			return nil, fmt.Errorf("expected ) to close ( at position %d, got %s", t.pos, c)
		}
		return x, nil
	}
	return p.parseMatch()
}

// term is a selector or a bare value: identifiers joined by dots, with
// optional ["key"] indexes, or a string or number literal.
type term struct {
	path    []string
	literal *token
}

func (p *parser) parseTerm() (term, error) {
	t := p.next()
	switch t.kind {
	case tokString, tokNumber:
		return term{literal: &t}, nil
	case tokIdent:
		if isKeyword(t.text) {
			return term{}, fmt.Errorf("expected a selector or value, got the keyword %s", t)
		}
	default:
		return term{}, fmt.Errorf("expected a selector or value, got %s", t)
	}
	tm := term{path: []string{t.text}}
	for {
		switch p.peek().kind {
		case tokDot:
			p.next()
			id := p.next()
			if id.kind != tokIdent && id.kind != tokNumber {
				return term{}, fmt.Errorf("expected a field name after '.', got %s", id)
			}
			tm.path = append(tm.path, id.text)
		case tokLBrack:
			p.next()
			k := p.next()
			if k.kind != tokString {
				return term{}, fmt.Errorf("expected a quoted key inside [ ], got %s", k)
			}
			if c := p.next(); c.kind != tokRBrack {
				return term{}, fmt.Errorf("expected ] after the key %q, got %s", k.text, c)
			}
			tm.path = append(tm.path, k.text)
		default:
			return tm, nil
		}
	}
}

func isKeyword(s string) bool {
	switch s {
	case "and", "or", "not", "in", "contains", "is", "empty", "matches":
		return true
	}
	return false
}

// raw is the term as a value: the literal's text, or the path joined by
// dots (an unquoted word).
func (t term) raw() string {
	if t.literal != nil {
		return t.literal.text
	}
	return strings.Join(t.path, ".")
}

func (p *parser) parseMatch() (node, error) {
	first, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	// Value [not] in Selector
	if isWord(p.peek(), "in") || (isWord(p.peek(), "not") && isWord(p.peekAt(1), "in")) {
		op := opIn
		if isWord(p.next(), "not") {
			p.next()
			op = opNotIn
		}
		sel, err := p.parseTerm()
		if err != nil {
			return nil, err
		}
		if sel.literal != nil {
			return nil, fmt.Errorf("expected a selector after in, got %s", *sel.literal)
		}
		return build(p.typ, sel.path, op, &first)
	}
	if first.literal != nil {
		return nil, fmt.Errorf("expected in or not in after the value %s", *first.literal)
	}
	t := p.next()
	var op matchOp
	switch {
	case t.kind == tokEq:
		op = opEq
	case t.kind == tokNe:
		op = opNe
	case isWord(t, "contains"):
		op = opIn
	case isWord(t, "matches"):
		op = opMatches
	case isWord(t, "is"):
		op = opEmpty
		if isWord(p.peek(), "not") {
			p.next()
			op = opNotEmpty
		}
		if e := p.next(); !isWord(e, "empty") {
			return nil, fmt.Errorf("expected empty after is, got %s", e)
		}
		return build(p.typ, first.path, op, nil)
	case isWord(t, "not"):
		switch n := p.next(); {
		case isWord(n, "contains"):
			op = opNotIn
		case isWord(n, "matches"):
			op = opNotMatches
		default:
			return nil, fmt.Errorf("expected contains, matches or in after not, got %s", n)
		}
	default:
		return nil, fmt.Errorf("expected an operator (==, !=, contains, in, matches, is empty) after the selector %s, got %s", first.raw(), t)
	}
	v, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	return build(p.typ, first.path, op, &v)
}
