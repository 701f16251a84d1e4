package dns

import (
	"cmp"
	"hash/fnv"
	"maps"
	"math"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chorusdns/chorus/catalog"
	"github.com/miekg/dns"
)

// draft is a unit while its entry is built: one answer record with the
// additional records that travel with it. Truncation keeps or drops a
// unit as a whole, so the additional section always matches the answers
// that were kept.
type draft struct {
	rr  []byte // answer record(s)
	nrr uint16
	// glue is the address of the unit's target in the additional section;
	// units with the same glueID share it and it is written once.
	glue   []byte
	nglue  uint16
	glueID int32 // -1: no glue
	// extra holds additional records of this unit alone (TXT meta, the
	// SRV and TXT of a DNS-SD instance).
	extra  []byte
	nextra uint16
	// Ordering inputs.
	weight float64
	load   float64
	node   string
	key    uint64
}

// unit is a draft as a finished entry keeps it: its records in wire form
// (answer records, then glue, then extra records) are a slice of one
// buffer that holds every unit of the entry.
type unit struct {
	b                  []byte
	rrEnd, glueEnd     uint32 // b[:rrEnd] answer, b[rrEnd:glueEnd] glue, b[glueEnd:] extra
	nrr, nglue, nextra uint16
	glueID             int32 // -1: no glue
	// Ordering inputs.
	weight float64
	load   float64
	node   string
	key    uint64
}

func (u *unit) rr() []byte    { return u.b[:u.rrEnd] }
func (u *unit) glue() []byte  { return u.b[u.rrEnd:u.glueEnd] }
func (u *unit) extra() []byte { return u.b[u.glueEnd:] }

func (u *unit) size(withGlue bool) int {
	n := len(u.b)
	if !withGlue {
		n -= int(u.glueEnd - u.rrEnd)
	}
	return n
}

// depKind names what a cached entry was derived from, so that an entry
// can outlive the snapshot it was built on while that input is unchanged.
type depKind uint8

const (
	depNone    depKind = iota // rebuilt for every snapshot
	depService                // one service's instances (ServiceEntry.Index)
	depNode                   // one node (NodeEntry.Index)
)

// entry is a prepared answer for one (name, type class): the records
// already filtered by health, datacenter, tag, zone and tier, encoded in
// wire format and grouped into units by tier. It is immutable except for
// the round-robin counter.
type entry struct {
	rcode uint8 // RcodeSuccess or RcodeNameError
	soa   bool  // put the SOA in the authority section (negative answers)
	// apex is the compression pointer to the domain in the question.
	apex uint16
	// drafts are the units while the entry is built; finish moves them
	// into units.
	drafts []draft
	units  []unit
	tiers  []int32 // end index in units of each tier, in priority order
	equal  []bool  // per tier: all weights equal
	// cum holds the running sum of the units' weights (random policy on
	// large tiers); byLoad the unit indexes of each tier sorted by load
	// (least-loaded policy).
	cum    []float64
	byLoad []int32
	policy policyKind
	// limitA is set when a_record_limit applies to this answer.
	limitA bool
	nglue  int
	// minUnit is the size of the smallest unit, for bounding how many
	// units the policy must order.
	minUnit int

	rr atomic.Uint32 // round-robin position

	dep      depKind
	depName  string
	depIndex uint64
	// built is the index of the snapshot the entry was built on; validAt
	// the newest snapshot index it is known to be valid for (see
	// validFor).
	built   uint64
	validAt atomic.Uint64
	// failover names the remote datacenter a failover answer came from.
	failover string
}

// ordered reports whether the entry needs per-query ordering.
func (e *entry) ordered() bool {
	return e.policy != policyFixed && len(e.units) > 1
}

// closeTier ends the current tier of units, if it holds any.
func (e *entry) closeTier() {
	if len(e.drafts) > 0 && (len(e.tiers) == 0 || int(e.tiers[len(e.tiers)-1]) != len(e.drafts)) {
		e.tiers = append(e.tiers, int32(len(e.drafts)))
	}
}

// done finishes a service entry whose units were added tier by tier with
// nglue glue records, or answers NODATA when it has no unit.
func (b *builder) done(e *entry, nglue int) *entry {
	e.nglue = nglue
	if len(e.drafts) == 0 {
		return b.nodata()
	}
	return e.finish()
}

