package replication

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/chorusdns/chorus/agent/sealing"
	"github.com/chorusdns/chorus/catalog"
)

// Message types after chorusMagic on the gossip port.
const (
	pktNotice byte = 1 // UDP: a node's new version, with its record when small
	pktDigest byte = 2 // UDP: the sender's version tree root (antientropy.go)
	strPull   byte = 3 // TCP: fetch records
	// strVector exchanges whole version vectors: served for agents of
	// the previous release during a rolling upgrade, never opened.
	strVector      byte = 4
	pktDigestFinal byte = 5 // UDP: a root that differed a recheck ago
	strTree        byte = 6 // TCP: walk the version tree (treeframe.go)
)

// Sync tuning. MaxInlineRecord is the largest encoded record a notice
// carries inline: a notice stays within one unfragmented UDP datagram on
// any LAN; larger records are pulled.
const (
	MaxInlineRecord = 1200
	// maxInlineJSON bounds what an inline record may inflate to: its
	// 1,200 bytes could inflate to a megabyte, decoded on the read loop
	// that also carries memberlist's probes. A real one (at most 16
	// pieces) is a few KB; a larger one is pulled instead.
	maxInlineJSON   = 64 << 10
	aeInterval      = time.Second
	pullTimeout     = 5 * time.Second
	pullWorkers     = 4
	maxPullJitter   = 500 * time.Millisecond
	jitterPerMember = 3 * time.Millisecond
	// applyQueue bounds the records waiting for applyLoop; a notice that
	// finds it full is dropped (anti-entropy repairs it), a pull waits.
	applyQueue = 4096
)

// Syncer replicates node records between agents:
//   - fast path: on every local change the owner sends a notice straight
//     to every alive member (one UDP datagram each, the record inline when
//     it fits, paced: fanout.go), so peers apply it within a network round
//     trip;
//   - pull: a peer that learns of a newer version than it holds (from a
//     notice, a version tag or anti-entropy) fetches the record over TCP,
//     after a jitter that grows with the cluster, from whoever told it;
//   - anti-entropy: every second each agent sends a random peer the root
//     of its node → version tree (every 2, 4, up to 8 s once nothing has
//     changed for 5 s: roundPacer); where it still differs a second
//     later the two walk the tree and pull what the other has newer
//     (antientropy.go), so a lost notice is repaired in seconds;
//   - the version tag in the gossip layer carries the version an agent
//     started with (set by the agent when it creates its gossip member,
//     never changed: a new tag is an alive message every member passes
//     on L(N) times, a cost per change that grows with the cluster, see
//     docs/scale.md), so that a member learns of a new or restarted
//     agent's record with its member event (Observe); a joining agent
//     catches up through one tree exchange (catchup.go).
//
// Received records are applied by one goroutine that takes every record
// waiting and applies them as one catalog change, never on the network
// read loop.
//
// Create it with New, hand it its network and members with Attach once
// the gossip layer exists, and run it with Run. Its methods are safe for
// concurrent use.
type Syncer struct {
	self    string
	store   Store
	logger  *slog.Logger
	metrics *Metrics
	seal    sealing.Sealer

	members Members
	net     Network

	kickCh     chan struct{}
	announceCh chan struct{}
	// applyCh carries received records to applyLoop.
	applyCh chan received
	// exchangeCh queues tree exchanges that peers' final digests asked
	// for; exchangeLoop runs them one at a time. recheckCh queues the
	// final digests that differing digests are answered with.
	exchangeCh chan exchangeReq
	recheckCh  chan recheck
	latest     atomic.Pointer[catalog.NodeRecord]
	deltas     deltaState // delta.go
	// resend makes announceLoop send the latest record's notices again
	// although they went out (Kick, after a join: the members just
	// learned of were not among their recipients).
	resend atomic.Bool

	mu      sync.Mutex
	pending map[string]uint64 // node → version being fetched
	jobs    chan pullJob
	lastAE  map[string]time.Time // peer addr → last tree exchange
	// lastReply: peer addr → last final digest scheduled for it.
	lastReply map[string]time.Time
	// catch is the catch-up after a join (catchup.go).
	catch catchUp

	// differed is set when a peer's digest differed from this agent's
	// root, and wakeCh then wakes the aeLoop; pacer is the aeLoop's own
	// (roundPacer).
	differed atomic.Bool
	wakeCh   chan struct{}
	pacer    roundPacer
	// mismatch is the aeLoop's own: member statuses that differed from
	// the gossip layer's in its last round.
	mismatch map[string]catalog.MemberStatus
	// unmembered is the aeLoop's own too: nodes held in the catalog that
	// the gossip layer has not listed, and for how many rounds in a row.
	// joinCh feeds joinLoop; started is when this agent started.
	unmembered map[string]int
	joinCh     chan string
	started    time.Time

	vtree atomic.Pointer[versionTree]

	// keys pins nodes' record keys and holds records that arrived
	// before their key; warnings rate-limits the log lines of rejected
	// traffic; streams bounds the Chorus streams served at once.
	keys     *keys
	warnings *limitedLog
	streams  *streamLimit
	// early holds notices that came before their sender was a member
	// (early.go).
	early earlyNotices

	closed atomic.Bool
	// ready is set by Attach; traffic that arrives earlier (the transport
	// starts first) is dropped and repaired by anti-entropy.
	ready atomic.Bool
}

