package dns

import (
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
)

// nameKind is what a query name under one of our domains refers to.
type nameKind uint8

const (
	kindNone          nameKind = iota // names nothing: NXDOMAIN
	kindApex                          // the domain itself: SOA, NS
	kindEmpty                         // an empty non-terminal: NODATA for every type
	kindService                       // [tag.]svc.service, _svc._tag[.service]
	kindNode                          // node.node
	kindAddr                          // hex.addr
	kindDNSSDTypes                    // _services._dns-sd._udp
	kindDNSSDBrowse                   // b|db|lb._dns-sd._udp
	kindDNSSDInstance                 // instance._svc._tcp|_udp
)

// parsedName is a query name under one of our domains, parsed.
type parsedName struct {
	kind nameKind
	// domain indexes runtime.domains; apexLabels is how many labels come
	// before the domain.
	domain     int
	apexLabels int
	service    string
	tag        string
	node       string
	instance   string
	proto      string // "tcp" or "udp" in DNS-SD and RFC 2782 names
	// bare marks the RFC 2782 form without the "service" label, which
	// Consul answers for SRV only; DNS-SD uses it for PTR.
	bare bool
	addr netip.Addr
	// dc is another datacenter named in the query (lower case); "" for
	// this agent's own.
	dc string
	// ownDC: the query names this agent's own datacenter. Such a name
	// asks for this datacenter's instances and never fails over.
	ownDC bool
}

// matchDomain finds the longest of domains that qname (lower case, FQDN)
// is equal to or under. It returns the domain's index and the number of
// labels before it; ok is false outside every domain.
func matchDomain(qname string, domains []string) (idx int, rest string, ok bool) {
	idx = -1
	for i, d := range domains {
		if !isSubdomain(qname, d) {
			continue
		}
		if idx < 0 || len(d) > len(domains[idx]) {
			idx = i
		}
	}
	if idx < 0 {
		return 0, "", false
	}
	rest = qname[:len(qname)-len(domains[idx])]
	return idx, strings.TrimSuffix(rest, "."), true
}

// isSubdomain reports whether the FQDN name equals d or lies under it,
// honouring escaped dots in name.
func isSubdomain(name, d string) bool {
	if !strings.HasSuffix(name, d) {
		return false
	}
	if len(name) == len(d) {
		return true
	}
	i := len(name) - len(d) - 1
	if name[i] != '.' {
		return false
	}
	// The dot must not be escaped: count the backslashes before it.
	n := 0
	for j := i - 1; j >= 0 && name[j] == '\\'; j-- {
		n++
	}
	return n%2 == 0
}

// parseName parses qname (lower case, FQDN) against the configured
// domains. inDomain is false for names outside every domain.
func parseName(qname string, rt *runtime) (p parsedName, inDomain bool) {
	idx, rest, ok := matchDomain(qname, rt.domains)
	if !ok {
		return p, false
	}
	p.domain = idx
	if rest == "" {
		p.kind = kindApex
		return p, true
	}
	if strings.IndexByte(rest, '\\') >= 0 {
		// Every name we serve is letters, digits, '-' and '_'.
		p.kind = kindNone
		p.apexLabels = countLabels(rest)
		return p, true
	}
	labels := strings.Split(rest, ".")
	p.apexLabels = len(labels)
	for _, l := range labels {
		if l == "" {
			return p, true // kindNone
		}
	}
	parseLabels(&p, labels, rt)
	return p, true
}

func countLabels(rest string) int {
	n := 1
	for i := 0; i < len(rest); i++ {
		if rest[i] == '\\' {
			i++
			continue
		}
		if rest[i] == '.' {
			n++
		}
	}
	return n
}

// kindLabels are the labels that say what the labels before them name.
func isKindLabel(l string) bool {
	switch l {
	case "service", "node", "addr", "query", "connect", "virtual", "ingress":
		return true
	}
	return false
}

