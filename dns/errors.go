package dns

import (
	"errors"

	"github.com/miekg/dns"
)

// Sentinel errors of the query path. ServeDNS maps them to response codes
// in one place, rcodeFor.
var (
	// errFormat marks a malformed query (FORMERR).
	errFormat = errors.New("malformed query")
	// errNotImplemented marks an opcode or query type the server does not
	// implement (NOTIMP).
	errNotImplemented = errors.New("opcode or query type not supported (NOTIMP)")
	// errRefused marks a query the server will not answer: a name outside
	// its domains with no recursors, or a class other than IN (REFUSED).
	errRefused = errors.New("refused")
	// errBadVersion marks an EDNS version other than 0 (BADVERS).
	errBadVersion = errors.New("unsupported EDNS version")
	// errRecursion marks a forwarded query that every recursor failed
	// (SERVFAIL).
	errRecursion = errors.New("every recursor failed")
	// errNotListening is returned by Run before Listen.
	errNotListening = errors.New("dns: Run called before Listen")
)

// rcodeFor maps a query-path error to its response code.
func rcodeFor(err error) int {
	switch {
	case errors.Is(err, errFormat):
		return dns.RcodeFormatError
	case errors.Is(err, errNotImplemented):
		return dns.RcodeNotImplemented
	case errors.Is(err, errRefused):
		return dns.RcodeRefused
	case errors.Is(err, errBadVersion):
		return dns.RcodeBadVers
	case errors.Is(err, errRecursion):
		return dns.RcodeServerFailure
	}
	return dns.RcodeServerFailure
}
