package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// File names inside the journal directory.
const (
	logName      = "log"
	snapName     = "snapshot"
	lockName     = "lock"
	tmpSuffix    = ".tmp"
	maxFrameData = 1<<32 - 1
)

// Options tunes a Journal. The zero value is usable: DefaultOptions'
// values replace zero fields.
type Options struct {
	// MaxEntryBytes bounds one entry; longer ones fail with ErrTooLarge.
	MaxEntryBytes int
	// CompactBytes and CompactRatio decide when Run folds the log into a
	// new snapshot: once the log holds at least CompactBytes of entries and
	// at least CompactRatio times the snapshot's size. Together they keep a
	// restart's work (snapshot plus log) within about (1+CompactRatio)
	// times the state and make compaction's cost per append O(the entry).
	CompactBytes int64
	CompactRatio float64
	// Fold builds a new snapshot: it is given the payload of the current
	// snapshot (nil if there is none) and every entry after it, oldest
	// first, and returns the payload that stands for all of them. It runs
	// on durable data only, in Checkpoint or Run, never concurrently with
	// itself; it must not call the Journal. Nil disables Checkpoint and
	// Run's compaction.
	Fold func(snapshot []byte, entries [][]byte) ([]byte, error)
	// Logger receives Run's compaction failures (Warn). Nil discards.
	Logger *slog.Logger
}

// DefaultOptions returns the values used for zero fields of Options.
func DefaultOptions() Options {
	return Options{
		MaxEntryBytes: 16 << 20,
		CompactBytes:  1 << 20,
		CompactRatio:  1,
	}
}

// TornTail describes an incomplete final batch that Open cut off the log:
// the remains of a write that was never acknowledged.
type TornTail struct {
	File   string
	Offset int64 // the log's new length
	Bytes  int64 // how many bytes were removed
	Reason string
}

// Record is one item of Replay: the snapshot (Snapshot true; Seq is the
// last sequence number it covers) or an entry (Seq is its own).
type Record struct {
	Seq      uint64
	Snapshot bool
	Data     []byte
}

// Stats are the journal's counters since Open.
type Stats struct {
	Appends       uint64 // Submit calls with at least one entry
	Entries       uint64 // entries made durable
	Batches       uint64 // log writes, each followed by one fsync
	Fsyncs        uint64 // every fsync: log batches, snapshots, directories
	Compactions   uint64 // snapshots installed
	LastSeq       uint64 // last durable sequence number
	SnapshotSeq   uint64 // last sequence number the snapshot covers
	LogBytes      int64  // size of the log file
	SnapshotBytes int64  // size of the snapshot file (0 if none)
}

// Journal is a write-ahead journal of opaque entries in one directory: a
// snapshot file and an append-only log. All methods are safe for
// concurrent use. Lock order: compactMu, then wmu, then mu.
type Journal struct {
	dir    string
	opts   Options
	logger *slog.Logger
	lock   *os.File
	torn   *TornTail
	kick   chan struct{} // wakes Run; capacity 1

	// compactMu serialises compactions, Replay and Close's release of the
	// files: while it is held the snapshot and log files are not replaced.
	compactMu sync.Mutex
	released  bool // files closed; guarded by compactMu

	// wmu is held by the batch leader for its write, fsync and undo, and by
	// a compaction while it replaces the log: one writer of the log file.
	wmu sync.Mutex

	mu      sync.Mutex
	cond    *sync.Cond // signalled when a batch completes; uses mu
	queue   []*Pending
	leading bool
	closed  bool
	broken  error
	log     *os.File // replaced only with wmu and mu held
	nextSeq uint64
	end     int64 // log length after the last durable batch
	stats   Stats
	buf     []byte // the leader's encode buffer; used with wmu held

	// Test seams for faults a real disk cannot produce on demand.
	syncFile     func(*os.File) error
	truncateFile func(*os.File, int64) error
}

