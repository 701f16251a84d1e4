package filter

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

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

// token is one lexical element of an expression.
type token struct {
	kind tokKind
	text string // the identifier, the number, or the string unquoted
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

// lex splits s into tokens, ending with a tokEOF. Identifiers start with a
// letter and go on with letters, digits, '_', '/' and '-'; numbers are
// decimal, optionally negative, with an optional fraction.
func lex(s string) ([]token, error) {
	if !utf8.ValidString(s) {
		return nil, errors.New("not valid UTF-8")
	}
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '(' || c == ')' || c == '[' || c == ']' || c == '.':
			toks = append(toks, token{punct[c], s[i : i+1], i})
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

var punct = map[byte]tokKind{'(': tokLParen, ')': tokRParen, '[': tokLBrack, ']': tokRBrack, '.': tokDot}
