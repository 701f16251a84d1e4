package dns

import (
	"encoding/binary"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Wire-format building blocks. Every resource record the server prepares
// is encoded on its own and may only point (name compression) into the
// question, which always starts at offset 12. That makes each record a
// position-independent byte string: answers are assembled per query by
// concatenating prepared records in the order the policy picks, with no
// packing and no compression map on the query path.

const (
	headerLen  = 12
	classINET  = 1
	maxNameLen = 255

	flagQR = 1 << 15
	flagAA = 1 << 10
	flagTC = 1 << 9
	flagRD = 1 << 8
	flagRA = 1 << 7
	flagCD = 1 << 4

	ednsDO = 1 << 15
)

// qname is the wire form of a question name with the offset of every
// label, used to point later names into it.
type qname struct {
	wire []byte // lower-case wire form, terminated by the root label
	offs []int  // offset of each label's length byte in wire
}

// newQname returns the qname of a presentation-format FQDN. ok is false
// for a name that does not encode.
func newQname(name string) (qname, bool) {
	var buf [maxNameLen + 1]byte
	w, ok := appendQuestionName(buf[:0], name)
	if !ok {
		return qname{}, false
	}
	q := qname{wire: append([]byte(nil), w...)}
	for i, c := range q.wire {
		// ASCII only: other bytes (and the length bytes) stay as they are.
		if c >= 'A' && c <= 'Z' {
			q.wire[i] = c + 'a' - 'A'
		}
	}
	for i := 0; i < len(q.wire) && q.wire[i] != 0; i += int(q.wire[i]) + 1 {
		q.offs = append(q.offs, i)
	}
	return q, true
}

// label returns the i-th label of q.
func (q *qname) label(i int) []byte {
	o := q.offs[i]
	return q.wire[o+1 : o+1+int(q.wire[o])]
}

// suffixPtr returns the compression pointer to the suffix of q that starts
// with label i.
func (q *qname) suffixPtr(i int) uint16 {
	return 0xC000 | uint16(headerLen+q.offs[i])
}

// appendQuestionName appends the wire form of a presentation-format FQDN
// as sent by a client. Plain names are encoded directly; names with
// escapes go through miekg/dns.
func appendQuestionName(dst []byte, name string) ([]byte, bool) {
	if name == "." {
		return append(dst, 0), true
	}
	if strings.IndexByte(name, '\\') < 0 {
		start := len(dst)
		l := 0
		for i := 0; i < len(name); i++ {
			if name[i] == '.' {
				n := i - l
				if n == 0 || n > 63 {
					return dst[:start], false
				}
				dst = append(dst, byte(n))
				dst = append(dst, name[l:i]...)
				l = i + 1
			}
		}
		if l != len(name) {
			return dst[:start], false // not fully qualified
		}
		dst = append(dst, 0)
		if len(dst)-start > maxNameLen {
			return dst[:start], false
		}
		return dst, true
	}
	var buf [maxNameLen + 1]byte
	n, err := dns.PackDomainName(name, buf[:], 0, nil, false)
	if err != nil {
		return dst, false
	}
	return append(dst, buf[:n]...), true
}

// appendLabels appends the labels of a plain relative or absolute name
// (no escapes) without the root terminator.
func appendLabels(dst []byte, name string) []byte {
	name = strings.TrimSuffix(name, ".")
	for name != "" {
		i := strings.IndexByte(name, '.')
		l := name
		if i >= 0 {
			l, name = name[:i], name[i+1:]
		} else {
			name = ""
		}
		if len(l) > 63 {
			l = l[:63]
		}
		dst = append(dst, byte(len(l)))
		dst = append(dst, l...)
	}
	return dst
}

// appendName appends name (a plain FQDN, no escapes), compressed against
// the question q when a suffix of it matches. ok is false when the name
// does not encode (a label over 63 bytes or more than 255 bytes in all).
func (q *qname) appendName(dst []byte, name string) ([]byte, bool) {
	var labels [128]string
	n := 0
	total := 1
	rest := strings.TrimSuffix(name, ".")
	for rest != "" {
		if n == len(labels) {
			return dst, false
		}
		i := strings.IndexByte(rest, '.')
		var l string
		if i >= 0 {
			l, rest = rest[:i], rest[i+1:]
		} else {
			l, rest = rest, ""
		}
		if l == "" || len(l) > 63 {
			return dst, false
		}
		total += len(l) + 1
		labels[n] = l
		n++
	}
	if total > maxNameLen {
		return dst, false
	}
	k := 0
	for k < n && k < len(q.offs) && strings.EqualFold(labels[n-1-k], string(q.label(len(q.offs)-1-k))) {
		k++
	}
	for i := 0; i < n-k; i++ {
		dst = append(dst, byte(len(labels[i])))
		dst = append(dst, labels[i]...)
	}
	if k > 0 {
		return binary.BigEndian.AppendUint16(dst, q.suffixPtr(len(q.offs)-k)), true
	}
	return append(dst, 0), true
}

// appendUncompressed appends name (a plain FQDN) in full, as SRV targets
// must be (RFC 2782).
func appendUncompressed(dst []byte, name string) ([]byte, bool) {
	start := len(dst)
	dst = appendLabels(dst, name)
	dst = append(dst, 0)
	if len(dst)-start > maxNameLen {
		return dst[:start], false
	}
	return dst, true
}

// ownerQ is the owner name of records that answer the question itself: a
// pointer to offset 12. It echoes the question's case.
var ownerQ = []byte{0xC0, headerLen}

// rrStart appends the fixed part of a record up to RDLENGTH and returns
// the offset of RDLENGTH, to be patched by rrEnd.
func rrStart(dst []byte, owner []byte, typ uint16, ttl uint32) ([]byte, int) {
	dst = append(dst, owner...)
	dst = binary.BigEndian.AppendUint16(dst, typ)
	dst = binary.BigEndian.AppendUint16(dst, classINET)
	dst = binary.BigEndian.AppendUint32(dst, ttl)
	return append(dst, 0, 0), len(dst)
}

func rrEnd(dst []byte, rdlenAt int) []byte {
	binary.BigEndian.PutUint16(dst[rdlenAt:], uint16(len(dst)-rdlenAt-2))
	return dst
}

// appendAddrRR appends an A or AAAA record for a.
func appendAddrRR(dst []byte, owner []byte, a netip.Addr, ttl uint32) []byte {
	if a.Is4() {
		dst, at := rrStart(dst, owner, dns.TypeA, ttl)
		b := a.As4()
		return rrEnd(append(dst, b[:]...), at)
	}
	dst, at := rrStart(dst, owner, dns.TypeAAAA, ttl)
	b := a.As16()
	return rrEnd(append(dst, b[:]...), at)
}

// appendSRV appends an SRV record with an uncompressed target.
func appendSRV(dst []byte, owner []byte, ttl uint32, prio, weight, port uint16, target string) ([]byte, bool) {
	start := len(dst)
	dst, at := rrStart(dst, owner, dns.TypeSRV, ttl)
	dst = binary.BigEndian.AppendUint16(dst, prio)
	dst = binary.BigEndian.AppendUint16(dst, weight)
	dst = binary.BigEndian.AppendUint16(dst, port)
	dst, ok := appendUncompressed(dst, target)
	if !ok {
		return dst[:start], false
	}
	return rrEnd(dst, at), true
}

// maxTXT bounds the RDATA of one TXT record so that it, and the message
// carrying it, stay within 64 KiB whatever the meta holds.
const maxTXT = 16 << 10

// appendTXT appends a TXT record of the given strings; strings longer
// than 255 bytes are skipped, strings past maxTXT bytes in all are left
// out, and a record always has at least one string.
func appendTXT(dst []byte, owner []byte, ttl uint32, txt []string) []byte {
	dst, at := rrStart(dst, owner, dns.TypeTXT, ttl)
	n := 0
	for _, s := range txt {
		if len(s) > 255 || len(dst)-at-2+1+len(s) > maxTXT {
			continue
		}
		dst = append(dst, byte(len(s)))
		dst = append(dst, s...)
		n++
	}
	if n == 0 {
		dst = append(dst, 0)
	}
	return rrEnd(dst, at)
}

// appendNameRR appends a record whose RDATA is one compressible name
// (PTR, NS, CNAME).
func (q *qname) appendNameRR(dst []byte, owner []byte, typ uint16, ttl uint32, target string) ([]byte, bool) {
	start := len(dst)
	dst, at := rrStart(dst, owner, typ, ttl)
	dst, ok := q.appendName(dst, target)
	if !ok {
		return dst[:start], false
	}
	return rrEnd(dst, at), true
}

// appendHINFO appends the RFC 8482 answer to ANY.
func appendHINFO(dst []byte, owner []byte, ttl uint32) []byte {
	dst, at := rrStart(dst, owner, dns.TypeHINFO, ttl)
	dst = append(dst, 7)
	dst = append(dst, "RFC8482"...)
	dst = append(dst, 0)
	return rrEnd(dst, at)
}

// appendSOA appends the SOA record of a domain whose apex is the question
// suffix pointed to by apex: MNAME is "<node>.node.<domain>" and RNAME
// "hostmaster.<domain>", both compressed into the question.
func appendSOA(dst []byte, owner []byte, apex uint16, rt *runtime, serial uint32) []byte {
	ttl := rt.cfg.SOA.MinTTL
	dst, at := rrStart(dst, owner, dns.TypeSOA, ttl)
	dst = append(dst, rt.nsLabels...)
	dst = binary.BigEndian.AppendUint16(dst, apex)
	dst = append(dst, 10)
	dst = append(dst, "hostmaster"...)
	dst = binary.BigEndian.AppendUint16(dst, apex)
	dst = binary.BigEndian.AppendUint32(dst, serial)
	dst = binary.BigEndian.AppendUint32(dst, rt.cfg.SOA.Refresh)
	dst = binary.BigEndian.AppendUint32(dst, rt.cfg.SOA.Retry)
	dst = binary.BigEndian.AppendUint32(dst, rt.cfg.SOA.Expire)
	dst = binary.BigEndian.AppendUint32(dst, rt.cfg.SOA.MinTTL)
	return rrEnd(dst, at)
}

// appendNS appends the NS record naming the answering agent.
func appendNS(dst []byte, owner []byte, apex uint16, rt *runtime) []byte {
	dst, at := rrStart(dst, owner, dns.TypeNS, rt.nodeTTL)
	dst = append(dst, rt.nsLabels...)
	dst = binary.BigEndian.AppendUint16(dst, apex)
	return rrEnd(dst, at)
}

// nsOwner returns the owner name of the NS glue: "<node>.node" followed by
// a pointer to the apex.
func nsOwner(rt *runtime, apex uint16) []byte {
	b := append([]byte(nil), rt.nsLabels...)
	return binary.BigEndian.AppendUint16(b, apex)
}

// edns is what the server needs to know about a query's OPT record.
type edns struct {
	present bool
	size    int    // advertised payload size, at least 512
	version uint8  // EDNS version
	do      bool   // DNSSEC OK
	ecs     []byte // raw ECS option data (family, prefixes, address), nil if none
	bad     bool   // malformed OPT (more than one, or a bad ECS)
}

// optLen is the size of the OPT record the reply will carry.
func (e *edns) optLen() int {
	if !e.present {
		return 0
	}
	n := 11
	if e.ecs != nil {
		n += 4 + len(e.ecs)
	}
	return n
}

// appendOPT appends the reply's OPT record. scope is the ECS scope prefix
// to return when the query carried ECS.
func appendOPT(dst []byte, e *edns, size int, extRcode uint8, scope uint8) []byte {
	dst = append(dst, 0)
	dst = binary.BigEndian.AppendUint16(dst, dns.TypeOPT)
	dst = binary.BigEndian.AppendUint16(dst, uint16(size))
	ttl := uint32(extRcode) << 24
	if e.do {
		ttl |= ednsDO
	}
	dst = binary.BigEndian.AppendUint32(dst, ttl)
	if e.ecs == nil {
		return append(dst, 0, 0)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(4+len(e.ecs)))
	dst = binary.BigEndian.AppendUint16(dst, dns.EDNS0SUBNET)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(e.ecs)))
	dst = append(dst, e.ecs[:3]...)
	dst = append(dst, scope)
	return append(dst, e.ecs[4:]...)
}

