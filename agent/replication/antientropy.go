package replication

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sort"
	"time"

	"github.com/chorusdns/chorus/catalog"
)

// Anti-entropy. Every round (aeInterval, jittered) an agent sends one
// random alive peer its version tree's root (pktDigest, 8 bytes). A peer
// whose root differs does not act at once: most differences are changes
// still in flight (a notice on its way, a pull waiting out its jitter),
// gone a moment later. It answers after digestRecheck with its own root
// then (pktDigestFinal). If that still differs from the first agent's
// root of that moment, the first agent opens a tree exchange with it
// (strTree, see treeframe.go): they walk down the tree where it differs,
// swap the entries of the differing leaves, and each pulls what the other
// holds newer. A difference that was only in flight costs two datagrams;
// d lasting differences cost about d × 400 bytes; a fully stale agent
// learns every difference in one exchange of at most treeDepth+1 round
// trips (≈ 35 KB of hashes plus both sides' entries at 10,000 nodes).
const (
	// digestRecheck is how long a peer waits before answering a digest
	// that differs: longer than a change takes to reach everyone.
	digestRecheck = time.Second
)

// Rounds while nothing changes. The anti-entropy loop runs a round (its
// member checks and one digest) every aeInterval for aeBusyRounds rounds
// after this agent's root last changed, a peer's digest last differed
// from it, a join, or while a repair is pending (a member status that
// differs from the gossip layer's, an unlisted node, a catch-up); then
// the rounds space out to every 2, 4, up to aeIdleGap intervals. An idle
// cluster thus sends one digest per agent per ~aeIdleGap seconds instead
// of one a second, and its agents wake for it that much less often (each
// digest costs a datagram sent and one received). While spaced out the
// loop still wakes at once for a catalog change or a differing digest,
// and runs its next round one interval later. Repair is not slowed where
// it matters: a change changes the root of every agent that received it,
// so after a lost notice every agent but the one that missed it runs a
// round a second for aeBusyRounds rounds; the agent that missed it is
// sent a digest within a round or two (each of the N-1 others picks it
// with chance 1/(N-1) each round), and that differing digest puts it
// back to a round a second. A member event Serf dropped while the
// cluster is idle (Serf drops them when overwhelmed, so rarely then) is
// found at the next spaced round: within aeIdleGap seconds, then
// confirmed a round later.
const (
	aeBusyRounds = 5
	aeIdleGap    = 8
)

// roundPacer spaces out the anti-entropy rounds. It is the aeLoop's own
// (not safe for concurrent use).
type roundPacer struct {
	root  uint64 // the root of the last round
	quiet int    // rounds since the root changed or the loop was busy
	gap   int    // intervals until the next round
}

// next returns in how many intervals the next round is due, given this
// agent's root after this round and whether the round was busy (a
// digest differed, a join, a repair pending).
func (p *roundPacer) next(root uint64, busy bool) int {
	if root != p.root || busy || p.gap == 0 {
		p.root, p.quiet, p.gap = root, 0, 1
	}
	p.quiet++
	if p.quiet > aeBusyRounds {
		p.gap = min(2*p.gap, aeIdleGap)
	}
	return p.gap
}

// recheck is a final digest due to addr at time at.
type recheck struct {
	addr string
	at   time.Time
}

// sendDigest sends the tree's root to one random alive peer, final when
// an exchange is wanted at once (after a join).
func (s *Syncer) sendDigest(final bool) {
	self := s.self
	var peers []Member
	for _, m := range s.members.Members() {
		if m.Name != self && m.Status == catalog.MemberAlive {
			peers = append(peers, m)
		}
	}
	if len(peers) == 0 {
		return
	}
	s.sendRoot(peers[rand.N(len(peers))].Addr, final)
}

// sendRoot sends this agent's current root to addr.
func (s *Syncer) sendRoot(addr string, final bool) {
	typ := pktDigest
	if final {
		typ = pktDigestFinal
	}
	body := binary.BigEndian.AppendUint64(nil, s.tree().root())
	pkt, err := s.packet(typ, body)
	if err != nil {
		return
	}
	if _, err := s.net.WriteTo(pkt, addr); err == nil {
		s.metrics.count(kindDigest, dirSent, len(pkt))
	}
}

// handleDigest compares a peer's root with ours. A first digest that
// differs is answered after digestRecheck (at most once per half round
// per peer); a final one that differs starts a tree exchange with the
// peer (likewise bounded). Only digests from a member's gossip address
// count: the exchange pulls from the address it dials.
func (s *Syncer) handleDigest(body []byte, from string, final bool) {
	if len(body) != 8 {
		s.reject(rejMalformed, "dropping a malformed digest", "from", from)
		return
	}
	if !s.isMemberAddr(from) {
		s.reject(rejNotMember, "dropping a digest from an address that is no member's", "from", from)
		return
	}
	if binary.BigEndian.Uint64(body) == s.tree().root() {
		return
	}
	s.differed.Store(true)
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}
	last := s.lastReply
	if final {
		last = s.lastAE
	}
	s.mu.Lock()
	if time.Since(last[from]) < aeInterval/2 {
		s.mu.Unlock()
		return
	}
	last[from] = time.Now()
	if len(last) > 4096 {
		clear(last)
	}
	s.mu.Unlock()
	if !final {
		select {
		case s.recheckCh <- recheck{addr: from, at: time.Now().Add(digestRecheck)}:
		default: // a backlog: the peer's next digest asks again
		}
		return
	}
	select {
	case s.exchangeCh <- exchangeReq{addr: from}:
	default: // a backlog: the next digest asks again
	}
}