func (e *entry) finish() *entry {
	e.pack()
	if len(e.tiers) == 0 || int(e.tiers[len(e.tiers)-1]) != len(e.units) {
		e.tiers = append(e.tiers, int32(len(e.units)))
	}
	e.minUnit = 0
	for i := range e.units {
		if s := e.units[i].size(false); e.minUnit == 0 || s < e.minUnit {
			e.minUnit = s
		}
	}
	e.equal = make([]bool, len(e.tiers))
	lo := 0
	for t, hi := range e.tiers {
		eq := true
		for i := lo + 1; i < int(hi); i++ {
			if e.units[i].weight != e.units[lo].weight {
				eq = false
				break
			}
		}
		e.equal[t] = eq
		lo = int(hi)
	}
	switch e.policy {
	case policyRandom:
		if len(e.units) > 64 {
			e.cum = make([]float64, len(e.units))
			sum := 0.0
			for i := range e.units {
				sum += max(e.units[i].weight, 0)
				e.cum[i] = sum
			}
		}
	case policyLeastLoaded:
		e.byLoad = make([]int32, len(e.units))
		lo := 0
		for _, hi := range e.tiers {
			for i := lo; i < int(hi); i++ {
				e.byLoad[i] = int32(i)
			}
			slices.SortStableFunc(e.byLoad[lo:hi], func(a, b int32) int {
				return cmp.Compare(e.units[a].load, e.units[b].load)
			})
			lo = int(hi)
		}
	}
	e.rr.Store(uint32(randUint64()))
	return e
}

// pack moves the drafted units into units, the records of all of them in
// one buffer: a cache holds an entry per name asked, and one allocation
// per record would cost a size class's rounding and a heap object each.
func (e *entry) pack() {
	if e.drafts == nil {
		return // nothing drafted, or packed already
	}
	n := 0
	for i := range e.drafts {
		d := &e.drafts[i]
		n += len(d.rr) + len(d.glue) + len(d.extra)
	}
	buf := make([]byte, 0, n)
	e.units = make([]unit, len(e.drafts))
	for i := range e.drafts {
		d := &e.drafts[i]
		at := len(buf)
		buf = append(buf, d.rr...)
		rrEnd := len(buf) - at
		buf = append(buf, d.glue...)
		glueEnd := len(buf) - at
		buf = append(buf, d.extra...)
		e.units[i] = unit{
			b: buf[at:len(buf):len(buf)], rrEnd: uint32(rrEnd), glueEnd: uint32(glueEnd),
			nrr: d.nrr, nglue: d.nglue, nextra: d.nextra, glueID: d.glueID,
			weight: d.weight, load: d.load, node: d.node, key: d.key,
		}
	}
	e.drafts = nil
}

// tierOf returns the tier of unit i.
func (e *entry) tierOf(i int) int {
	for t, hi := range e.tiers {
		if i < int(hi) {
			return t
		}
	}
	return len(e.tiers) - 1
}

func negative(rcode uint8, apex uint16) *entry {
	return (&entry{rcode: rcode, soa: true, apex: apex, policy: policyFixed}).finish()
}

// policyFixed keeps the prepared order; it is internal, for answers that
// are not load-balanced.
const policyFixed policyKind = 255

// qclass is the cache's class of a query type: the types answered with
// data get their own class, every other type shares "other" (NODATA).
const (
	qcOther byte = iota
	qcA
	qcAAAA
	qcSRV
	qcTXT
	qcPTR
	qcNS
	qcSOA
	qcANY
)

func typeClass(t uint16) byte {
	switch t {
	case dns.TypeA:
		return qcA
	case dns.TypeAAAA:
		return qcAAAA
	case dns.TypeSRV:
		return qcSRV
	case dns.TypeTXT:
		return qcTXT
	case dns.TypePTR:
		return qcPTR
	case dns.TypeNS:
		return qcNS
	case dns.TypeSOA:
		return qcSOA
	case dns.TypeANY:
		return qcANY
	}
	return qcOther
}

// builder builds the entry of one query name on one snapshot.
type builder struct {
	rt     *runtime
	snap   *snapshotView
	q      qname
	qc     byte
	p      parsedName
	domain string // the question's domain, lower case
	apex   uint16
	// cacheable is cleared for answers whose name set is unbounded (an
	// unknown tag, node or address), which must not fill the cache.
	cacheable bool
	// dc is set when the builder answers from a remote datacenter's
	// summary (snap is then that datacenter's catalog); ttlCap, when set,
	// caps service TTLs (failover answers).
	dc     string
	ttlCap uint32
}

// failoverTTL caps the TTL of an answer that failed over to another
// datacenter, so that clients come back soon after a local instance
// recovers.
const failoverTTL = 5

// snapshotView wraps a catalog snapshot with the derived data the builder
// needs more than once per snapshot.
type snapshotView struct {
	*catalog.Snapshot
	serial uint32
}