// Open opens or creates the journal in dir, repairs a torn final write
// (see TornTail) and checks everything else; damage that is not a torn
// write fails with a *CorruptError. Only one Journal may have dir open at a
// time. The caller owns the Journal and must Close it.
func Open(dir string, opts Options) (*Journal, error) {
	d := DefaultOptions()
	if opts.MaxEntryBytes <= 0 || opts.MaxEntryBytes > maxFrameData {
		opts.MaxEntryBytes = d.MaxEntryBytes
	}
	if opts.CompactBytes <= 0 {
		opts.CompactBytes = d.CompactBytes
	}
	if opts.CompactRatio <= 0 {
		opts.CompactRatio = d.CompactRatio
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("journal: %s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("journal: lock %s: %w", dir, err)
	}
	j := &Journal{
		dir: dir, opts: opts, logger: logger.With("component", "journal"), lock: lock,
		kick: make(chan struct{}, 1), syncFile: (*os.File).Sync, truncateFile: (*os.File).Truncate,
	}
	j.cond = sync.NewCond(&j.mu)
	if err := j.load(); err != nil {
		if j.log != nil {
			j.log.Close()
		}
		lock.Close()
		return nil, err
	}
	return j, nil
}

func (j *Journal) path(name string) string { return filepath.Join(j.dir, name) }

// load brings the files to a consistent state and reads where the log
// ends. Temporary files are the remains of a compaction that never
// renamed them into place; they hold nothing the journal relies on.
func (j *Journal) load() error {
	for _, name := range []string{snapName + tmpSuffix, logName + tmpSuffix} {
		if err := os.Remove(j.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("journal: %w", err)
		}
	}
	snapSeq, hasSnap := uint64(0), false
	snapPath := j.path(snapName)
	if b, err := os.ReadFile(snapPath); err == nil {
		if snapSeq, _, err = decodeSnapshot(snapPath, b); err != nil {
			return err
		}
		hasSnap = true
		j.stats.SnapshotBytes = int64(len(b))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	logPath := j.path(logName)
	b, err := os.ReadFile(logPath)
	if errors.Is(err, fs.ErrNotExist) {
		if hasSnap {
			return &CorruptError{File: logPath, Reason: "the log is missing but a snapshot exists (the log is never removed)", Recovery: adviceLogHeader}
		}
		if err := j.createLog(1); err != nil {
			return err
		}
		// The directory itself may be new: make its entry durable too.
		if err := syncPath(filepath.Dir(j.dir)); err != nil {
			return fmt.Errorf("journal: fsync %s: %w", filepath.Dir(j.dir), err)
		}
		j.nextSeq, j.end = 1, logHeaderSize
		j.stats.LogBytes = logHeaderSize
		return nil
	}
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	info, err := scanLog(logPath, b, nil)
	if err != nil {
		return err
	}
	switch {
	case !hasSnap && info.base != 1:
		return &CorruptError{File: logPath, Offset: 8, Recovery: adviceSnap,
			Reason: fmt.Sprintf("the log starts at sequence number %d but there is no snapshot", info.base)}
	case hasSnap && info.base > snapSeq+1:
		return &CorruptError{File: logPath, Offset: 8, Recovery: adviceLog,
			Reason: fmt.Sprintf("the log starts at sequence number %d, after the snapshot's %d: entries are missing", info.base, snapSeq)}
	case hasSnap && info.lastSeq < snapSeq:
		return &CorruptError{File: logPath, Offset: info.end, Recovery: adviceLog,
			Reason: fmt.Sprintf("the log ends at sequence number %d, before the snapshot's %d", info.lastSeq, snapSeq)}
	}
	f, err := os.OpenFile(logPath, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.log = f
	if info.tornAt >= 0 {
		j.torn = &TornTail{File: logPath, Offset: info.tornAt, Bytes: int64(len(b)) - info.tornAt, Reason: info.tornReason}
		if err := f.Truncate(info.tornAt); err != nil {
			return fmt.Errorf("journal: cut the torn tail of %s: %w", logPath, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("journal: cut the torn tail of %s: %w", logPath, err)
		}
		j.stats.Fsyncs++
	}
	j.nextSeq, j.end = info.lastSeq+1, info.end
	j.stats.LastSeq, j.stats.SnapshotSeq, j.stats.LogBytes = info.lastSeq, snapSeq, info.end
	return nil
}

// createLog makes an empty log whose first entry will be base, durably,
// through a temporary file so that a log file always has its header.
func (j *Journal) createLog(base uint64) error {
	f, err := j.writeTemp(logName, appendLogHeader(nil, base))
	if err != nil {
		return err
	}
	if err := j.install(logName); err != nil {
		f.Close()
		return err
	}
	j.log = f
	return nil
}

// writeTemp writes data to name.tmp and fsyncs it; the open file is
// returned for further use. On error the temporary file is removed.
func (j *Journal) writeTemp(name string, data []byte) (*os.File, error) {
	tmp := j.path(name + tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if _, err = f.Write(data); err == nil {
		err = j.syncFile(f)
		j.countFsync()
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("journal: write %s: %w", tmp, err)
	}
	return f, nil
}

// install renames name.tmp over name. If the rename fails the temporary
// file is removed and nothing changed; if the directory fsync fails the
// rename happened but may not survive a crash.
func (j *Journal) install(name string) error {
	tmp := j.path(name + tmpSuffix)
	if err := os.Rename(tmp, j.path(name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("journal: %w", err)
	}
	if err := j.syncDir(); err != nil {
		return &dirSyncError{err}
	}
	return nil
}

// dirSyncError: a rename was done but the directory fsync failed.
type dirSyncError struct{ err error }

func (e *dirSyncError) Error() string { return "journal: fsync directory: " + e.err.Error() }
func (e *dirSyncError) Unwrap() error { return e.err }

func (j *Journal) syncDir() error {
	d, err := os.Open(j.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	j.countFsync()
	return j.syncFile(d)
}

func syncPath(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (j *Journal) countFsync() {
	j.mu.Lock()
	j.stats.Fsyncs++
	j.mu.Unlock()
}

// TornTail returns what Open cut off the end of the log, or nil if the log
// ended cleanly. The caller should log it: it is the trace of a crash.
func (j *Journal) TornTail() *TornTail { return j.torn }

// Stats returns the journal's counters. It is safe to call at any time.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.stats
}

// Pending is a submitted group of entries on its way to the disk.
type Pending struct {
	j       *Journal
	entries [][]byte
	done    bool // guarded by j.mu
	err     error
	seq     uint64 // sequence number of the last entry, once durable
}

// Submit queues entries to be appended in one atomic unit: after a crash
// either all of them are replayed or none. Submit does no I/O and does not
// wait: entries of successive Submit calls reach the log in call order, so
// a caller that changes its state under its own lock can Submit under that
// lock, release it, and then Wait. The entries must not be modified until
// the Pending completes. Queued entries are written by the next Wait (of
// any Pending) or by Close.
func (j *Journal) Submit(entries ...[]byte) *Pending {
	p := &Pending{j: j, entries: entries}
	for _, e := range entries {
		if len(e) > j.opts.MaxEntryBytes {
			p.done, p.err = true, fmt.Errorf("journal: entry of %d bytes: %w", len(e), ErrTooLarge)
			return p
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.closed:
		p.done, p.err = true, ErrClosed
	case j.broken != nil:
		p.done, p.err = true, j.broken
	case len(entries) == 0:
		p.done, p.seq = true, j.nextSeq-1
	default:
		j.stats.Appends++
		j.queue = append(j.queue, p)
	}
	return p
}

// Wait returns once p's entries are durable (written and fsynced), or with
// the error that made their batch fail, in which case none of them will
// be replayed, unless the error wraps ErrBroken: the batch that broke the
// journal may or may not be replayed after a reopen, as after a crash. Concurrent Waits share one write and one fsync: the first
// waiter writes every queued entry, later ones wait for it and the next
// batch's leader is chosen among them. It is safe to call Wait more than
// once and from several goroutines.
func (p *Pending) Wait() error {
	j := p.j
	j.mu.Lock()
	defer j.mu.Unlock()
	for !p.done {
		if j.leading {
			j.cond.Wait()
			continue
		}
		j.leadLocked()
	}
	return p.err
}

// Seq returns the sequence number of p's last entry once Wait returned
// nil (for an empty Submit, the last sequence number before it); 0 before.
func (p *Pending) Seq() uint64 {
	p.j.mu.Lock()
	defer p.j.mu.Unlock()
	return p.seq
}

// Append writes entries as one atomic unit and returns after they are
// durable: Submit followed by Wait.
func (j *Journal) Append(entries ...[]byte) error {
	return j.Submit(entries...).Wait()
}

// leadLocked writes the whole queue as one batch, completes its Pendings
// and returns the batch's error. It is called with mu held and no leader;
// it releases mu for the I/O.
func (j *Journal) leadLocked() error {
	j.leading = true
	batch := j.queue
	j.queue = nil
	j.mu.Unlock()
	j.wmu.Lock()
	seq, err := j.commit(batch)
	j.wmu.Unlock()
	j.mu.Lock()
	for _, p := range batch {
		p.done, p.err = true, err
		if err == nil {
			seq += uint64(len(p.entries))
			p.seq = seq - 1
		}
	}
	j.leading = false
	j.cond.Broadcast()
	return err
}

// commit writes batch at the end of the log and fsyncs it, under wmu. It
// returns the sequence number of the batch's first entry. If the write or
// the fsync fails the log is cut back to where the batch started; if that
// fails too, the journal is broken.
func (j *Journal) commit(batch []*Pending) (uint64, error) {
	j.mu.Lock()
	if err := j.broken; err != nil {
		j.mu.Unlock()
		return 0, err
	}
	if j.log == nil {
		j.mu.Unlock()
		return 0, ErrClosed
	}
	first, off, f := j.nextSeq, j.end, j.log
	j.mu.Unlock()

	total := 0
	for _, p := range batch {
		total += len(p.entries)
	}
	b := j.buf[:0]
	seq, idx := first, uint32(0)
	for _, p := range batch {
		for _, e := range p.entries {
			b = appendFrame(b, seq, idx, uint32(total), e)
			seq++
			idx++
		}
	}
	if cap(b) <= 1<<20 {
		j.buf = b
	}
	syncs := uint64(0)
	_, err := f.WriteAt(b, off)
	if err == nil {
		err = j.syncFile(f)
		syncs++
	}
	if err != nil {
		err = fmt.Errorf("journal: append to %s: %w", j.path(logName), bare(err))
		uerr := j.truncateFile(f, off)
		if uerr == nil {
			uerr = j.syncFile(f)
			syncs++
		}
		j.mu.Lock()
		j.stats.Fsyncs += syncs
		if uerr != nil {
			uerr = bare(uerr)
			j.broken = fmt.Errorf("%w: %v, and cutting it back to offset %d failed: %v; close and reopen the journal", ErrBroken, err, off, uerr)
			err = j.broken
		}
		j.mu.Unlock()
		return 0, err
	}
	j.mu.Lock()
	j.nextSeq = seq
	j.end = off + int64(len(b))
	j.stats.Entries += uint64(total)
	j.stats.Batches++
	j.stats.Fsyncs++
	j.stats.LastSeq = seq - 1
	j.stats.LogBytes = j.end
	due := j.compactDueLocked()
	j.mu.Unlock()
	if due {
		select {
		case j.kick <- struct{}{}:
		default:
		}
	}
	return first, nil
}

// Replay calls fn with the snapshot, if there is one, and then with every
// durable entry after it, in sequence order, reading the files as they
// are now. Record.Data may be kept. Appends may go on during Replay; the
// entries they add are not included. Replay stops at fn's first error and
// returns it.
func (j *Journal) Replay(fn func(Record) error) error {
	j.compactMu.Lock()
	defer j.compactMu.Unlock()
	if j.released {
		return ErrClosed
	}
	j.mu.Lock()
	f, end := j.log, j.end
	j.mu.Unlock()
	snapPath := j.path(snapName)
	var snapSeq uint64
	if b, err := os.ReadFile(snapPath); err == nil {
		seq, data, err := decodeSnapshot(snapPath, b)
		if err != nil {
			return err
		}
		snapSeq = seq
		if err := fn(Record{Seq: seq, Snapshot: true, Data: data}); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	b, err := j.readLog(f, end)
	if err != nil {
		return err
	}
	_, err = scanLog(j.path(logName), b, func(fr frame) error {
		if fr.seq <= snapSeq {
			return nil
		}
		return fn(Record{Seq: fr.seq, Data: fr.data})
	})
	return err
}

// Close writes whatever is still queued, waits for a compaction in
// progress, and releases the files; it returns the error of that last
// write, if any. Submit and Append fail with ErrClosed afterwards. It is
// safe to call Close more than once; later calls return nil.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	for j.leading {
		j.cond.Wait()
	}
	var err error
	if len(j.queue) > 0 {
		err = j.leadLocked()
	}
	j.mu.Unlock()

	j.compactMu.Lock()
	defer j.compactMu.Unlock()
	j.released = true
	j.wmu.Lock()
	j.mu.Lock()
	f := j.log
	j.log = nil
	j.mu.Unlock()
	j.wmu.Unlock()
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("journal: %w", cerr)
	}
	j.lock.Close()
	select { // let Run see the close
	case j.kick <- struct{}{}:
	default:
	}
	return err
}

// bare strips the *fs.PathError of an error of the open log file: the
// file was opened under its temporary name, which the message must not
// show.
func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