// parseEDNS extracts the OPT record of r.
func parseEDNS(r *dns.Msg) edns {
	var e edns
	for _, rr := range r.Extra {
		opt, ok := rr.(*dns.OPT)
		if !ok {
			continue
		}
		if e.present || opt.Hdr.Name != "." {
			e.bad = true
			return e
		}
		e.present = true
		e.size = int(opt.UDPSize())
		if e.size < dns.MinMsgSize {
			e.size = dns.MinMsgSize
		}
		e.version = opt.Version()
		e.do = opt.Do()
		for _, o := range opt.Option {
			s, ok := o.(*dns.EDNS0_SUBNET)
			if !ok {
				continue
			}
			if e.ecs != nil {
				e.bad = true
				return e
			}
			e.ecs, e.bad = packECS(s)
			if e.bad {
				return e
			}
		}
	}
	return e
}

// packECS returns the option data of an ECS option with the scope zeroed
// and the address cut to the source prefix (RFC 7871 §6). bad reports an
// option to answer with FORMERR (RFC 7871 §7.1.2): an unknown family, a
// prefix longer than the address, or address bits set beyond the prefix.
func packECS(s *dns.EDNS0_SUBNET) ([]byte, bool) {
	var addr []byte
	switch s.Family {
	case 0:
		if s.SourceNetmask != 0 {
			return nil, true
		}
	case 1:
		addr = s.Address.To4()
	case 2:
		addr = s.Address.To16()
	default:
		return nil, true
	}
	if s.Family != 0 && addr == nil {
		return nil, true
	}
	if int(s.SourceNetmask) > 8*len(addr) {
		return nil, true
	}
	n := (int(s.SourceNetmask) + 7) / 8
	for _, c := range addr[n:] {
		if c != 0 {
			return nil, true // bits beyond the prefix must be zero
		}
	}
	b := make([]byte, 4, 4+n)
	binary.BigEndian.PutUint16(b, s.Family)
	b[2] = s.SourceNetmask
	b = append(b, addr[:n]...)
	if rem := s.SourceNetmask % 8; rem != 0 && n > 0 {
		if b[len(b)-1]&(0xFF>>rem) != 0 {
			return nil, true // bits beyond the prefix must be zero
		}
	}
	return b, false
}

// writeHeader writes the 12-byte header.
func writeHeader(b []byte, id uint16, flags uint16, qd, an, ns, ar int) {
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint16(b[4:], uint16(qd))
	binary.BigEndian.PutUint16(b[6:], uint16(an))
	binary.BigEndian.PutUint16(b[8:], uint16(ns))
	binary.BigEndian.PutUint16(b[10:], uint16(ar))
}
