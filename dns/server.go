package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chorusdns/chorus/catalog"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Source is where the server reads the catalog: the agent passes its
// *catalog.Store. Snapshot must be safe for concurrent use and cheap; it
// is called once per query.
type Source interface {
	Snapshot() *catalog.Snapshot
}

// shutdownGrace bounds how long Run waits for in-flight queries.
const shutdownGrace = 5 * time.Second

// Server answers DNS for the catalog over UDP and TCP on one port and
// forwards other names to the recursors. All of its methods are safe for
// concurrent use.
type Server struct {
	src     Source
	logger  *slog.Logger
	metrics *metrics

	rt    atomic.Pointer[runtime]
	cache atomic.Pointer[cache]
	dist  atomic.Pointer[distHolder]
	base  atomic.Pointer[ctxHolder] // parent context of forwarded queries
	pool  sync.Pool                 // *scratch

	// failoverLog bounds the INFO lines of failover answers: a failover
	// answer is built again on every catalog change.
	failoverLog logLimiter

	mu      sync.Mutex // guards the fields below
	pc      net.PacketConn
	ln      net.Listener
	addr    string
	running bool
}

type distHolder struct{ d Distances }

type ctxHolder struct{ ctx context.Context }

// scratch is per-query working memory, pooled.
type scratch struct {
	buf    []byte
	order  []int32
	keyed  []keyed
	chosen []int32
	bits   []uint64 // glue written
	seen   []uint64 // units drawn, for sampling
}

// mark returns a cleared bitmap of n bits.
func (sc *scratch) mark(n int) []uint64 {
	w := (n + 63) / 64
	if cap(sc.seen) < w {
		sc.seen = make([]uint64, w)
	}
	s := sc.seen[:w]
	clear(s)
	return s
}

var _ dns.Handler = (*Server)(nil)

// New validates cfg and returns a server reading src. It starts no
// goroutine and binds nothing: call Listen, then Run. logger may be nil
// (no logs) and so may reg (metrics not registered). The server keeps its
// own copy of cfg.
func New(cfg Config, src Source, logger *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if src == nil {
		return nil, errors.New("dns: nil Source")
	}
	rt, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Server{src: src, logger: logger.With("component", "dns"), metrics: m}
	s.rt.Store(rt)
	s.base.Store(&ctxHolder{ctx: context.Background()})
	s.pool.New = func() any { return &scratch{buf: make([]byte, 0, 1024)} }
	return s, nil
}

// SetDistances sets the RTT estimator of the nearest policy. Without one,
// nearest orders every instance as "unknown", i.e. at random. It is safe
// to call at any time.
func (s *Server) SetDistances(d Distances) {
	s.dist.Store(&distHolder{d: d})
}

// Reload validates cfg and swaps it in atomically; queries in flight
// finish with the old configuration. On error nothing changes.
func (s *Server) Reload(cfg Config) error {
	rt, err := compile(cfg)
	if err != nil {
		return err
	}
	s.rt.Store(rt)
	s.logger.Info("dns configuration reloaded", "domain", rt.cfg.Domain, "policy", rt.cfg.Policy, "recursors", len(rt.recursors))
	return nil
}

// Listen binds UDP and TCP on the same address. With port 0 it picks a
// free UDP port and binds TCP to the same one, retrying with another port
// when TCP's is taken. Call it once before each Run; Run closes the
// sockets when it returns.
func (s *Server) Listen(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pc != nil {
		return errors.New("dns: already listening")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("dns: listen %q: %w", addr, err)
	}
	const attempts = 16
	var lastErr error
	for i := 0; i < attempts; i++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("dns: listen udp %s: %w", addr, sysErr(err))
		}
		p := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			s.pc, s.ln, s.addr = pc, ln, pc.LocalAddr().String()
			return nil
		}
		pc.Close()
		lastErr = err
		if port != "0" {
			break
		}
	}
	return fmt.Errorf("dns: listen tcp %s: %w", addr, sysErr(lastErr))
}

