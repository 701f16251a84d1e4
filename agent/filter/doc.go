// Package filter is Chorus's implementation of Consul's filter expression
// language, the ?filter= parameter of the HTTP API's listing endpoints:
//
//	Service.Meta.env == prod and not (Service.Tags contains canary)
//	Checks.Status == critical or "v2" in Service.Tags
//
// It owns the lexer, the parser, the type check of selectors against the
// Go type of an endpoint's answer, and the evaluation of a parsed
// expression against one answer value. It imports only the standard
// library: nothing of Chorus, so the HTTP layer depends on it and never
// the other way round.
//
// # Language
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
// "and" binds tighter than "or". Strings are double-quoted (Go escapes) or
// back-quoted (raw); a bare word or number is a value too. "contains" and
// "in" test a substring of a string, an element of a list or a key of a
// map. "matches" takes an RE2 regular expression. Nesting of parentheses
// and "not" is limited to 64 levels.
//
// # Selectors
//
// A selector names fields of the JSON object an endpoint returns, so each
// endpoint answers to Consul's selector names (ServiceName, ServiceMeta.env,
// Service.Tags, Checks.Status…). A struct field is selected by its JSON
// name (its Go name unless a json tag renames it), matched exactly first
// and then in any case; unexported fields and fields tagged json:"-" or
// filter:"-" cannot be selected, and embedded structs are not flattened.
// A map with string keys is indexed by the next segment (Meta.env or
// Meta["app.version"]). A selector that passes through a list applies to
// any element: Checks.Status == critical holds when some check is
// critical, and Checks.Status != passing when some check is not passing.
// A map key that is absent makes ==, in, contains, matches and
// "is not empty" false and their negations true.
//
// # Differences from go-bexpr
//
// Consul evaluates filters with github.com/hashicorp/go-bexpr. This package
// accepts the same matching expressions, but it checks every selector,
// operator and value against the answer type when the expression is parsed,
// so a filter that names an unknown field or compares a list with == is
// rejected before any data is read, even when the answer is empty. It also
// applies selectors through lists and matches field names in any case,
// which go-bexpr does not, and it does not accept go-bexpr's "any"/"all"
// collection expressions or "is nil".
package filter