// received is a record that arrived from a peer, with how it came.
type received struct {
	rec  *catalog.NodeRecord
	kind string // the sync event counted when it is applied
	// delta, when set instead of rec, is an inline delta of node name
	// from the notice sender from (delta.go).
	delta      []byte
	name, from string
}

type encodedRecord struct {
	version uint64
	b       []byte
}

type pullJob struct {
	addr  string
	nodes map[string]uint64
	// notBefore is when the pull may start (see pullWhen); zero for at
	// once.
	notBefore time.Time
}

// New returns a Syncer for the agent named self. keyring, when not nil,
// seals and opens every packet and stream (the gossip keyring). It starts
// no goroutine.
func New(self string, store Store, keyring *memberlist.Keyring, logger *slog.Logger, metrics *Metrics) *Syncer {
	return &Syncer{
		self:       self,
		store:      store,
		logger:     logger.With("component", "sync"),
		metrics:    metrics,
		seal:       sealing.Sealer{Keyring: keyring},
		keys:       newKeys(),
		warnings:   newLimitedLog(logger.With("component", "sync")),
		streams:    newStreamLimit(maxStreams, maxStreamsPerIP),
		kickCh:     make(chan struct{}, 1),
		wakeCh:     make(chan struct{}, 1),
		announceCh: make(chan struct{}, 1),
		applyCh:    make(chan received, applyQueue),
		exchangeCh: make(chan exchangeReq, 16),
		recheckCh:  make(chan recheck, 64),
		joinCh:     make(chan string, 1),
		started:    time.Now(),
		pending:    make(map[string]uint64),
		jobs:       make(chan pullJob, 1024),
		lastAE:     make(map[string]time.Time),
		lastReply:  make(map[string]time.Time),
	}
}

// Attach gives the Syncer the gossip layer's members and the network to
// reach them; traffic is served from then on. Call it once, before Run.
func (s *Syncer) Attach(members Members, network Network) {
	s.members, s.net = members, network
	s.ready.Store(true)
}

// Run runs the Syncer's loops until ctx is done and returns once they have
// all stopped.
func (s *Syncer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.announceLoop(ctx) })
	wg.Go(func() { s.aeLoop(ctx) })
	wg.Go(func() { s.exchangeLoop(ctx) })
	wg.Go(func() { s.recheckLoop(ctx) })
	wg.Go(func() { s.joinLoop(ctx) })
	wg.Go(func() { s.applyLoop(ctx) })
	for range pullWorkers {
		wg.Go(func() { s.pullWorker(ctx) })
	}
	wg.Wait()
}

// Close makes the Syncer drop traffic from now on (the agent is stopping).
func (s *Syncer) Close() { s.closed.Store(true) }

// Kick follows a join: it asks for an immediate anti-entropy round,
// which runs the catch-up exchange BeginCatchUp started (catchup.go), and
// sends the latest record's notices again, now to the members the join
// brought, so that they hold it before their version-tag pulls are due
// (pullAfterNotices).
func (s *Syncer) Kick() {
	select {
	case s.kickCh <- struct{}{}:
	default:
	}
	s.resend.Store(true)
	select {
	case s.announceCh <- struct{}{}:
	default:
	}
}

