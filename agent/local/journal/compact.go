package journal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// compactRetry is how long Run waits after a failed compaction before it
// tries again (a full disk should not cost a snapshot write per append).
const compactRetry = 10 * time.Second

// compactDueLocked reports whether the log has grown enough to be folded.
func (j *Journal) compactDueLocked() bool {
	if j.opts.Fold == nil || j.stats.LastSeq == j.stats.SnapshotSeq {
		return false
	}
	logged := j.stats.LogBytes - logHeaderSize
	return logged >= j.opts.CompactBytes && float64(logged) >= j.opts.CompactRatio*float64(j.stats.SnapshotBytes)
}

// Run compacts the journal in the background with Options.Fold whenever
// the log grows past Options.CompactBytes and Options.CompactRatio. It
// returns nil when ctx is done or the journal is closed, after the
// compaction in progress (if any) has finished; a failed compaction is
// logged and retried later. Without Options.Fold, Run only waits for ctx.
// At most one Run should be running per Journal.
func (j *Journal) Run(ctx context.Context) error {
	retry := time.NewTimer(0)
	defer retry.Stop()
	<-retry.C
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-j.kick:
		case <-retry.C:
		}
		j.mu.Lock()
		closed, due := j.closed, j.compactDueLocked()
		j.mu.Unlock()
		if closed {
			return nil
		}
		if !due {
			continue
		}
		if err := j.Checkpoint(); err != nil {
			if errors.Is(err, ErrClosed) {
				return nil
			}
			j.logger.Warn("compaction failed; the log keeps growing until it succeeds", "err", err, "retry_seconds", compactRetry.Seconds())
			retry.Reset(compactRetry)
		}
	}
}