// build answers a name under one of our domains.
func (b *builder) build() *entry {
	b.domain = b.rt.domains[b.p.domain]
	b.apex = b.q.suffixPtr(b.p.apexLabels)
	switch b.p.kind {
	case kindApex:
		return b.buildApex()
	case kindEmpty:
		return negative(dns.RcodeSuccess, b.apex)
	case kindService:
		return b.buildService()
	case kindNode:
		return b.buildNode()
	case kindAddr:
		return b.buildAddr()
	case kindDNSSDTypes:
		return b.buildDNSSDTypes()
	case kindDNSSDBrowse:
		return b.buildDNSSDBrowse()
	case kindDNSSDInstance:
		return b.buildDNSSDInstance()
	}
	b.cacheable = false
	return negative(dns.RcodeNameError, b.apex)
}

func (b *builder) nodata() *entry { return negative(dns.RcodeSuccess, b.apex) }

func (b *builder) nxdomain() *entry { return negative(dns.RcodeNameError, b.apex) }

func (b *builder) buildApex() *entry {
	e := &entry{apex: b.apex, policy: policyFixed}
	switch b.qc {
	case qcSOA, qcANY:
		e.drafts = []draft{{rr: appendSOA(nil, ownerQ, b.apex, b.rt, b.snap.serial), nrr: 1, glueID: -1}}
	case qcNS:
		u := draft{rr: appendNS(nil, ownerQ, b.apex, b.rt), nrr: 1, glueID: -1}
		if a, ok := b.ownAddress(); ok {
			u.glue = appendAddrRR(nil, nsOwner(b.rt, b.apex), a, b.rt.nodeTTL)
			u.nglue, u.glueID, e.nglue = 1, 0, 1
		}
		e.drafts = []draft{u}
	default:
		return b.nodata()
	}
	return e.finish()
}

// ownAddress is the answering agent's address: the configured advertise
// address, else its node's address in the catalog.
func (b *builder) ownAddress() (netip.Addr, bool) {
	if b.rt.nsAddr.IsValid() {
		return b.rt.nsAddr, true
	}
	if b.rt.cfg.NodeName != "" {
		if n, ok := b.snap.Node(b.rt.cfg.NodeName); ok {
			return parseIP(n.Node.Address)
		}
	}
	return netip.Addr{}, false
}