// sysErr strips a *net.OpError down to its cause, so that the address is
// not said twice ("bind: address already in use").
func sysErr(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// Addr returns the "ip:port" bound by the last Listen (also after Run has
// returned), or "" before Listen.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Run serves the sockets bound by Listen until ctx is done, then stops
// accepting queries, waits up to 5 s for those in flight and closes the
// sockets. It returns only after its goroutines have exited: nil when ctx
// ended it, else the error that stopped a listener.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.pc == nil {
		s.mu.Unlock()
		return errNotListening
	}
	if s.running {
		s.mu.Unlock()
		return errors.New("dns: already running")
	}
	s.running = true
	pc, ln := s.pc, s.ln
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running, s.pc, s.ln = false, nil, nil
		s.mu.Unlock()
	}()

	s.base.Store(&ctxHolder{ctx: ctx})
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	servers := []*dns.Server{
		// ReadTimeout on the UDP socket only bounds each wait for a
		// packet (miekg's default, 2 s, woke an idle agent every 2 s
		// for nothing); ShutdownContext unblocks the read at once.
		{PacketConn: pc, Handler: s, UDPSize: dns.DefaultMsgSize, NotifyStartedFunc: notify, ReadTimeout: udpReadWait},
		{Listener: ln, Handler: s, NotifyStartedFunc: notify},
	}
	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Go(func() { errc <- srv.ActivateAndServe() })
	}
	wg.Go(func() { s.sweepLimiter(ctx) })
	s.logger.Info("dns server listening", "addr", pc.LocalAddr().String())

	var err error
	for n := 0; n < len(servers) && err == nil; {
		select {
		case <-started:
			n++
		case err = <-errc:
		}
	}
	if err == nil {
		select {
		case <-ctx.Done():
		case err = <-errc:
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	for _, srv := range servers {
		// A server that failed to start reports "not started": nothing to stop.
		_ = srv.ShutdownContext(sctx)
	}
	pc.Close()
	ln.Close()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("dns: serve: %w", err)
	}
	return nil
}

// udpReadWait is how long the UDP server waits for a packet before it
// waits again: nothing depends on it but how often an idle server wakes.
const udpReadWait = time.Hour

// sweepLimiter forgets idle rate-limit buckets until ctx is done.
func (s *Server) sweepLimiter(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.rt.Load().limiter.sweep(now)
		}
	}
}

// ServeDNS answers one query. It implements dns.Handler and is safe for
// concurrent use; it does not keep w or r. A panic while answering is
// recovered, counted (chorus_dns_panics_total) and answered with SERVFAIL.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	start := time.Now()
	var qtype uint16
	rcode := -1
	defer func() {
		if v := recover(); v != nil {
			s.metrics.panics.Inc()
			s.logger.Error("panic while answering a DNS query", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			rcode = dns.RcodeServerFailure
			s.writeRcodeSafe(w, r, rcode)
		}
		if rcode >= 0 {
			s.metrics.observe(qtype, rcode, time.Since(start))
		}
	}()
	rcode = s.serve(w, r, &qtype)
}

// writeRcodeSafe answers with rcode after a panic, recovering a second
// one: the handler must never take the process down.
func (s *Server) writeRcodeSafe(w dns.ResponseWriter, r *dns.Msg, rcode int) {
	defer func() { _ = recover() }()
	var ed edns
	if r != nil {
		ed = parseEDNS(r)
	}
	s.writeRcode(w, r, s.rt.Load(), &ed, rcode)
}

// serve answers r and returns the response code sent, -1 for none.
func (s *Server) serve(w dns.ResponseWriter, r *dns.Msg, qtype *uint16) int {
	rt := s.rt.Load()
	if r.Response {
		return -1 // never answer a response
	}
	ed := parseEDNS(r)
	if !rt.limiter.allow(w.RemoteAddr(), time.Now()) {
		s.metrics.rateLimited.Inc()
		return s.fail(w, r, rt, &ed, errRefused)
	}
	if r.Opcode != dns.OpcodeQuery {
		return s.fail(w, r, rt, &ed, errNotImplemented)
	}
	if len(r.Question) != 1 {
		return s.fail(w, r, rt, &ed, errFormat)
	}
	q := &r.Question[0]
	*qtype = q.Qtype
	switch {
	case ed.bad:
		return s.fail(w, r, rt, &ed, errFormat)
	case ed.present && ed.version != 0:
		return s.fail(w, r, rt, &ed, errBadVersion)
	}
	switch q.Qtype {
	case dns.TypeNone, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY:
		return s.fail(w, r, rt, &ed, errFormat)
	case dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB:
		return s.fail(w, r, rt, &ed, errNotImplemented)
	}
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return s.fail(w, r, rt, &ed, errRefused)
	}

	// The cache key: the lower-case name, a zero byte, the type class.
	var kb [maxNameLen*4 + 2]byte
	if len(q.Name) > maxNameLen*4 || len(q.Name) == 0 || q.Name[len(q.Name)-1] != '.' {
		return s.fail(w, r, rt, &ed, errFormat)
	}
	key := kb[:len(q.Name)+2]
	for i := 0; i < len(q.Name); i++ {
		c := q.Name[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		key[i] = c
	}
	key[len(q.Name)] = 0
	key[len(q.Name)+1] = typeClass(q.Qtype)
	lname := key[:len(q.Name)]

	if !ours(lname, rt) {
		return s.forward(w, r, rt, &ed)
	}
	c := s.cacheFor(rt)
	v := c.viewOf(s.src.Snapshot())
	e := c.get(key, v)
	if e == nil {
		e = s.resolve(c, v, key)
		if e == nil {
			return s.forward(w, r, rt, &ed)
		}
	}
	if e.failover != "" {
		s.metrics.failovers.WithLabelValues(e.failover).Inc()
		s.logger.Debug("failover answer", "name", q.Name, "qtype", q.Qtype, "datacenter", e.failover)
	}
	return s.reply(w, r, q, e, &ed, rt, v.serial)
}