// Announce publishes a new local record: the encoded form for pulls, the
// version tag and the fast-path notices. Bursts coalesce.
func (s *Syncer) Announce(rec *catalog.NodeRecord) {
	s.latest.Store(rec)
	select {
	case s.announceCh <- struct{}{}:
	default:
	}
}

func (s *Syncer) announceLoop(ctx context.Context) {
	var sentVersion uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.announceCh:
		}
		rec := s.latest.Load()
		resend := s.resend.Swap(false)
		if rec == nil || (rec.Version == sentVersion && !resend) {
			continue
		}
		b := s.noticePayload(rec)
		s.sendNotices(ctx, rec, b)
		sentVersion = rec.Version
		s.metrics.events.WithLabelValues("announce").Inc()
	}
}

// packet frames and seals a datagram.
func (s *Syncer) packet(typ byte, body []byte) ([]byte, error) {
	ad := []byte{chorusMagic, typ}
	sealed, err := s.seal.Seal(body, ad)
	if err != nil {
		return nil, err
	}
	return append(ad, sealed...), nil
}

// HandlePacket receives Chorus datagrams from the transport. It runs on
// the transport's read loop: it decodes and queues, it never applies.
func (s *Syncer) HandlePacket(p *memberlist.Packet) {
	if !s.ready.Load() || s.closed.Load() || len(p.Buf) < 2 {
		return
	}
	typ := p.Buf[1]
	s.metrics.count(packetKind(typ), dirReceived, len(p.Buf))
	body, err := s.seal.Open(p.Buf[2:], p.Buf[:2])
	if err != nil {
		s.reject(rejUndecryptable, "dropping packets that do not open", "from", p.From.String(), "err", err)
		return
	}
	switch typ {
	case pktNotice:
		s.handleNotice(body, p.From.String())
	case pktDigest, pktDigestFinal:
		s.handleDigest(body, p.From.String(), typ == pktDigestFinal)
	default:
		s.logger.Debug("unknown packet type", "type", typ, "from", p.From.String())
	}
}

// handleNotice takes a notice: it must come from the gossip address of
// the member it is about, and its record (inline or pulled from that
// address) is applied only if its signature verifies (accept).
func (s *Syncer) handleNotice(body []byte, from string) {
	name, version, inline, err := decodeNotice(body)
	if err != nil {
		s.reject(rejMalformed, "dropping a malformed notice", "from", from, "err", err)
		return
	}
	if name == s.self {
		return
	}
	// Only the owner sends notices: the sender must be the member itself.
	// The source address of a datagram can be forged: this only keeps
	// outsiders from prompting pulls; the signature decides.
	owner := s.memberAddr(name)
	if owner == "" && s.isMemberAddr(from) {
		owner = from // an external node's notice comes from its owner (external.go)
	}
	if owner == "" && s.early.park(from, body, time.Now()) {
		s.metrics.events.WithLabelValues("notice_parked").Inc()
		return // handled when a member at from is observed (early.go)
	}
	if owner == "" || owner != from {
		s.reject(rejNotMember, "dropping a notice for a node from another address", "node", name, "from", from, "member_addr", owner)
		return
	}
	if version > futureLimit() {
		s.reject(rejFuture, "dropping a notice of a version too far in the future (clock skew or forgery)", "node", name, "version", version)
		return
	}
	s.metrics.events.WithLabelValues("notice_received").Inc()
	if s.store.Version(name) >= version {
		return
	}
	if len(inline) > MaxInlineRecord {
		// No agent inlines more (noticePayload); a larger one would make
		// this read loop inflate up to a whole record's MaxRecordSize.
		s.reject(rejMalformed, "dropping an inline record over MaxInlineRecord", "node", name, "from", from, "bytes", len(inline))
		inline = nil
	}
	if catalog.IsDelta(inline) {
		s.queueDelta(name, version, inline, from)
		return
	}
	if len(inline) > 0 {
		rec, err := catalog.DecodeRecordLimit(inline, maxInlineJSON)
		if err == nil && rec.Node.Name == name && rec.Version == version {
			s.queueApply(rec, "applied_notice")
			return
		}
		s.reject(rejMalformed, "rejecting an inline record", "node", name, "from", from, "err", err)
	}
	s.want(from, map[string]uint64{name: version}, pullJittered)
}

