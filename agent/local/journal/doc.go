// Package journal is a write-ahead journal of opaque entries ([]byte) in
// one directory, so that a durable change costs O(the change) instead of
// a rewrite of the whole state. It knows nothing about what the entries
// mean: the caller encodes its changes as entries and replays them.
//
// It imports the standard library only and must not import any Chorus
// package.
//
// # Files
//
// A directory holds three files (all integers little-endian, checksums
// CRC-32C, Castagnoli):
//
//	snapshot  "CJSN" | version u32 | seq u64 | length u64 | crc u32 | payload
//	          The state after every entry up to seq. crc covers the 24 header
//	          bytes before it and the payload. Absent until the first compaction.
//	log       "CJLG" | version u32 | base u64 | crc u32, then frames:
//	          crc u32 | length u32 | seq u64 | index u32 | count u32 | payload
//	          crc covers the rest of the frame header and the payload.
//	lock      held with flock while a Journal has the directory open.
//
// Sequence numbers start at 1 and grow by one per entry, across
// compactions and restarts. Every write of the log is a batch: the entries
// of every Submit queued at that moment, numbered index 0..count-1 of
// count. A batch is the unit of atomicity: replay delivers a batch only
// if all its frames are intact, so the entries of one Submit are replayed
// all together or not at all.
//
// # Durability
//
// Wait (and Append) return only after the batch was written and fsynced.
// Concurrent writers share one write and one fsync (group commit). When a
// write or fsync fails, every caller of that batch gets the error and the
// log is cut back to where the batch started and fsynced, so nothing of
// it is replayed; the same sequence numbers are used again by the next
// batch. If cutting back fails too, the journal is broken: every later
// write fails with ErrBroken until it is closed and reopened, and the
// batch that broke it may or may not be replayed then, like a write cut
// short by a crash. A full disk
// is such a failed write: the batch fails, the journal stays usable, and
// later writes succeed once there is space again.
//
// # Recovery rules (Open)
//
// Only the last batch of the log can be torn: a batch is written only
// after the one before it was fsynced, and a failed batch is cut away
// before the next one is written. So Open treats damage like this:
//
//   - The log ends in an incomplete batch (a frame cut short, or the
//     batch's last frames missing), or a frame fails its checksum and no
//     intact frame of a later batch follows it: a torn final write, which
//     was never acknowledged. Open cuts the log back to the start of that
//     batch, fsyncs it and reports it through TornTail. A crash can leave
//     any part of the unsynced batch unwritten (pages reach the disk in any
//     order), so intact frames of the same batch after the damage do not
//     make it corruption; damage confined to a batch that was in fact
//     acknowledged (media decay of the final batch) is indistinguishable
//     from this case and is handled the same way.
//   - A damaged frame followed by an intact frame of a later batch, a
//     frame with the wrong sequence number or batch position, a damaged or
//     short log header, an empty, short or checksum-failing snapshot, a
//     snapshot with its log missing, or a log that does not reach from the
//     snapshot onwards: Open fails with a *CorruptError that names the
//     file, the offset and how to recover. None of these can come from a
//     crash of this code, so nothing is skipped silently.
//   - Leftover "snapshot.tmp" and "log.tmp" files are the remains of a
//     compaction that never renamed them into place and are removed.
//
// # Compaction
//
// Compaction writes a snapshot covering the entries up to a sequence
// number N (temporary file, fsync, rename, fsync of the directory) and
// then replaces the log by one that starts at the batch holding N+1 (same
// steps). Until the log is replaced, the old log still holds every entry
// after N, and replay skips entries the snapshot covers, so a crash at
// any step replays exactly the acknowledged entries. Appends continue
// while the snapshot is built and written; they wait only while the log's
// tail is copied and renamed.
//
// The snapshot comes either from the caller (Compact, for a caller that
// knows the state as of a sequence number, e.g. right after Replay) or
// from Options.Fold, which the journal applies to the durable snapshot and
// entries (Checkpoint, and Run in the background once the log outgrows
// Options.CompactBytes and Options.CompactRatio times the snapshot). Fold
// sees only durable data, so the caller never has to capture a state
// consistent with in-flight writes.
package journal