// logLimiter allows one log line per key per logEvery. It forgets every
// key when it holds more than 4,096.
type logLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

const logEvery = 10 * time.Second

func (l *logLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && now.Sub(t) < logEvery {
		return false
	}
	if l.last == nil || len(l.last) >= 4096 {
		l.last = map[string]time.Time{}
	}
	l.last[key] = now
	return true
}

// ours reports whether the lower-case name is under one of the domains or
// in the reverse zones.
func ours(name []byte, rt *runtime) bool {
	for _, d := range rt.domains {
		if len(name) >= len(d) && string(name[len(name)-len(d):]) == d {
			return true
		}
	}
	const v4, v6 = ".in-addr.arpa.", ".ip6.arpa."
	return len(name) > len(v4) && string(name[len(name)-len(v4):]) == v4 ||
		len(name) > len(v6) && string(name[len(name)-len(v6):]) == v6
}

// resolve builds the entry of key on snapshot v when the cache has none
// valid for it, and stores it when its name is bounded by the catalog.
// nil means the name is not ours after all (outside the domains, or a
// reverse name we have nothing for).
func (s *Server) resolve(c *cache, v *snapshotView, key []byte) *entry {
	name := string(key[:len(key)-2])
	qc := key[len(key)-1]
	p, in := parseName(name, c.rt)
	if in {
		q, ok := newQname(name)
		if !ok {
			return nil
		}
		b := builder{rt: c.rt, snap: v, q: q, qc: qc, p: p, cacheable: true}
		e := b.build()
		if e.failover != "" && s.failoverLog.allow(name+"\x00"+e.failover, time.Now()) {
			s.logger.Info("no healthy instance here: answering from another datacenter", "name", name, "datacenter", e.failover)
		}
		e.built = v.Index
		e.validAt.Store(v.Index)
		if b.cacheable {
			return c.put(key, e)
		}
		c.drop(key, v.Index)
		return e
	}
	if qc != qcPTR && qc != qcANY {
		return nil
	}
	a, ok := parseReverse(name)
	if !ok {
		return nil
	}
	q, ok := newQname(name)
	if !ok {
		return nil
	}
	e, ok := buildReverse(c.rt, v, q, a)
	if !ok {
		c.drop(key, v.Index)
		return nil
	}
	e.built = v.Index
	e.validAt.Store(v.Index)
	return c.put(key, e)
}

// isTCP reports whether the query came over TCP.
func isTCP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}

// sizeLimit is the largest reply the client can take.
func sizeLimit(tcp bool, ed *edns, rt *runtime) int {
	switch {
	case tcp:
		return dns.MaxMsgSize
	case ed.present:
		return max(dns.MinMsgSize, min(ed.size, rt.maxUDP))
	}
	return dns.MinMsgSize
}

// soaLen is the size of the SOA record appendSOA writes.
func soaLen(rt *runtime) int {
	return 2 + 10 + len(rt.nsLabels) + 2 + 1 + 10 + 2 + 20
}