// queueApply hands a received record to applyLoop. From the read loop
// (notices) it never blocks: a full queue drops the record, which the
// version tag and anti-entropy bring again. Pull workers wait for room.
func (s *Syncer) queueApply(rec *catalog.NodeRecord, kind string) {
	r := received{rec: rec, kind: kind}
	if kind == "applied_notice" {
		select {
		case s.applyCh <- r:
		default:
			s.metrics.events.WithLabelValues("apply_dropped").Inc()
		}
		return
	}
	s.applyCh <- r
}

// applyLoop applies received records: each time it wakes it takes every
// record waiting, keeps those accept lets through and applies them as one
// catalog change (one snapshot).
func (s *Syncer) applyLoop(ctx context.Context) {
	batch := make([]received, 0, 64)
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-s.applyCh:
			batch = append(batch[:0], r)
		}
	drain:
		for len(batch) < applyQueue {
			select {
			case r := <-s.applyCh:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		// Signatures are checked before the catalog is locked.
		limit, refreshed := futureLimit(), false
		refresh := func() {
			if !refreshed {
				refreshed = true
				s.refreshKeys()
			}
		}
		ok := batch[:0]
		var newest map[string]*catalog.NodeRecord // for deltas: accepted in this batch
		for _, r := range batch {
			if r.delta != nil {
				var applies bool
				if r, applies = s.resolveDelta(r, newest); !applies {
					continue
				}
			}
			if s.accept(r, limit, refresh) {
				ok = append(ok, r)
				if newest == nil {
					newest = map[string]*catalog.NodeRecord{}
				}
				newest[r.rec.Node.Name] = r.rec
			}
		}
		if len(ok) > 0 {
			s.store.Update(func(tx *catalog.Tx) {
				for _, r := range ok {
					if tx.ApplyRecord(r.rec) {
						s.metrics.events.WithLabelValues(r.kind).Inc()
					}
				}
			})
		}
		clear(batch)
	}
}

// memberAddr returns the gossip address the member list has for name,
// or "".
func (s *Syncer) memberAddr(name string) string {
	for _, m := range s.members.Members() {
		if m.Name == name {
			return m.Addr
		}
	}
	return ""
}

// isMemberAddr reports whether addr is the gossip address of a member
// other than this agent.
func (s *Syncer) isMemberAddr(addr string) bool {
	for _, m := range s.members.Members() {
		if m.Addr == addr && m.Name != s.self {
			return true
		}
	}
	return false
}

// Observe pins a member's record key (see keys), handles the notice an
// alive member sent before it was one (early.go), and schedules a pull
// when its version tag is still ahead of the record held. The
// gossip layer calls it on member events; the anti-entropy loop on every
// member each round.
func (s *Syncer) Observe(m Member) {
	s.pinKey(m)
	if m.Name != s.self && m.Status == catalog.MemberAlive {
		if body := s.early.take(m.Addr, time.Now()); body != nil {
			s.handleNotice(body, m.Addr)
		}
	}
	if m.Name == s.self || m.Status != catalog.MemberAlive || m.Version == 0 || s.store.Version(m.Name) >= m.Version {
		return
	}
	if s.catchingUp() {
		return // the catch-up exchange brings it, with every other record
	}
	s.want(m.Addr, map[string]uint64{m.Name: m.Version}, pullAfterNotices)
}

// pullWhen says when a pull may start.
type pullWhen int

const (
	// pullNow: anti-entropy's pulls, from a random peer.
	pullNow pullWhen = iota
	// pullJittered: a pull from the owner of a change its notice told
	// of. Every peer got the notice at about the same moment, so the
	// pull waits a jitter drawn when queued, so that the N−1 peers do
	// not all dial the owner together.
	pullJittered
	// pullAfterNotices: a pull prompted by a member's version tag (a
	// join or a restart). The member sends its notices after it joined
	// (Kick), the record inline when it fits, so the pull waits out the
	// whole paced fan-out (fanoutSpread) and then a jitter: by then the
	// notice has usually delivered the record and the pull finds nothing
	// to fetch, instead of N−1 members dialling each joiner.
	pullAfterNotices
)