// recheckLoop sends the final digests handleDigest scheduled, each when
// it is due (they come in the order they are due).
func (s *Syncer) recheckLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		var r recheck
		select {
		case <-ctx.Done():
			return
		case r = <-s.recheckCh:
		}
		if d := time.Until(r.at); d > 0 {
			t.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		s.metrics.events.WithLabelValues("ae_recheck").Inc()
		s.sendRoot(r.addr, true)
	}
}

// exchangeLoop runs the tree exchanges that final digests queued.
func (s *Syncer) exchangeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-s.exchangeCh:
			if s.closed.Load() {
				if req.catchUp {
					s.caughtUp(nil, errClosed)
				}
				continue
			}
			s.runExchange(ctx, req)
		}
	}
}

// exchangeTree walks down the version tree with the peer at addr, where
// the hashes differ, and pulls what the peer holds newer in the leaves
// that differ (returned); the peer pulls what we hold newer.
func (s *Syncer) exchangeTree(ctx context.Context, addr string) ([]vecEntry, error) {
	conn, err := s.dial(addr, strTree)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// Shutdown does not wait out the exchange's deadline.
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	mine := s.tree()
	r := bufio.NewReader(conn)
	if err := s.writeFrame(conn, strTree, encodeHello(s.self)); err != nil {
		return nil, err
	}
	s.metrics.events.WithLabelValues("ae_exchange").Inc()
	idx := []uint16{0}
	for level := 0; level < treeDepth; level++ {
		req := treeRequest{op: opHashes, level: level, indexes: idx}
		if err := s.writeFrame(conn, strTree, encodeTreeRequest(req)); err != nil {
			return nil, err
		}
		b, err := s.readFrame(r, strTree, maxTreeFrame)
		if err != nil {
			return nil, err
		}
		theirs, err := decodeHashes(b, len(idx)*treeFanout)
		if err != nil {
			s.reject(rejMalformed, "bad tree exchange answer", "from", addr, "err", err)
			return nil, err
		}
		var next []uint16
		for j, i := range idx {
			for c, h := range mine.children(level, int(i)) {
				if theirs[j*treeFanout+c] != h {
					next = append(next, uint16(int(i)*treeFanout+c))
				}
			}
		}
		if len(next) == 0 {
			return nil, nil // the difference was gone by now
		}
		idx = next
	}
	req := treeRequest{op: opEntries, indexes: idx, entries: mine.leafEntries(idx)}
	if err := s.writeFrame(conn, strTree, encodeTreeRequest(req)); err != nil {
		return nil, err
	}
	b, err := s.readFrame(r, strTree, maxTreeFrame)
	if err != nil {
		return nil, err
	}
	theirs, err := decodeEntries(b)
	if err == nil {
		err = entriesWithin(theirs, idx)
	}
	if err != nil {
		s.reject(rejMalformed, "bad tree exchange entries", "from", addr, "err", err)
		return nil, err
	}
	return s.pullNewer(addr, theirs), nil
}

// serveTree answers a tree exchange (see treeframe.go) and pulls what the
// peer holds newer from the gossip address the member list has for the
// name its hello gives; a name that is no member's pulls nothing. The
// tree of the catalog at the stream's start answers every request.
func (s *Syncer) serveTree(r *bufio.Reader, w net.Conn) error {
	b, err := s.readFrame(r, strTree, maxTreeFrame)
	if err != nil {
		return err
	}
	name, err := decodeHello(b)
	if err != nil {
		return fmt.Errorf("%w: %v", errMalformed, err)
	}
	mine := s.tree()
	for range treeDepth + 1 {
		b, err := s.readFrame(r, strTree, maxTreeFrame)
		if err == io.EOF {
			return nil // the client found no difference further down
		}
		if err != nil {
			return err
		}
		req, err := decodeTreeRequest(b)
		if err != nil {
			return fmt.Errorf("%w: %v", errMalformed, err)
		}
		if req.op == opHashes {
			h := make([]uint64, 0, len(req.indexes)*treeFanout)
			for _, i := range req.indexes {
				h = append(h, mine.children(req.level, int(i))...)
			}
			if err := s.writeFrame(w, strTree, encodeHashes(h)); err != nil {
				return err
			}
			continue
		}
		if err := s.writeFrame(w, strTree, appendEntries(nil, mine.leafEntries(req.indexes))); err != nil {
			return err
		}
		if name != s.self {
			if addr := s.memberAddr(name); addr != "" {
				s.pullNewer(addr, req.entries)
			}
		}
		return nil
	}
	return fmt.Errorf("%w: tree exchange of more than %d requests", errMalformed, treeDepth+1)
}

// pullNewer schedules pulls from addr of every entry it holds newer, in
// jobs of at most maxPullNames nodes, so a fully stale agent's catch-up
// is pulled at once rather than over several rounds. It returns those
// entries.
func (s *Syncer) pullNewer(addr string, theirs []vecEntry) []vecEntry {
	var newer []vecEntry
	for _, e := range theirs {
		if s.store.Version(e.Name) < e.Version {
			newer = append(newer, e)
		}
	}
	if len(newer) == 0 {
		return nil
	}
	s.metrics.events.WithLabelValues("ae_repair").Add(float64(len(newer)))
	sort.Slice(newer, func(i, j int) bool { return newer[i].Name < newer[j].Name })
	for rest := newer; len(rest) > 0; {
		n := min(len(rest), maxPullNames)
		want := make(map[string]uint64, n)
		for _, e := range rest[:n] {
			want[e.Name] = e.Version
		}
		s.want(addr, want, pullNow)
		rest = rest[n:]
	}
	return newer
}