func parseIP(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// healthy applies the health and datacenter rules.
func (b *builder) healthy(inst *catalog.Instance) bool {
	switch inst.Health {
	case catalog.HealthPassing:
	case catalog.HealthWarning:
		if b.rt.cfg.OnlyPassing {
			return false
		}
	default:
		return false
	}
	dc, want := inst.Node.Node.Datacenter, b.rt.dc
	if b.dc != "" {
		want = b.dc
	}
	return dc == "" || want == "" || strings.EqualFold(dc, want)
}

// priority is an instance's failover tier.
func priority(inst *catalog.Instance) int {
	if v, ok := inst.Service.Meta[MetaPriority]; ok {
		if p, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && p >= 0 && p <= math.MaxUint16 {
			return p
		}
	}
	return 1
}

// selectInstances applies the rules in order: health, datacenter, tag,
// tier, then zone within each tier; it returns the survivors grouped by
// tier, best tier first.
func (b *builder) selectInstances(svc *catalog.ServiceEntry, tag string) [][]*catalog.Instance {
	var all []*catalog.Instance
	for _, inst := range svc.Instances.Values() {
		if !b.healthy(inst) {
			continue
		}
		if tag != "" && !inst.HasTag(tag) {
			continue
		}
		all = append(all, inst)
	}
	if len(all) == 0 {
		return nil
	}
	byTier := map[int][]*catalog.Instance{}
	var prios []int
	for _, inst := range all {
		p := priority(inst)
		if _, ok := byTier[p]; !ok {
			prios = append(prios, p)
		}
		byTier[p] = append(byTier[p], inst)
	}
	sort.Ints(prios)
	tiers := make([][]*catalog.Instance, 0, len(prios))
	for _, p := range prios {
		if t := b.zoneFilter(byTier[p]); len(t) > 0 {
			tiers = append(tiers, t)
		}
	}
	return tiers
}

// zoneFilter keeps the instances of one tier that are in the answering
// agent's zone; when none are, the whole tier stays (zone failover) or,
// with zone_failover off, none. Tiers come first so that a backup is
// answered exactly when every primary, in any zone, is down.
func (b *builder) zoneFilter(tier []*catalog.Instance) []*catalog.Instance {
	if b.rt.zone == "" || b.dc != "" {
		return tier // zones are this datacenter's
	}
	var local []*catalog.Instance
	for _, inst := range tier {
		if strings.EqualFold(inst.Node.Node.Zone, b.rt.zone) {
			local = append(local, inst)
		}
	}
	if len(local) > 0 || !b.rt.cfg.ZoneFailover {
		return local
	}
	return tier
}

// servicePolicy is the service's chorus-policy (the first instance that
// sets a valid one), else the configured policy.
func (b *builder) servicePolicy(svc *catalog.ServiceEntry) policyKind {
	for _, inst := range svc.Instances.Values() {
		if v, ok := inst.Service.Meta[MetaPolicy]; ok {
			if p, ok := parsePolicy(v); ok {
				return p
			}
		}
	}
	return b.rt.policy
}

// serviceTTL is the smallest valid chorus-ttl of the service's instances,
// else the configured TTL (service_ttls, then service_ttl).
func (b *builder) serviceTTL(svc *catalog.ServiceEntry) uint32 {
	best, found := uint32(0), false
	for _, inst := range svc.Instances.Values() {
		v, ok := inst.Service.Meta[MetaTTL]
		if !ok {
			continue
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < 0 || d/time.Second > maxTTL {
			continue
		}
		if t := uint32(d / time.Second); !found || t < best {
			best, found = t, true
		}
	}
	if !found {
		best = b.rt.serviceTTL(strings.ToLower(svc.Name))
	}
	if b.ttlCap > 0 && best > b.ttlCap {
		best = b.ttlCap
	}
	return best
}

// target is where an SRV record of inst points and the address behind it.
type target struct {
	name string
	addr netip.Addr // invalid: no glue and no meta (a host name target)
}

// srvTarget follows Consul: an instance with its own IP address (not its
// node's) points at <hex>.addr.<domain>, a host-name address at that host,
// anything else at <node>.node.<domain>.
func (b *builder) srvTarget(inst *catalog.Instance) target {
	sa := inst.Service.Address
	if sa != "" && sa != inst.Node.Node.Address {
		if a, ok := parseIP(sa); ok {
			return target{name: hexAddr(a) + ".addr." + b.domain, addr: a}
		}
		return target{name: dns.Fqdn(sa)}
	}
	t := target{name: inst.Node.Node.Name + ".node." + b.domain}
	if b.dc != "" {
		t.name = inst.Node.Node.Name + ".node." + b.dc + "." + b.domain
	}
	t.addr, _ = parseIP(inst.Node.Node.Address)
	return t
}

func instanceKey(inst *catalog.Instance) uint64 {
	h := fnv.New64a()
	h.Write([]byte(inst.Node.Node.Name))
	h.Write([]byte{0})
	h.Write([]byte(inst.Service.ID))
	return catalog.Mix64(h.Sum64())
}

// buildService answers a service name: from a remote datacenter's
// summary when the name has one, else from this datacenter, failing over
// to other datacenters (failover) when no local instance is healthy and
// the name does not name this datacenter.
func (b *builder) buildService() *entry {
	if b.p.dc != "" {
		rb, ok := b.remote(b.p.dc)
		if !ok {
			b.cacheable = false
			return b.nxdomain()
		}
		e, _ := rb.serviceAnswer()
		b.cacheable = rb.cacheable
		return remoteEntry(e)
	}
	e, found := b.serviceAnswer()
	if found || b.p.ownDC {
		return e
	}
	rule, ok := b.failoverRule()
	if !ok {
		return e
	}
	for _, r := range rule.Order(b.snap.Snapshot, b.rt.dc) {
		rb := b.remoteOf(r)
		rb.ttlCap = failoverTTL
		fe, found := rb.serviceAnswer()
		if !found {
			continue
		}
		fe = remoteEntry(fe)
		fe.failover = r.Name
		b.cacheable = true
		return fe
	}
	// No datacenter has one now: the answer must be rebuilt when a
	// remote summary changes, not only when the local service does.
	if e.dep == depService {
		e.dep = depNone
	}
	return e
}

// failoverRule is the failover rule of the queried service: the first
// valid chorus-failover meta among its local instances, else the
// agent-wide rule. ok is false when there is none.
func (b *builder) failoverRule() (catalog.Failover, bool) {
	if svc, ok := b.snap.Service(b.p.service); ok {
		for _, inst := range svc.Instances.Values() {
			if v, ok := inst.Service.Meta[catalog.MetaFailover]; ok {
				if f, err := catalog.ParseFailover(v); err == nil && !f.Empty() {
					return f, true
				}
			}
		}
	}
	return b.rt.failover, !b.rt.failover.Empty()
}

// remote returns a builder answering from the summary of datacenter dc.
func (b *builder) remote(dc string) (*builder, bool) {
	r, ok := b.snap.Remote(dc)
	if !ok {
		return nil, false
	}
	return b.remoteOf(r), true
}

func (b *builder) remoteOf(r *catalog.RemoteDatacenter) *builder {
	rb := *b
	rb.snap = &snapshotView{Snapshot: r.Snapshot, serial: b.snap.serial}
	rb.dc = strings.ToLower(r.Name)
	rb.p.dc = ""
	return &rb
}

// remoteEntry marks an entry built from a remote summary as valid for the
// local snapshot it was built on only: every change of a summary makes a
// new local snapshot, and the remote catalog's indexes are not the local
// one's.
func remoteEntry(e *entry) *entry {
	e.dep, e.depName, e.depIndex = depNone, "", 0
	return e
}

// serviceAnswer answers the service name from b.snap; found reports
// whether some instance is healthy (in any tier).
func (b *builder) serviceAnswer() (e *entry, found bool) {
	svc, ok := b.snap.Service(b.p.service)
	if !ok {
		b.cacheable = false
		return b.nxdomain(), false
	}
	if b.p.tag != "" && !hasTag(svc.Tags, b.p.tag) {
		b.cacheable = false
		return b.nxdomain(), false
	}
	tiers := b.selectInstances(svc, b.p.tag)
	if len(tiers) == 0 {
		return b.withDep(b.nxdomain(), svc), false
	}
	return b.serviceEntry(svc, tiers), true
}

// serviceEntry answers the query type from the healthy tiers of svc.
func (b *builder) serviceEntry(svc *catalog.ServiceEntry, tiers [][]*catalog.Instance) *entry {
	var e *entry
	switch {
	case b.qc == qcSRV:
		e = b.srvEntry(svc, tiers)
	case b.qc == qcPTR && b.rt.cfg.DNSSD && b.p.proto != "":
		e = b.dnssdPTREntry(svc, tiers)
	case b.p.bare:
		e = b.nodata()
	case b.qc == qcA || b.qc == qcAAAA || b.qc == qcANY:
		e = b.addrEntry(svc, tiers[0])
	case b.qc == qcTXT:
		e = b.txtEntry(svc, tiers[0])
	default:
		e = b.nodata()
	}
	return b.withDep(e, svc)
}

func (b *builder) withDep(e *entry, svc *catalog.ServiceEntry) *entry {
	e.dep, e.depName, e.depIndex = depService, strings.ToLower(svc.Name), svc.Index
	return e
}

func hasTag(tags []string, tag string) bool {
	for _, t := range tags {
		if strings.EqualFold(t, tag) {
			return true
		}
	}
	return false
}

// addrEntry answers A, AAAA and ANY for the best tier: one record per
// distinct address, weighted by the sum of its instances' weights.
func (b *builder) addrEntry(svc *catalog.ServiceEntry, tier []*catalog.Instance) *entry {
	ttl := b.serviceTTL(svc)
	e := &entry{apex: b.apex, policy: b.servicePolicy(svc), limitA: true, drafts: make([]draft, 0, len(tier))}
	seen := map[netip.Addr]int{}
	for _, inst := range tier {
		a, ok := parseIP(inst.Address())
		if !ok {
			continue // host names are answered in SRV only
		}
		if (b.qc == qcA && !a.Is4()) || (b.qc == qcAAAA && a.Is4()) {
			continue
		}
		w := float64(inst.Weight())
		if i, ok := seen[a]; ok {
			u := &e.drafts[i]
			u.weight += w
			u.load = math.Min(u.load, inst.Service.Load)
			continue
		}
		seen[a] = len(e.drafts)
		ab := a.AsSlice()
		e.drafts = append(e.drafts, draft{
			rr: appendAddrRR(nil, ownerQ, a, ttl), nrr: 1, glueID: -1,
			weight: w, load: inst.Service.Load, node: inst.Node.Node.Name,
			key: catalog.Mix64(fnvBytes(ab)),
		})
	}
	if len(e.drafts) == 0 {
		if b.qc == qcANY {
			e.policy = policyFixed
			e.drafts = []draft{{rr: appendHINFO(nil, ownerQ, ttl), nrr: 1, glueID: -1}}
			return e.finish()
		}
		return b.nodata()
	}
	return e.finish()
}

// txtEntry answers TXT with each instance's service meta (RFC 1464).
func (b *builder) txtEntry(svc *catalog.ServiceEntry, tier []*catalog.Instance) *entry {
	ttl := b.serviceTTL(svc)
	e := &entry{apex: b.apex, policy: b.servicePolicy(svc)}
	seen := map[string]int{}
	for _, inst := range tier {
		if len(inst.Service.Meta) == 0 {
			continue
		}
		rr := appendTXT(nil, ownerQ, ttl, metaTXT(inst.Service.Meta))
		if i, ok := seen[string(rr)]; ok {
			e.drafts[i].weight += float64(inst.Weight())
			continue
		}
		seen[string(rr)] = len(e.drafts)
		e.drafts = append(e.drafts, draft{
			rr: rr, nrr: 1, glueID: -1, weight: float64(inst.Weight()),
			load: inst.Service.Load, node: inst.Node.Node.Name, key: instanceKey(inst),
		})
	}
	if len(e.drafts) == 0 {
		return b.nodata()
	}
	return e.finish()
}

// srvEntry answers SRV with every tier (priority = tier), the targets'
// addresses and the instances' meta in the additional section.
func (b *builder) srvEntry(svc *catalog.ServiceEntry, tiers [][]*catalog.Instance) *entry {
	ttl := b.serviceTTL(svc)
	n := 0
	for _, tier := range tiers {
		n += len(tier)
	}
	e := &entry{apex: b.apex, policy: b.servicePolicy(svc), drafts: make([]draft, 0, n)}
	glue := map[string]int32{}
	for _, tier := range tiers {
		for _, inst := range tier {
			u, ok := b.srvUnit(inst, ownerQ, ttl, glue)
			if !ok {
				continue
			}
			// The meta goes under the target's name, which must be ours: a
			// host name's records would be out of bailiwick.
			if t := b.srvTarget(inst); len(inst.Service.Meta) > 0 && t.addr.IsValid() {
				if owner, ok := b.q.appendName(nil, t.name); ok {
					u.extra = appendTXT(nil, owner, ttl, metaTXT(inst.Service.Meta))
					u.nextra = 1
				}
			}
			e.drafts = append(e.drafts, u)
		}
		e.closeTier()
	}
	return b.done(e, len(glue))
}

// srvUnit builds the SRV record of inst under owner with its glue.
func (b *builder) srvUnit(inst *catalog.Instance, owner []byte, ttl uint32, glue map[string]int32) (draft, bool) {
	t := b.srvTarget(inst)
	rr, ok := appendSRV(nil, owner, ttl, uint16(priority(inst)), uint16(inst.Weight()), uint16(inst.Service.Port), t.name)
	if !ok {
		return draft{}, false
	}
	u := draft{
		rr: rr, nrr: 1, glueID: -1, weight: float64(inst.Weight()),
		load: inst.Service.Load, node: inst.Node.Node.Name, key: instanceKey(inst),
	}
	if t.addr.IsValid() {
		key := strings.ToLower(t.name)
		id, seen := glue[key]
		if !seen {
			id = int32(len(glue))
			glue[key] = id
		}
		if owner, ok := b.q.appendName(nil, t.name); ok {
			u.glue = appendAddrRR(nil, owner, t.addr, b.rt.nodeTTL)
			u.nglue, u.glueID = 1, id
		}
	}
	return u, true
}

// segmentMetaKey is the node meta key every Consul agent's node carries
// (its network segment, empty outside Consul Enterprise). Tools that
// compare a node's meta with Consul's see it in every answer, the node's
// TXT records included.
const segmentMetaKey = "consul-network-segment"

// nodeTXTMeta is the meta a node's TXT records show: its own, plus the
// empty network segment for a node that runs an agent (an external
// node's meta is exactly what was registered, as in Consul).
func nodeTXTMeta(n catalog.Node) map[string]string {
	if n.External {
		return n.Meta
	}
	if _, ok := n.Meta[segmentMetaKey]; ok {
		return n.Meta
	}
	m := make(map[string]string, len(n.Meta)+1)
	maps.Copy(m, n.Meta)
	m[segmentMetaKey] = ""
	return m
}

// metaTXT encodes meta as RFC 1464 strings, sorted by key. Keys starting
// with "rfc1035-" carry their raw value, as in Consul.
func metaTXT(meta map[string]string) []string {
	keys := slices.Sorted(maps.Keys(meta))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if strings.HasPrefix(k, "rfc1035-") {
			out = append(out, meta[k])
			continue
		}
		out = append(out, rfc1464Key(k)+"="+meta[k])
	}
	return out
}

// rfc1464Key escapes '`', '=' and leading or trailing spaces of a key with
// a backquote (RFC 1464 §2).
func rfc1464Key(k string) string {
	if !strings.ContainsAny(k, "`= ") {
		return k
	}
	var sb strings.Builder
	lead := len(k) - len(strings.TrimLeft(k, " "))
	trail := len(strings.TrimRight(k, " "))
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '`' || c == '=':
			sb.WriteByte('`')
		case c == ' ' && (i < lead || i >= trail):
			sb.WriteByte('`')
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

func (b *builder) buildNode() *entry {
	if b.p.dc != "" {
		rb, ok := b.remote(b.p.dc)
		if !ok {
			b.cacheable = false
			return b.nxdomain()
		}
		rb.rt = &runtime{}
		*rb.rt = *b.rt
		rb.rt.cfg.NodeName = "" // the answering agent is not in that datacenter
		e := rb.buildNode()
		b.cacheable = rb.cacheable
		return remoteEntry(e)
	}
	n, ok := b.snap.Node(b.p.node)
	var node catalog.Node
	switch {
	case ok:
		node = n.Node
	case b.rt.cfg.NodeName != "" && strings.EqualFold(b.p.node, b.rt.cfg.NodeName) && b.rt.nsAddr.IsValid():
		// The answering agent before its own record reached the catalog:
		// its NS name must resolve.
		node = catalog.Node{Name: b.rt.cfg.NodeName, Address: b.rt.nsAddr.String()}
	default:
		b.cacheable = false
		return b.nxdomain()
	}
	var e *entry
	ttl := b.rt.nodeTTL
	a, isIP := parseIP(node.Address)
	switch b.qc {
	case qcA, qcAAAA, qcANY:
		if isIP && (b.qc == qcANY || (b.qc == qcA) == a.Is4()) {
			e = &entry{apex: b.apex, policy: policyFixed, limitA: true}
			e.drafts = []draft{{rr: appendAddrRR(nil, ownerQ, a, ttl), nrr: 1, glueID: -1}}
		} else if b.qc == qcANY {
			e = &entry{apex: b.apex, policy: policyFixed}
			e.drafts = []draft{{rr: appendHINFO(nil, ownerQ, ttl), nrr: 1, glueID: -1}}
		}
	case qcTXT:
		if meta := nodeTXTMeta(node); len(meta) > 0 {
			// One record per key, as Consul does, each its own unit so
			// that truncation drops whole records.
			e = &entry{apex: b.apex, policy: policyFixed}
			for _, s := range metaTXT(meta) {
				e.drafts = append(e.drafts, draft{rr: appendTXT(nil, ownerQ, ttl, []string{s}), nrr: 1, glueID: -1})
			}
		}
	}
	if e == nil {
		e = b.nodata()
	} else {
		e.finish()
	}
	if ok {
		e.dep, e.depName, e.depIndex = depNode, strings.ToLower(n.Node.Name), n.Index
	}
	return e
}

func (b *builder) buildAddr() *entry {
	a := b.p.addr
	ip := net.IP(a.AsSlice())
	b.cacheable = len(b.snap.NodesByAddress(ip)) > 0 || b.snap.InstancesByAddress(ip).Len() > 0
	if (b.qc == qcA && a.Is4()) || (b.qc == qcAAAA && !a.Is4()) || b.qc == qcANY {
		e := &entry{apex: b.apex, policy: policyFixed, limitA: true}
		e.drafts = []draft{{rr: appendAddrRR(nil, ownerQ, a, b.rt.nodeTTL), nrr: 1, glueID: -1}}
		return e.finish()
	}
	return b.nodata()
}

// buildDNSSDTypes lists every service with a healthy instance (RFC 6763
// §9) as _<service>._tcp.<domain>.
func (b *builder) buildDNSSDTypes() *entry {
	if b.qc != qcPTR {
		return b.nodata()
	}
	ttl := b.rt.svcTTL
	e := &entry{apex: b.apex, policy: policyFixed}
	for _, svc := range b.snap.Services() {
		any := false
		for _, inst := range svc.Instances.Values() {
			if b.healthy(inst) {
				any = true
				break
			}
		}
		if !any {
			continue
		}
		if rr, ok := b.q.appendNameRR(nil, ownerQ, dns.TypePTR, ttl, "_"+svc.Name+"._tcp."+b.domain); ok {
			e.drafts = append(e.drafts, draft{rr: rr, nrr: 1, glueID: -1})
		}
	}
	if len(e.drafts) == 0 {
		return b.nodata()
	}
	return e.finish()
}

// buildDNSSDBrowse answers b/db/lb._dns-sd._udp (RFC 6763 §11) with the
// domain itself.
func (b *builder) buildDNSSDBrowse() *entry {
	if b.qc != qcPTR {
		return b.nodata()
	}
	rr, _ := b.q.appendNameRR(nil, ownerQ, dns.TypePTR, b.rt.svcTTL, b.domain)
	e := &entry{apex: b.apex, policy: policyFixed, drafts: []draft{{rr: rr, nrr: 1, glueID: -1}}}
	return e.finish()
}

// instanceLabels names the DNS-SD instances of a service: "<id>-<node>"
// reduced to letters, digits and '-', unique within the service, at most
// 63 bytes.
func instanceLabels(svc *catalog.ServiceEntry) []string {
	labels := make([]string, svc.Instances.Len())
	count := map[string]int{}
	for i, inst := range svc.Instances.Values() {
		l := sanitizeLabel(inst.Service.ID + "-" + inst.Node.Node.Name)
		labels[i] = l
		count[strings.ToLower(l)]++
	}
	for i, inst := range svc.Instances.Values() {
		l := labels[i]
		if count[strings.ToLower(l)] > 1 || len(l) > 63 {
			h := fnv.New32a()
			h.Write([]byte(inst.Node.Node.Name + "\x00" + inst.Service.ID))
			suffix := "-" + strconv.FormatUint(uint64(h.Sum32()), 16)
			if len(l)+len(suffix) > 63 {
				l = strings.TrimRight(l[:63-len(suffix)], "-")
			}
			labels[i] = l + suffix
		}
	}
	return labels
}

func sanitizeLabel(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-")
}

// dnssdPTREntry enumerates the instances of a service (RFC 6763 §4.1)
// with each instance's SRV and TXT, and its target's address, in the
// additional section (§12.1).
func (b *builder) dnssdPTREntry(svc *catalog.ServiceEntry, tiers [][]*catalog.Instance) *entry {
	ttl := b.serviceTTL(svc)
	labels := instanceLabels(svc)
	index := make(map[*catalog.Instance]int, svc.Instances.Len())
	for i, inst := range svc.Instances.Values() {
		index[inst] = i
	}
	e := &entry{apex: b.apex, policy: b.servicePolicy(svc)}
	glue := map[string]int32{}
	for _, tier := range tiers {
		for _, inst := range tier {
			name := labels[index[inst]] + "._" + svc.Name + "._" + b.p.proto + "." + b.domain
			rr, ok := b.q.appendNameRR(nil, ownerQ, dns.TypePTR, ttl, name)
			if !ok {
				continue
			}
			owner, ok := b.q.appendName(nil, name)
			if !ok {
				continue
			}
			u, ok := b.srvUnit(inst, owner, ttl, glue)
			if !ok {
				continue
			}
			u.extra = appendTXT(u.rr, owner, ttl, metaTXT(inst.Service.Meta))
			u.nextra = 2
			u.rr, u.nrr = rr, 1
			e.drafts = append(e.drafts, u)
		}
		e.closeTier()
	}
	return b.done(e, len(glue))
}

// buildDNSSDInstance answers SRV and TXT of one DNS-SD instance.
func (b *builder) buildDNSSDInstance() *entry {
	svc, ok := b.snap.Service(b.p.service)
	if !ok {
		b.cacheable = false
		return b.nxdomain()
	}
	labels := instanceLabels(svc)
	var inst *catalog.Instance
	for i, l := range labels {
		if strings.EqualFold(l, b.p.instance) {
			inst = svc.Instances.Get(i)
			break
		}
	}
	if inst == nil {
		b.cacheable = false
		return b.nxdomain()
	}
	if !b.healthy(inst) {
		return b.withDep(b.nxdomain(), svc)
	}
	ttl := b.serviceTTL(svc)
	e := &entry{apex: b.apex, policy: policyFixed}
	switch b.qc {
	case qcSRV, qcANY:
		u, ok := b.srvUnit(inst, ownerQ, ttl, map[string]int32{})
		if !ok {
			return b.withDep(b.nodata(), svc)
		}
		if b.qc == qcANY {
			u.rr = appendTXT(u.rr, ownerQ, ttl, metaTXT(inst.Service.Meta))
			u.nrr = 2
		}
		e.drafts, e.nglue = []draft{u}, 1
	case qcTXT:
		e.drafts = []draft{{rr: appendTXT(nil, ownerQ, ttl, metaTXT(inst.Service.Meta)), nrr: 1, glueID: -1}}
	default:
		return b.withDep(b.nodata(), svc)
	}
	return b.withDep(e.finish(), svc)
}

// buildReverse answers a PTR query for an address: the nodes that have it
// (<node>.node.<domain>), else the services whose instances have it as
// their own address (<service>.service.<domain>), always in the primary
// domain. ok is false when no node or instance has the address.
func buildReverse(rt *runtime, snap *snapshotView, q qname, a netip.Addr) (*entry, bool) {
	domain := rt.domains[0]
	ip := net.IP(a.AsSlice())
	e := &entry{apex: 0xC000 | headerLen, policy: policyFixed}
	for _, n := range snap.NodesByAddress(ip) {
		if rr, ok := q.appendNameRR(nil, ownerQ, dns.TypePTR, rt.nodeTTL, n.Node.Name+".node."+domain); ok {
			e.drafts = append(e.drafts, draft{rr: rr, nrr: 1, glueID: -1})
		}
	}
	if len(e.drafts) == 0 {
		seen := map[string]bool{}
		insts := snap.InstancesByAddress(ip)
		for _, inst := range insts.Values() {
			k := strings.ToLower(inst.Service.Name)
			if seen[k] {
				continue
			}
			seen[k] = true
			ttl := rt.serviceTTL(k)
			if rr, ok := q.appendNameRR(nil, ownerQ, dns.TypePTR, ttl, inst.Service.Name+".service."+domain); ok {
				e.drafts = append(e.drafts, draft{rr: rr, nrr: 1, glueID: -1})
			}
		}
	}
	if len(e.drafts) == 0 {
		return nil, false
	}
	return e.finish(), true
}

func fnvBytes(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}