// want schedules fetching the given node versions from addr, skipping
// those already held (applied or held back) or being fetched, and
// versions beyond MaxFutureSkew; when says when the pull may start. A
// pull that finds its versions held by then fetches nothing.
func (s *Syncer) want(addr string, nodes map[string]uint64, when pullWhen) {
	self := s.self
	job := pullJob{addr: addr, nodes: map[string]uint64{}}
	switch when {
	case pullJittered:
		job.notBefore = time.Now().Add(s.pullJitter())
	case pullAfterNotices:
		job.notBefore = time.Now().Add(fanoutSpread + s.pullJitter())
	}
	limit := futureLimit()
	s.mu.Lock()
	for n, v := range nodes {
		if n == self || v > limit || s.store.Version(n) >= v || s.pending[n] >= v || s.keys.heldVersion(n) >= v {
			continue
		}
		s.pending[n] = v
		job.nodes[n] = v
	}
	s.mu.Unlock()
	if len(job.nodes) == 0 {
		return
	}
	select {
	case s.jobs <- job:
	default:
		s.done(job) // queue full: anti-entropy will ask again
	}
}

func (s *Syncer) done(job pullJob) {
	s.mu.Lock()
	for n, v := range job.nodes {
		if s.pending[n] == v {
			delete(s.pending, n)
		}
	}
	s.mu.Unlock()
}

func (s *Syncer) pullWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-s.jobs:
			// Wait until the job's notBefore, if any (see want). It was
			// drawn when the job was queued, so time spent in the queue
			// counts: a backlog (a joining agent queues one job per
			// member) drains within one jitter, not one jitter per job
			// per worker (about 9 s at 150 members).
			if d := time.Until(job.notBefore); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			if err := s.pull(ctx, job); err != nil {
				s.logger.Debug("pull failed", "from", job.addr, "err", err)
				s.metrics.events.WithLabelValues("pull_failed").Inc()
			}
			s.done(job)
		}
	}
}

// pullJitter draws the spread of a pull from an owner: up to 3 ms per
// member, at most 500 ms.
func (s *Syncer) pullJitter() time.Duration {
	j := min(time.Duration(s.members.NumMembers())*jitterPerMember, maxPullJitter)
	if j <= 0 {
		return 0
	}
	return rand.N(j)
}

