package replication

import (
	"bytes"
	"crypto/ed25519"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/chorusdns/chorus/catalog"
)

// What a received record must satisfy, besides decoding: see accept.
const (
	// MaxFutureSkew is how far beyond this agent's clock (unix ms) a
	// record version may be. Versions are max(last+1, unix ms) at their
	// owner, so only a clock that far ahead, or a forgery, exceeds it; a
	// record beyond it would block every later version of its node.
	MaxFutureSkew = 10 * time.Minute
	// maxHeld and maxHeldBytes bound the records held back until their
	// node's key is known: in number, and in the size of their JSON (a
	// member could serve records of nodes no one has, each up to
	// catalog.MaxRecordSize).
	maxHeld      = 4096
	maxHeldBytes = 64 << 20
	// logEvery is the least time between two log lines of one rejection
	// reason; the lines in between are counted into the next.
	logEvery = 10 * time.Second
)

// Reasons a received message or record is refused, the reason label of
// chorus_sync_rejected_total.
const (
	rejUndecryptable = "undecryptable"  // no installed gossip key opens it
	rejMalformed     = "malformed"      // does not decode
	rejNotMember     = "not_member"     // sender is not the gossip address of a member
	rejWrongNode     = "wrong_node"     // a record for another node than asked for
	rejFuture        = "future_version" // version beyond MaxFutureSkew
	rejSignature     = "bad_signature"  // signature does not verify against the pinned key
	rejKeyChanged    = "key_changed"    // a member presents another key than the one pinned
	rejNotOwner      = "not_owner"      // an external node's record for the name of a member (an agent signs its own node's records)
	rejHeldFull      = "held_full"      // no room (maxHeld, maxHeldBytes) to hold a record whose key is unknown
	rejStreamLimit   = "stream_limit"   // too many streams in total or from one address
)

// keys pins each node's record-signing key (from its member tags) and
// holds records that arrived before their node's key. A pinned key is
// replaced only after the node is forgotten (Forget: reaped) or has left
// (a graceful leave or a force-leave): until then a member presenting
// another key under the same name is refused.
type keys struct {
	mu        sync.Mutex
	pinned    map[string]ed25519.PublicKey
	held      map[string]heldRecord
	heldBytes int // the sum of held records' sizes
}

// heldRecord is a record held back and its size (heldSize).
type heldRecord struct {
	received
	size int
}

func newKeys() *keys {
	return &keys{pinned: map[string]ed25519.PublicKey{}, held: map[string]heldRecord{}}
}

// heldSize is the size of rec's JSON, which bounds what the decoded
// record takes in memory up to a small factor.
func heldSize(rec *catalog.NodeRecord) int {
	b, err := catalog.RecordJSON(rec)
	if err != nil {
		return catalog.MaxRecordSize
	}
	return len(b)
}

// pin records m's key. It returns the record held for m that the new key
// releases, if any, and whether m presents a key other than the pinned
// one.
func (k *keys) pin(m Member) (release *received, conflict bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if m.Status == catalog.MemberLeft {
		delete(k.pinned, m.Name)
		return nil, false
	}
	if len(m.Key) != ed25519.PublicKeySize {
		return nil, false
	}
	if old, ok := k.pinned[m.Name]; ok {
		return nil, !bytes.Equal(old, m.Key)
	}
	k.pinned[m.Name] = m.Key
	if r, ok := k.held[m.Name]; ok {
		k.dropHeldLocked(m.Name)
		return &r.received, false
	}
	return nil, false
}

// dropHeldLocked removes the record held for node, if any.
func (k *keys) dropHeldLocked(node string) {
	if r, ok := k.held[node]; ok {
		k.heldBytes -= r.size
		delete(k.held, node)
	}
}

// key returns the pinned key of node, or nil.
func (k *keys) key(node string) ed25519.PublicKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.pinned[node]
}