// Checkpoint folds the log into a new snapshot now with Options.Fold and
// starts a fresh log holding only the entries appended meanwhile. Appends
// go on while Fold runs and while the snapshot is written; they wait only
// while the log file is replaced. It fails with ErrNoFold without
// Options.Fold.
func (j *Journal) Checkpoint() error {
	if j.opts.Fold == nil {
		return ErrNoFold
	}
	j.compactMu.Lock()
	defer j.compactMu.Unlock()
	if j.released {
		return ErrClosed
	}
	j.mu.Lock()
	f, end, snapSeq, last := j.log, j.end, j.stats.SnapshotSeq, j.stats.LastSeq
	j.mu.Unlock()
	if last == snapSeq {
		return nil
	}
	var snap []byte
	if b, err := os.ReadFile(j.path(snapName)); err == nil {
		var seq uint64
		if seq, snap, err = decodeSnapshot(j.path(snapName), b); err != nil {
			return err
		}
		if seq != snapSeq {
			return fmt.Errorf("journal: the snapshot covers sequence number %d, want %d: it was replaced behind the journal's back", seq, snapSeq)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	b, err := j.readLog(f, end)
	if err != nil {
		return err
	}
	var entries [][]byte
	if _, err := scanLog(j.path(logName), b, func(fr frame) error {
		if fr.seq > snapSeq {
			entries = append(entries, fr.data)
		}
		return nil
	}); err != nil {
		return err
	}
	data, err := j.opts.Fold(snap, entries)
	if err != nil {
		return fmt.Errorf("journal: fold: %w", err)
	}
	return j.compactLocked(last, end, data)
}

// Compact installs snapshot as the state after every entry up to seq and
// starts a fresh log holding the entries after seq. The caller promises
// that snapshot is exactly that state; seq must lie between the current
// snapshot's sequence number and the last durable one (a Pending's Seq).
// Appends may go on meanwhile; they wait only while the log file is
// replaced. A crash at any point leaves files that replay to the same
// entries.
func (j *Journal) Compact(seq uint64, snapshot []byte) error {
	j.compactMu.Lock()
	defer j.compactMu.Unlock()
	if j.released {
		return ErrClosed
	}
	j.mu.Lock()
	f, end, snapSeq, last := j.log, j.end, j.stats.SnapshotSeq, j.stats.LastSeq
	j.mu.Unlock()
	if seq < snapSeq || seq > last {
		return fmt.Errorf("journal: compact at sequence number %d: outside the durable range %d..%d", seq, snapSeq, last)
	}
	from := end
	if seq < last {
		// The log is cut at the start of the batch holding seq+1, so
		// that every batch stays whole; replay skips what the snapshot
		// covers.
		b, err := j.readLog(f, end)
		if err != nil {
			return err
		}
		from, err = batchStart(b, seq+1)
		if err != nil {
			return err
		}
	}
	return j.compactLocked(seq, from, snapshot)
}

// batchStart returns the offset of the first frame of the batch holding
// sequence number seq in the log image b.
func batchStart(b []byte, seq uint64) (int64, error) {
	start := int64(-1)
	errFound := errors.New("found")
	_, err := scanLog("", b, func(fr frame) error {
		if fr.idx == 0 {
			start = fr.off
		}
		if fr.seq == seq {
			return errFound
		}
		return nil
	})
	if !errors.Is(err, errFound) {
		return 0, fmt.Errorf("journal: entry %d not found in the log: %v", seq, err)
	}
	return start, nil
}

// readLog reads the first end bytes of the log.
func (j *Journal) readLog(f *os.File, end int64) ([]byte, error) {
	b := make([]byte, end)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("journal: read %s: %w", j.path(logName), err)
	}
	return b, nil
}

// compactLocked, with compactMu held, writes the snapshot covering seq and
// then replaces the log by one that starts at offset from of the current
// log (a batch boundary at or before the entry seq+1).
//
// Crash safety: the snapshot is renamed into place (after its fsync)
// before the log is touched, and the old log still holds every entry
// after seq, so "new snapshot + old log" replays the same entries as
// "new snapshot + new log"; replay skips entries the snapshot covers.
func (j *Journal) compactLocked(seq uint64, from int64, data []byte) error {
	j.mu.Lock()
	broken := j.broken
	j.mu.Unlock()
	if broken != nil {
		return broken
	}
	sf, err := j.writeTemp(snapName, encodeSnapshot(seq, data))
	if err != nil {
		return err
	}
	sf.Close()
	err = j.install(snapName)
	var dse *dirSyncError
	if err != nil && !errors.As(err, &dse) {
		return err
	}
	// The new snapshot is in place (perhaps not durably, if err is set):
	// later folds must start from it.
	j.mu.Lock()
	j.stats.SnapshotSeq = seq
	j.stats.SnapshotBytes = int64(snapHeaderSize + len(data))
	j.stats.Compactions++
	j.mu.Unlock()
	if err != nil {
		return err
	}

	j.wmu.Lock()
	defer j.wmu.Unlock()
	j.mu.Lock()
	old, end, next := j.log, j.end, j.nextSeq
	j.mu.Unlock()
	tail := make([]byte, end-from)
	if _, err := old.ReadAt(tail, from); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("journal: read %s: %w", j.path(logName), err)
	}
	base := next
	if len(tail) > 0 {
		fr, why := parseFrame(tail, 0)
		if why != "" {
			return fmt.Errorf("journal: compact: %s at offset %d of %s", why, from, j.path(logName))
		}
		base = fr.seq
	}
	nf, err := j.writeTemp(logName, append(appendLogHeader(nil, base), tail...))
	if err != nil {
		return err
	}
	if err := j.install(logName); err != nil {
		if errors.As(err, &dse) {
			// The new log is in place but may not survive a crash;
			// appending to either file could lose acknowledged entries.
			j.mu.Lock()
			j.broken = fmt.Errorf("%w: %v; close and reopen the journal", ErrBroken, err)
			j.mu.Unlock()
		}
		nf.Close()
		return err
	}
	j.mu.Lock()
	j.log = nf
	j.end = logHeaderSize + int64(len(tail))
	j.stats.LogBytes = j.end
	j.mu.Unlock()
	old.Close()
	return nil
}