// pull fetches records from job.addr, a member's gossip address, and
// queues them to be applied (accept checks each).
func (s *Syncer) pull(ctx context.Context, job pullJob) error {
	var names []string
	for n, v := range job.nodes {
		if s.store.Version(n) < v {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	if len(names) > maxPullNames {
		names = names[:maxPullNames] // the next anti-entropy round asks for the rest
	}
	conn, err := s.dial(job.addr, strPull)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := s.writeFrame(conn, strPull, pullRequest(names)); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	for _, name := range names {
		b, err := s.readFrame(r, strPull, maxRecordFrame)
		if err != nil {
			return fmt.Errorf("read record %q: %w", name, err)
		}
		if len(b) == 0 {
			continue // the peer does not hold it
		}
		rec, err := catalog.DecodeRecord(b)
		if err != nil {
			s.reject(rejMalformed, "rejecting a pulled record", "node", name, "from", job.addr, "err", err)
			continue
		}
		if rec.Node.Name != name {
			s.reject(rejWrongNode, "rejecting a pulled record of another node than asked for", "node", name, "got", rec.Node.Name, "from", job.addr)
			continue
		}
		if name == s.self {
			continue
		}
		s.queueApply(rec, "applied_pull")
	}
	return nil
}

// dial opens a Chorus stream of type typ on the gossip port of addr.
func (s *Syncer) dial(addr string, typ byte) (net.Conn, error) {
	conn, err := s.net.DialTimeout(addr, pullTimeout)
	if err != nil {
		return nil, err
	}
	pc := withProgressDeadline(conn, responseTimeout)
	if _, err := pc.Write([]byte{chorusMagic, typ}); err != nil {
		conn.Close()
		return nil, err
	}
	return pc, nil
}

// HandleStream serves a Chorus stream opened by a peer; it owns c. At
// most maxStreams are served at once, maxStreamsPerIP from one IP
// address; a stream beyond either is closed at once. Each read and write
// has pullTimeout, the whole stream maxStreamLife (deadline.go).
func (s *Syncer) HandleStream(c net.Conn) {
	defer c.Close()
	if !s.ready.Load() || s.closed.Load() {
		return
	}
	ip := remoteIP(c)
	if !s.streams.acquire(ip) {
		s.reject(rejStreamLimit, "closing a stream over the limit of concurrent streams", "from", c.RemoteAddr().String(), "max", maxStreams, "max_per_ip", maxStreamsPerIP)
		return
	}
	defer s.streams.release(ip)
	c = withProgressDeadline(c, pullTimeout)
	r := bufio.NewReader(c)
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return
	}
	var err error
	switch hdr[1] {
	case strPull:
		err = s.servePull(r, c)
	case strVector:
		err = s.serveVector(r, c)
	case strTree:
		err = s.serveTree(r, c)
	default:
		err = fmt.Errorf("%w: unknown stream type %d", errMalformed, hdr[1])
	}
	switch {
	case err == nil:
	case errors.Is(err, sealing.ErrOpen):
		s.reject(rejUndecryptable, "closing a stream that does not open", "from", c.RemoteAddr().String(), "err", err)
	case errors.Is(err, errFrame), errors.Is(err, errMalformed):
		s.reject(rejMalformed, "closing a malformed stream", "from", c.RemoteAddr().String(), "err", err)
	default:
		s.logger.Debug("stream from peer failed", "from", c.RemoteAddr().String(), "err", err)
	}
}

func (s *Syncer) servePull(r *bufio.Reader, w net.Conn) error {
	req, err := s.readFrame(r, strPull, maxPullRequest)
	if err != nil {
		return err
	}
	names, err := decodePullRequest(req)
	if err != nil {
		return fmt.Errorf("%w: %v", errMalformed, err)
	}
	bw := bufio.NewWriter(w)
	for _, name := range names {
		if err := s.writeFrame(bw, strPull, s.encoded(name)); err != nil {
			return err
		}
	}
	s.metrics.events.WithLabelValues("pull_served").Inc()
	return bw.Flush()
}

// encoded returns the encoded record held for name, or nil.
func (s *Syncer) encoded(name string) []byte {
	if name == s.self {
		if b := s.ownLatestEncoded(s.store.Version(name)); b != nil {
			return b
		}
	}
	rec := s.store.Record(name)
	if rec == nil {
		return nil
	}
	b, err := catalog.EncodeRecord(rec)
	if err != nil {
		return nil
	}
	return b
}

func (s *Syncer) aeLoop(ctx context.Context) {
	t := time.NewTimer(aeInterval)
	defer t.Stop()
	var snap *catalog.Snapshot // as of the last round's root
	spaced := false            // the timer is set beyond one interval
	for {
		kicked := false
		var changed <-chan struct{}
		if spaced {
			changed = snap.Changed()
		}
		select {
		case <-ctx.Done():
			return
		case <-s.kickCh:
			kicked = true
		case <-t.C:
		case <-changed:
			spaced = false
			t.Reset(jittered(1))
			continue
		case <-s.wakeCh:
			if spaced {
				spaced = false
				t.Reset(jittered(1))
			}
			continue
		}
		s.reconcileMembers()
		s.joinUnmembered()
		s.queueCatchUp()
		if !kicked {
			s.sendDigest(false)
		}
		snap = s.store.Snapshot()
		busy := s.differed.Swap(false) || kicked || len(s.mismatch) > 0 || len(s.unmembered) > 0 || s.catchingUp()
		gap := s.pacer.next(s.tree().root(), busy)
		spaced = gap > 1
		t.Reset(jittered(gap))
	}
}

// jittered is n anti-entropy intervals, 0.75–1.25 × that, so that peers
// do not fall into step.
func jittered(n int) time.Duration {
	d := time.Duration(n) * aeInterval
	return d*3/4 + rand.N(d/2)
}

// reconcileMembers repairs what missed member events left behind: it
// pulls records whose version tag is ahead, and sets the catalog's member
// status to Serf's where they have differed for two rounds in a row (a
// difference seen once may be an event still on its way). Serf's event
// path can drop events when it is overwhelmed (its snapshotter's queue).
func (s *Syncer) reconcileMembers() {
	snap := s.store.Snapshot()
	self := s.self
	seen := map[string]catalog.MemberStatus{}
	var fix []Member
	for _, m := range s.members.Members() {
		if m.Name == self {
			continue
		}
		s.Observe(m)
		want := m.Status
		n, ok := snap.Node(m.Name)
		if ok && n.Status == want || !ok && (want == catalog.MemberLeft || want == catalog.MemberNone) {
			continue // left members are not in snapshots
		}
		seen[m.Name] = want
		if prev, ok := s.mismatch[m.Name]; ok && prev == want {
			fix = append(fix, m)
		}
	}
	s.mismatch = seen
	if len(fix) == 0 {
		return
	}
	s.store.Update(func(tx *catalog.Tx) {
		for _, m := range fix {
			tx.SetMember(m.Name, m.IP, m.Status)
		}
	})
	s.logger.Warn("repaired member status that missed events", "members", len(fix))
	s.metrics.events.WithLabelValues("member_repair").Add(float64(len(fix)))
}

// Repair of unlisted nodes: a node is joined once it has gone unlisted
// joinAfterRounds anti-entropy rounds in a row, and again every
// joinRetryRounds rounds while it stays unlisted; one node per round.
const (
	joinAfterRounds = 5
	joinRetryRounds = 30
)

// joinUnmembered repairs a gap in Serf's member list: a node whose record replication brought in, but that
// this agent's Serf has never listed, for joinAfterRounds rounds in a
// row. Serf would learn of it at a push-pull (30 s to minutes); until
// then this agent does not answer for the node. A join to the gossip
// address the record carries (one push-pull, which also brings every
// member the node knows) makes it learn now.
//
// Only records that changed after this agent started count: the node
// (re)started or changed while this agent was in the cluster, so gossip
// should have brought it. A node that died before this agent joined is
// unlisted too (memberlist ignores dead nodes it never knew) while its
// record still replicates; it is not joined.
func (s *Syncer) joinUnmembered() {
	// Records held back for want of their node's key count too: the
	// key comes with the member, which this repair brings.
	recs := append(s.store.Unmembered(), s.keys.heldRecords()...)
	if len(recs) == 0 && len(s.unmembered) == 0 {
		return
	}
	known := map[string]bool{}
	for _, m := range s.members.Members() {
		known[m.Name] = true
	}
	self := s.self
	since := uint64(s.started.UnixMilli())
	seen := map[string]int{}
	var pick *catalog.NodeRecord
	for _, r := range recs {
		name := r.Node.Name
		if name == self || r.Gossip == "" || known[name] || r.Version <= since {
			continue
		}
		rounds := s.unmembered[name] + 1
		seen[name] = rounds
		if pick == nil && rounds >= joinAfterRounds && (rounds-joinAfterRounds)%joinRetryRounds == 0 {
			pick = r
		}
	}
	s.unmembered = seen
	if pick == nil {
		return
	}
	select {
	case s.joinCh <- pick.Gossip:
		s.logger.Warn("joining a node that replication knows and gossip does not", "node", pick.Node.Name, "addr", pick.Gossip)
		s.metrics.events.WithLabelValues("member_join").Inc()
	default: // a join is still running; retried joinRetryRounds later
	}
}

// joinLoop runs the joins joinUnmembered asks for, off the aeLoop: a join
// to an address that does not answer waits out a TCP timeout.
func (s *Syncer) joinLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case addr := <-s.joinCh:
			if err := s.members.Join(addr); err != nil && ctx.Err() == nil {
				s.logger.Info("join of an unlisted node", "addr", addr, "err", err)
			}
		}
	}
}

// serveVector answers a vector exchange of an agent of the previous
// release and pulls what the peer holds newer from the gossip address the
// member list has for the name it gives; a name that is no member's pulls
// nothing.
func (s *Syncer) serveVector(r *bufio.Reader, w net.Conn) error {
	b, err := s.readFrame(r, strVector, maxVectorBytes)
	if err != nil {
		return err
	}
	theirs, err := decodeVector(b)
	if err != nil {
		return fmt.Errorf("%w: %v", errMalformed, err)
	}
	if err := s.writeFrame(w, strVector, s.vectorBody()); err != nil {
		return err
	}
	if theirs.Name != "" && theirs.Name != s.self {
		if addr := s.memberAddr(theirs.Name); addr != "" {
			entries := make([]vecEntry, 0, len(theirs.Vector))
			for n, v := range theirs.Vector {
				entries = append(entries, vecEntry{n, v})
			}
			s.pullNewer(addr, entries)
		}
	}
	return nil
}

func (s *Syncer) vectorBody() []byte {
	return encodeVector(vectorMsg{Name: s.self, Vector: s.tree().vector()})
}