// hold keeps r until its node's key is pinned (the newest version per
// node); it reports false when r would take the held records past
// maxHeld or maxHeldBytes.
func (k *keys) hold(r received) bool {
	name := r.rec.Node.Name
	k.mu.Lock()
	old, ok := k.held[name]
	k.mu.Unlock()
	if ok && r.rec.Version <= old.rec.Version {
		return true
	}
	size := heldSize(r.rec) // outside the lock: up to a whole record's encoding
	k.mu.Lock()
	defer k.mu.Unlock()
	if old, ok := k.held[name]; ok {
		if r.rec.Version <= old.rec.Version {
			return true
		}
		if k.heldBytes-old.size+size > maxHeldBytes {
			return false
		}
		k.dropHeldLocked(name)
	}
	if len(k.held) >= maxHeld || k.heldBytes+size > maxHeldBytes {
		return false
	}
	k.held[name] = heldRecord{received: r, size: size}
	k.heldBytes += size
	return true
}

// heldVersion returns the version of the record held for node, 0 if none.
func (k *keys) heldVersion(node string) uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	if r, ok := k.held[node]; ok {
		return r.rec.Version
	}
	return 0
}

// heldRecords returns the records held back.
func (k *keys) heldRecords() []*catalog.NodeRecord {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]*catalog.NodeRecord, 0, len(k.held))
	for _, r := range k.held {
		out = append(out, r.rec)
	}
	return out
}

// forget drops node's key and held record.
func (k *keys) forget(node string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.pinned, node)
	k.dropHeldLocked(node)
}

// limitedLog writes at most one line per reason every logEvery, with the
// number of occurrences since the previous line.
type limitedLog struct {
	logger *slog.Logger
	mu     sync.Mutex
	last   map[string]time.Time
	count  map[string]int
}

func newLimitedLog(logger *slog.Logger) *limitedLog {
	return &limitedLog{logger: logger, last: map[string]time.Time{}, count: map[string]int{}}
}

func (l *limitedLog) warn(reason, msg string, args ...any) {
	l.mu.Lock()
	l.count[reason]++
	now := time.Now()
	if now.Sub(l.last[reason]) < logEvery {
		l.mu.Unlock()
		return
	}
	n := l.count[reason]
	l.last[reason], l.count[reason] = now, 0
	l.mu.Unlock()
	l.logger.Warn(msg, append(args, "reason", reason, "occurrences", n, "log_interval_seconds", logEvery.Seconds())...)
}

// reject counts a refused message or record under reason and logs it,
// rate-limited.
func (s *Syncer) reject(reason, msg string, args ...any) {
	s.metrics.events.WithLabelValues("rejected").Inc()
	s.metrics.rejected.WithLabelValues(reason).Inc()
	s.warnings.warn(reason, msg, args...)
}

// Forget drops what the Syncer trusts about node: its pinned key and any
// record held for it. The agent calls it when the catalog forgets the
// node (reaped); a node that comes back afterwards may present a new key.
func (s *Syncer) Forget(node string) { s.keys.forget(node) }

// pinKey pins m's key from a member event or a member list, and sends a
// record it releases to be applied.
func (s *Syncer) pinKey(m Member) {
	if m.Name == s.self {
		return
	}
	release, conflict := s.keys.pin(m)
	if conflict {
		s.reject(rejKeyChanged, "member presents a record key other than the one pinned for its name; its records are refused until it is forgotten (force-leave it if it was reinstalled)", "node", m.Name, "addr", m.Addr)
	}
	if release != nil {
		select {
		case s.applyCh <- *release:
		default:
			s.metrics.events.WithLabelValues("apply_dropped").Inc()
		}
	}
}

// futureLimit is the highest record version accepted now.
func futureLimit() uint64 {
	return uint64(time.Now().Add(MaxFutureSkew).UnixMilli())
}