// reply assembles the answer to r from e, applying the policy order, the
// answer limits and the size limit, and writes it.
func (s *Server) reply(w dns.ResponseWriter, r *dns.Msg, q *dns.Question, e *entry, ed *edns, rt *runtime, serial uint32) int {
	sc := s.pool.Get().(*scratch)
	defer s.pool.Put(sc)
	out := append(sc.buf[:0], make([]byte, headerLen)...)
	out, ok := appendQuestionName(out, q.Name)
	if !ok {
		return s.fail(w, r, rt, ed, errFormat)
	}
	out = binary.BigEndian.AppendUint16(out, q.Qtype)
	out = binary.BigEndian.AppendUint16(out, q.Qclass)

	tcp := isTCP(w)
	budget := sizeLimit(tcp, ed, rt) - len(out) - ed.optLen()
	if e.soa {
		budget -= soaLen(rt)
	}
	truncated := false
	chosen := sc.chosen[:0]
	if len(e.units) > 0 {
		k := len(e.units)
		if e.limitA && rt.cfg.ARecordLimit > 0 {
			k = min(k, rt.cfg.ARecordLimit)
		}
		if !tcp && !ed.present && rt.cfg.UDPAnswerLimit > 0 {
			k = min(k, rt.cfg.UDPAnswerLimit)
		}
		if e.minUnit > 0 {
			// No more than this many units can fit: order no more.
			k = min(k, max(budget, 0)/e.minUnit+1)
		}
		var order []int32
		if e.ordered() {
			in := orderInput{}
			switch e.policy {
			case policyHash:
				in.client = clientHash(w, ed)
			case policyNearest:
				if d := s.dist.Load(); d != nil {
					in.dist = d.d
				}
			}
			order = orderUnits(e, k, sc, &in)
		} else {
			order = sc.order[:0]
			for i := 0; i < k; i++ {
				order = append(order, int32(i))
			}
			sc.order = order
		}
		words := (e.nglue + 63) / 64
		if cap(sc.bits) < words {
			sc.bits = make([]uint64, words)
		}
		bits := sc.bits[:words]
		clear(bits)
		used := 0
		for _, i := range order {
			u := &e.units[i]
			glue := u.glueID >= 0 && bits[u.glueID/64]&(1<<(u.glueID%64)) == 0
			sz := u.size(glue)
			if used+sz > budget {
				truncated = true
				break
			}
			used += sz
			c := i << 1
			if glue {
				bits[u.glueID/64] |= 1 << (u.glueID % 64)
				c |= 1
			}
			chosen = append(chosen, c)
		}
		sc.chosen = chosen
	}

	an, ns, ar := 0, 0, 0
	for _, c := range chosen {
		u := &e.units[c>>1]
		out = append(out, u.rr()...)
		an += int(u.nrr)
	}
	if e.soa {
		owner := [2]byte{byte(e.apex >> 8), byte(e.apex)}
		out = appendSOA(out, owner[:], e.apex, rt, serial)
		ns = 1
	}
	for _, c := range chosen {
		u := &e.units[c>>1]
		if c&1 != 0 {
			out = append(out, u.glue()...)
			ar += int(u.nglue)
		}
		out = append(out, u.extra()...)
		ar += int(u.nextra)
	}
	if ed.present {
		var scope uint8
		if e.policy == policyHash && e.ordered() && ed.ecs != nil {
			scope = ed.ecs[2]
		}
		out = appendOPT(out, ed, rt.maxUDP, 0, scope)
		ar++
	}
	flags := uint16(flagQR|flagAA) | uint16(e.rcode)
	if truncated {
		flags |= flagTC
	}
	flags |= requestFlags(r, rt)
	writeHeader(out, r.Id, flags, 1, an, ns, ar)
	_, _ = w.Write(out)
	sc.buf = out[:0]
	return int(e.rcode)
}

// requestFlags are the header flags copied from the request (RD, CD) and
// RA, set only when recursors are configured.
func requestFlags(r *dns.Msg, rt *runtime) uint16 {
	var f uint16
	if r.RecursionDesired {
		f |= flagRD
	}
	if r.CheckingDisabled {
		f |= flagCD
	}
	if len(rt.recursors) > 0 {
		f |= flagRA
	}
	return f
}

// clientHash identifies the client for the hash policy: the EDNS Client
// Subnet when the query carries one with a non-zero prefix, else the
// address the query came from.
func clientHash(w dns.ResponseWriter, ed *edns) uint64 {
	if ed.ecs != nil && ed.ecs[2] > 0 {
		return catalog.Mix64(fnvBytes(ed.ecs))
	}
	var ip net.IP
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	}
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	return catalog.Mix64(fnvBytes(ip))
}

// fail answers r with the response code of err.
func (s *Server) fail(w dns.ResponseWriter, r *dns.Msg, rt *runtime, ed *edns, err error) int {
	rcode := rcodeFor(err)
	s.writeRcode(w, r, rt, ed, rcode)
	return rcode
}

// writeRcode answers r with an empty reply carrying rcode: the question
// when there is exactly one, and an OPT when the query had one.
func (s *Server) writeRcode(w dns.ResponseWriter, r *dns.Msg, rt *runtime, ed *edns, rcode int) {
	out := make([]byte, headerLen, 512)
	qd := 0
	if r != nil && len(r.Question) == 1 {
		q := r.Question[0]
		if b, ok := appendQuestionName(out, q.Name); ok {
			out = binary.BigEndian.AppendUint16(b, q.Qtype)
			out = binary.BigEndian.AppendUint16(out, q.Qclass)
			qd = 1
		}
	}
	ar := 0
	if ed.present && !ed.bad {
		out = appendOPT(out, ed, rt.maxUDP, uint8(rcode>>4), 0)
		ar = 1
	}
	var id uint16
	var flags uint16 = flagQR
	if r != nil {
		id = r.Id
		flags |= uint16(r.Opcode&0xF) << 11
		flags |= requestFlags(r, rt)
	}
	flags |= uint16(rcode & 0xF)
	writeHeader(out, id, flags, qd, 0, 0, ar)
	_, _ = w.Write(out)
}
