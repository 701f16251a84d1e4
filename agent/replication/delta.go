package replication

import (
	"errors"
	"sync"

	"github.com/chorusdns/chorus/catalog"
)

// Notices whose cost follows the change. The owner's notice carries,
// inline when it fits in MaxInlineRecord:
//   - the whole record when the record is small (up to smallRecordPieces
//     services and checks): a peer needs nothing else to apply it;
//   - else a delta (catalog.EncodeDelta) against the version announced
//     before, whose cost is that of the pieces that changed;
//   - else nothing: peers pull the whole record.
//
// A peer applies a delta against the record it holds, in the apply loop
// (deltas queued behind each other chain within one batch); one that
// holds another version falls back to pulling the whole record from the
// owner, as for a notice without a record. The whole record is encoded
// only when a peer pulls it, once per version (ownEncoded), not on every
// change.

// smallRecordPieces is the size, in services and checks, up to which a
// notice carries the whole record rather than a delta.
const smallRecordPieces = 16

// deltaState is the Syncer's state for deltas. The owner's side: the
// record last announced (the base of the next delta) and the encoding of
// the latest record, made on demand. The receiver's side: the version the
// last delta queued per node will make, so that back-to-back deltas chain
// before the first is applied.
type deltaState struct {
	mu        sync.Mutex
	announced *catalog.NodeRecord // base of the next notice's delta
	enc       encodedRecord       // encoding of the latest record, by version
	queued    map[string]uint64
}

// noticePayload returns what the notice of rec carries inline (see
// above), or nil, and remembers rec as the next delta's base. It runs on
// the announce loop, one record at a time.
func (s *Syncer) noticePayload(rec *catalog.NodeRecord) []byte {
	o := &s.deltas
	o.mu.Lock()
	prev := o.announced
	o.announced = rec
	o.mu.Unlock()
	if rec.Services.Len()+rec.Checks.Len() <= smallRecordPieces {
		b, err := s.ownEncoded(rec)
		if err != nil {
			s.logger.Error("encode own record", "err", err)
			return nil
		}
		if len(b) <= MaxInlineRecord {
			return b
		}
		return nil
	}
	if prev == nil || prev.Node.Name != rec.Node.Name || prev.Version >= rec.Version {
		return nil
	}
	d, err := catalog.EncodeDelta(prev, rec)
	if err != nil {
		s.logger.Error("encode own record delta", "err", err)
		return nil
	}
	if len(d) > MaxInlineRecord {
		return nil
	}
	s.metrics.events.WithLabelValues("delta_sent").Inc()
	return d
}

// ownEncoded returns the encoding of rec, this agent's record, made once
// per version.
func (s *Syncer) ownEncoded(rec *catalog.NodeRecord) ([]byte, error) {
	o := &s.deltas
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.enc.b != nil && o.enc.version == rec.Version {
		return o.enc.b, nil
	}
	b, err := catalog.EncodeRecord(rec)
	if err != nil {
		return nil, err
	}
	o.enc = encodedRecord{version: rec.Version, b: b}
	return b, nil
}

// ownLatestEncoded returns the encoding of the latest announced record
// when version is its version, else nil.
func (s *Syncer) ownLatestEncoded(version uint64) []byte {
	rec := s.latest.Load()
	if rec == nil || rec.Version != version {
		return nil
	}
	b, err := s.ownEncoded(rec)
	if err != nil {
		s.logger.Error("encode own record", "err", err)
		return nil
	}
	return b
}

// queueDelta hands an inline delta of node name's version to the apply
// loop, which applies it against the record it holds then (resolveDelta).
// Like queueApply from the read loop, it never blocks.
func (s *Syncer) queueDelta(name string, version uint64, delta []byte, from string) {
	_, base, v, err := catalog.DeltaHeader(delta)
	if err != nil || v != version {
		s.reject(rejMalformed, "rejecting an inline delta", "node", name, "from", from, "err", err)
		s.want(from, map[string]uint64{name: version}, pullJittered)
		return
	}
	if s.store.Version(name) != base && s.pendingBase(name) != base {
		// Not the version held (nor one on its way to the apply loop):
		// pull the whole record.
		s.metrics.events.WithLabelValues("delta_base_missing").Inc()
		s.want(from, map[string]uint64{name: version}, pullJittered)
		return
	}
	select {
	case s.applyCh <- received{delta: delta, name: name, from: from, kind: "applied_delta"}:
		s.noteDeltaQueued(name, version)
	default:
		s.metrics.events.WithLabelValues("apply_dropped").Inc()
	}
}

// pendingBase is the version of the last delta queued for node name, so
// that back-to-back deltas chain before the first is applied.
func (s *Syncer) pendingBase(name string) uint64 {
	s.deltas.mu.Lock()
	defer s.deltas.mu.Unlock()
	return s.deltas.queued[name]
}

// resolveDelta turns a queued delta into the record it makes of the
// newest record of its node: one accepted earlier in the same batch
// (batch) or the one the store holds. A delta against another version,
// or one that does not apply, is dropped and the whole record pulled
// from the notice's sender.
func (s *Syncer) resolveDelta(r received, batch map[string]*catalog.NodeRecord) (received, bool) {
	base := batch[r.name]
	if base == nil {
		base = s.store.Record(r.name)
	}
	_, _, version, _ := catalog.DeltaHeader(r.delta)
	if base == nil {
		s.metrics.events.WithLabelValues("delta_base_missing").Inc()
		s.want(r.from, map[string]uint64{r.name: version}, pullJittered)
		return r, false
	}
	rec, err := catalog.ApplyDelta(base, r.delta)
	switch {
	case err == nil:
	case errors.Is(err, catalog.ErrDeltaBase):
		if base.Version < version {
			s.metrics.events.WithLabelValues("delta_base_missing").Inc()
			s.want(r.from, map[string]uint64{r.name: version}, pullJittered)
		}
		return r, false
	default:
		s.reject(rejMalformed, "rejecting a delta that does not apply", "node", r.name, "from", r.from, "err", err)
		s.want(r.from, map[string]uint64{r.name: version}, pullJittered)
		return r, false
	}
	return received{rec: rec, kind: r.kind}, true
}

// noteDeltaQueued remembers the version a queued delta makes of name.
func (s *Syncer) noteDeltaQueued(name string, version uint64) {
	d := &s.deltas
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.queued == nil {
		d.queued = map[string]uint64{}
	}
	if len(d.queued) > 4096 {
		clear(d.queued)
	}
	d.queued[name] = version
}