// accept decides on a received record before it is applied: a record of
// this node, or one no newer than the version held, is dropped; one whose
// version is beyond MaxFutureSkew or whose signature does not verify
// against its node's pinned key is refused, as is an external node's
// record (signed by the agent it names as owner) for the name of a member
// or of a node whose key is pinned: only an agent signs its own node's
// records, so no member can rewrite or delete another agent's node by
// calling it external. A pulled record (only ever from a member's
// gossip address) whose node's key is not known yet is held back (and
// applied once the key is pinned); one from a notice is dropped. refresh is
// called, at most once, to look the key up in the member list before a
// record is held.
func (s *Syncer) accept(r received, limit uint64, refresh func()) bool {
	rec := r.rec
	name := rec.Node.Name
	if name == s.self || rec.Version <= s.store.Version(name) {
		return false
	}
	if rec.Version > limit {
		s.reject(rejFuture, "refusing a record version too far in the future (clock skew or forgery)", "node", name, "version", rec.Version, "limit", limit)
		return false
	}
	signer := recordSigner(rec)
	if signer != name && (s.keys.key(name) != nil || s.isMemberName(name)) {
		s.reject(rejNotOwner, "refusing an external node's record for the name of an agent: only that agent signs its node's records", "node", name, "owner", signer, "version", rec.Version, "via", r.kind)
		return false
	}
	key := s.keys.key(signer)
	if key == nil && refresh != nil {
		refresh()
		key = s.keys.key(signer)
	}
	if key == nil && signer != name {
		// An external node's record whose owner is not known (yet): not
		// held, so that anti-entropy fetches it again later.
		return false
	}
	if key == nil && r.kind != "applied_pull" {
		// A notice for a name no member has comes from some other
		// member's address (an external node's owner): never an agent's
		// own record. Not held, so that datagrams with forged source
		// addresses cannot fill memory; anti-entropy brings a real one.
		s.reject(rejNotMember, "dropping a notice's record of a node that is not a member", "node", name, "via", r.kind)
		return false
	}
	if key == nil {
		if !s.keys.hold(r) {
			s.reject(rejHeldFull, "refusing a record of a node whose key is not known: too many held", "node", name)
		}
		return false
	}
	if err := rec.Verify(key); err != nil {
		s.reject(rejSignature, "refusing a record whose signature does not verify", "node", name, "version", rec.Version, "via", r.kind, "err", err)
		return false
	}
	return true
}

// isMemberName reports whether the catalog knows name as a member of the
// pool (alive, failed or left, until reaped), as the API does when it
// refuses an external node of that name: a lookup in the snapshot, not a
// walk of the member list.
func (s *Syncer) isMemberName(name string) bool {
	n, ok := s.store.Snapshot().Node(name)
	return ok && n.Status != catalog.MemberNone
}

// refreshKeys pins the keys of every member listed now: Serf lists a new
// member before its event reaches the agent.
func (s *Syncer) refreshKeys() {
	for _, m := range s.members.Members() {
		s.pinKey(m)
	}
}

// Limits of the Chorus streams served at once (see HandleStream).
const (
	maxStreams      = 64
	maxStreamsPerIP = 16
)

// streamLimit counts the streams being served, in total and per IP.
type streamLimit struct {
	mu         sync.Mutex
	total      int
	perIP      map[string]int
	max, maxIP int
}

func newStreamLimit(max, maxIP int) *streamLimit {
	return &streamLimit{perIP: map[string]int{}, max: max, maxIP: maxIP}
}

// acquire takes a slot for a stream from ip; it reports false, taking
// nothing, when the total or ip's share is used up.
func (l *streamLimit) acquire(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.max || l.perIP[ip] >= l.maxIP {
		return false
	}
	l.total++
	l.perIP[ip]++
	return true
}

func (l *streamLimit) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// remoteIP is the IP address of c's peer (the whole address if it has
// no port).
func remoteIP(c net.Conn) string {
	a := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(a); err == nil {
		return host
	}
	return a
}