func parseLabels(p *parsedName, l []string, rt *runtime) {
	n := len(l)
	// Datacenter: <x>.<kind>.<dc>.dc or legacy <x>.<kind>.<dc>.
	dc, hasDC := "", false
	switch {
	case isKindLabel(l[n-1]):
	case n >= 3 && l[n-1] == "dc" && isKindLabel(l[n-3]):
		dc, hasDC = l[n-2], true
		l = l[:n-2]
	case n >= 2 && isKindLabel(l[n-2]):
		dc, hasDC = l[n-1], true
		l = l[:n-1]
	case n == 1 && l[0] == rt.dc, n == 2 && l[1] == "dc" && l[0] == rt.dc:
		p.kind = kindEmpty // <dc>.<domain>, <dc>.dc.<domain>
		return
	case n == 1 && l[0] == "dc":
		p.kind = kindEmpty
		return
	}
	p.ownDC = hasDC && dc == rt.dc
	if hasDC && dc != rt.dc {
		// Another datacenter: its services and nodes are answered from
		// its summary (the builder checks that it is known).
		if p.dc = dc; l[len(l)-1] != "service" && l[len(l)-1] != "node" {
			return // kindNone
		}
	}
	n = len(l)
	last := l[n-1]
	switch last {
	case "service":
		r := l[:n-1]
		switch {
		case len(r) == 0:
			p.kind = kindEmpty
		case strings.HasPrefix(r[0], "_"):
			switch {
			case len(r) == 1:
				p.kind = kindEmpty // _svc.service: parent of _svc._tag.service
			case len(r) == 2 && strings.HasPrefix(r[1], "_") && len(r[0]) > 1 && len(r[1]) > 1:
				p.kind = kindService
				p.service = r[0][1:]
				p.tag, p.proto = rfc2782Tag(r[1][1:])
			}
		default:
			p.kind = kindService
			p.service = r[len(r)-1]
			if len(r) > 1 {
				p.tag = strings.Join(r[:len(r)-1], ".")
			}
		}
		return
	case "node":
		if n == 1 {
			p.kind = kindEmpty
			return
		}
		p.kind = kindNode
		p.node = strings.Join(l[:n-1], ".")
		return
	case "addr":
		switch {
		case n == 1:
			p.kind = kindEmpty
		case n == 2:
			if a, ok := parseHexAddr(l[0]); ok {
				p.kind = kindAddr
				p.addr = a
			}
		}
		return
	}
	if hasDC {
		return // query, connect, … are not served
	}
	// Names under the domain without a kind label: RFC 2782 without
	// "service", and DNS-SD.
	switch {
	case n == 1 && (last == "_tcp" || last == "_udp"):
		p.kind = kindEmpty
	case n == 2 && l[0] == "_dns-sd" && last == "_udp" && rt.cfg.DNSSD:
		p.kind = kindEmpty
	case n == 3 && l[1] == "_dns-sd" && last == "_udp" && rt.cfg.DNSSD:
		switch l[0] {
		case "_services":
			p.kind = kindDNSSDTypes
		case "b", "db", "lb":
			p.kind = kindDNSSDBrowse
		}
	case n == 2 && isUnderscored(l[0]) && isUnderscored(last):
		p.kind = kindService
		p.bare = true
		p.service = l[0][1:]
		p.tag, p.proto = rfc2782Tag(last[1:])
	case n == 3 && rt.cfg.DNSSD && isUnderscored(l[1]) && (last == "_tcp" || last == "_udp") && !strings.HasPrefix(l[0], "_"):
		p.kind = kindDNSSDInstance
		p.instance = l[0]
		p.service = l[1][1:]
		p.proto = last[1:]
	}
}

func isUnderscored(l string) bool { return len(l) > 1 && l[0] == '_' }

// rfc2782Tag maps the second label of _svc._x: "_tcp" and "_udp" are
// protocols (no tag filter), anything else is a tag.
func rfc2782Tag(x string) (tag, proto string) {
	if x == "tcp" || x == "udp" {
		return "", x
	}
	return x, ""
}

// parseHexAddr decodes Consul's .addr label: 8 hex digits for IPv4, 32
// for IPv6.
func parseHexAddr(s string) (netip.Addr, bool) {
	var b [16]byte
	switch len(s) {
	case 8:
		if _, err := hex.Decode(b[:4], []byte(s)); err != nil {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4([4]byte(b[:4])), true
	case 32:
		if _, err := hex.Decode(b[:], []byte(s)); err != nil {
			return netip.Addr{}, false
		}
		a := netip.AddrFrom16(b)
		if a.Is4In6() {
			return netip.Addr{}, false // its .addr name is the 8-digit one
		}
		return a, true
	}
	return netip.Addr{}, false
}

// hexAddr is the .addr label of a.
func hexAddr(a netip.Addr) string {
	if a.Is4() {
		b := a.As4()
		return hex.EncodeToString(b[:])
	}
	b := a.As16()
	return hex.EncodeToString(b[:])
}

// parseReverse parses a full in-addr.arpa or ip6.arpa name (lower case,
// FQDN). Partial names are not addresses.
func parseReverse(qname string) (netip.Addr, bool) {
	switch {
	case strings.HasSuffix(qname, ".in-addr.arpa."):
		l := strings.Split(strings.TrimSuffix(qname, ".in-addr.arpa."), ".")
		if len(l) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, s := range l {
			if s == "" || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
				return netip.Addr{}, false
			}
			v, err := strconv.ParseUint(s, 10, 8)
			if err != nil {
				return netip.Addr{}, false
			}
			b[3-i] = byte(v)
		}
		return netip.AddrFrom4(b), true
	case strings.HasSuffix(qname, ".ip6.arpa."):
		s := strings.TrimSuffix(qname, ".ip6.arpa.")
		if len(s) != 63 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i := 0; i < 32; i++ {
			c := s[2*i]
			if i < 31 && s[2*i+1] != '.' {
				return netip.Addr{}, false
			}
			var v byte
			switch {
			case c >= '0' && c <= '9':
				v = c - '0'
			case c >= 'a' && c <= 'f':
				v = c - 'a' + 10
			default:
				return netip.Addr{}, false
			}
			// Nibble i (from the left of the name) is the i-th least
			// significant nibble of the address.
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= v << 4
			} else {
				b[pos/2] |= v
			}
		}
		return netip.AddrFrom16(b).Unmap(), true
	}
	return netip.Addr{}, false
}
