package journal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// On-disk layout; doc.go describes it for readers. All integers are
// little-endian.
const (
	logMagic      = "CJLG"
	snapMagic     = "CJSN"
	formatVersion = 1

	// log header: magic[4] version u32 base u64 crc u32 (over bytes 0..15)
	logHeaderSize = 20
	// frame header: crc u32 (over bytes 4..23 and the payload) length u32
	// seq u64 index u32 count u32
	frameHeaderSize = 24
	// snapshot header: magic[4] version u32 seq u64 length u64 crc u32
	// (over bytes 0..23 and the payload)
	snapHeaderSize = 28
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Recovery advice carried by CorruptError.
const (
	adviceLog = "the entries before that offset are intact and later ones cannot be trusted: " +
		"restore the directory from a backup, or keep the intact prefix by truncating the file to that offset " +
		"(truncate -s OFFSET FILE; this drops every later entry, acknowledged ones included), " +
		"or move the directory away to start with an empty state"
	adviceLogHeader = "the log cannot be read at all: restore the directory from a backup, " +
		"or move the directory away to start with an empty state"
	adviceSnap = "the snapshot holds the state up to its sequence number and the log does not repeat it: " +
		"restore the directory from a backup, or move the directory away to start with an empty state"
)

// frame is one decoded log entry.
type frame struct {
	seq   uint64
	idx   uint32 // position in its batch
	count uint32 // entries in its batch
	off   int64  // offset of the frame header
	end   int64  // offset after the payload
	data  []byte // aliases the decoded buffer
}

// first is the sequence number of the first entry of the frame's batch.
func (f frame) first() uint64 { return f.seq - uint64(f.idx) }

// appendLogHeader appends a log header announcing base as the first
// sequence number of the log.
func appendLogHeader(b []byte, base uint64) []byte {
	start := len(b)
	b = append(b, logMagic...)
	b = binary.LittleEndian.AppendUint32(b, formatVersion)
	b = binary.LittleEndian.AppendUint64(b, base)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// appendFrame appends one framed entry.
func appendFrame(b []byte, seq uint64, idx, count uint32, data []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = binary.LittleEndian.AppendUint32(b, idx)
	b = binary.LittleEndian.AppendUint32(b, count)
	b = append(b, data...)
	binary.LittleEndian.PutUint32(b[start:], crc32.Checksum(b[start+4:], castagnoli))
	return b
}

// encodeSnapshot returns the whole snapshot file for data covering every
// entry up to seq.
func encodeSnapshot(seq uint64, data []byte) []byte {
	b := make([]byte, 0, snapHeaderSize+len(data))
	b = append(b, snapMagic...)
	b = binary.LittleEndian.AppendUint32(b, formatVersion)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(data)))
	crc := crc32.Update(crc32.Checksum(b, castagnoli), castagnoli, data)
	b = binary.LittleEndian.AppendUint32(b, crc)
	return append(b, data...)
}

// decodeSnapshot checks a whole snapshot file and returns the sequence
// number it covers and its payload (aliasing b). Any damage is an error:
// snapshots are written to a temporary file and renamed into place, so a
// short or empty snapshot is never the result of a crash.
func decodeSnapshot(file string, b []byte) (uint64, []byte, error) {
	bad := func(off int64, format string, args ...any) error {
		return &CorruptError{File: file, Offset: off, Reason: fmt.Sprintf(format, args...), Recovery: adviceSnap}
	}
	switch {
	case len(b) == 0:
		return 0, nil, bad(0, "the snapshot file is empty")
	case len(b) < snapHeaderSize:
		return 0, nil, bad(int64(len(b)), "the snapshot header is cut short (%d of %d bytes)", len(b), snapHeaderSize)
	case string(b[:4]) != snapMagic:
		return 0, nil, bad(0, "not a snapshot file (magic %q)", b[:4])
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != formatVersion {
		return 0, nil, bad(4, "unknown format version %d", v)
	}
	seq := binary.LittleEndian.Uint64(b[8:])
	n := binary.LittleEndian.Uint64(b[16:])
	if n != uint64(len(b)-snapHeaderSize) {
		return 0, nil, bad(16, "the header announces %d payload bytes but the file holds %d", n, len(b)-snapHeaderSize)
	}
	want := binary.LittleEndian.Uint32(b[24:])
	got := crc32.Update(crc32.Checksum(b[:24], castagnoli), castagnoli, b[snapHeaderSize:])
	if got != want {
		return 0, nil, bad(0, "checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	return seq, b[snapHeaderSize:], nil
}

// parseFrame decodes the frame at off, or says why there is no intact
// frame there.
func parseFrame(b []byte, off int64) (frame, string) {
	rest := b[off:]
	if len(rest) < frameHeaderSize {
		return frame{}, fmt.Sprintf("entry header cut short (%d of %d bytes)", len(rest), frameHeaderSize)
	}
	n := int64(binary.LittleEndian.Uint32(rest[4:]))
	if n > int64(len(rest)-frameHeaderSize) {
		return frame{}, fmt.Sprintf("entry of %d bytes cut short (%d bytes left)", n, len(rest)-frameHeaderSize)
	}
	want := binary.LittleEndian.Uint32(rest)
	if got := crc32.Checksum(rest[4:frameHeaderSize+n], castagnoli); got != want {
		return frame{}, fmt.Sprintf("entry checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	f := frame{
		seq:   binary.LittleEndian.Uint64(rest[8:]),
		idx:   binary.LittleEndian.Uint32(rest[16:]),
		count: binary.LittleEndian.Uint32(rest[20:]),
		off:   off,
		end:   off + frameHeaderSize + n,
	}
	f.data = rest[frameHeaderSize : frameHeaderSize+n : frameHeaderSize+n]
	return f, ""
}

// logInfo is what a scan of a log learned.
type logInfo struct {
	base    uint64 // first sequence number the log holds
	lastSeq uint64 // last sequence number of a complete batch; base-1 if none
	end     int64  // offset after the last complete batch
	// tornAt >= 0 when the log ends in a torn batch: the offset where the
	// log must be cut, with the reason.
	tornAt     int64
	tornReason string
}

// scanLog checks a whole log image and calls fn (if not nil) for every
// entry of every complete batch, in order. The rules are those of doc.go:
// a damaged or incomplete final batch is a torn write, reported in the
// result; any other damage is a *CorruptError. An error returned by fn
// stops the scan and is returned as is.
func scanLog(file string, b []byte, fn func(frame) error) (logInfo, error) {
	info := logInfo{tornAt: -1}
	bad := func(off int64, advice, format string, args ...any) error {
		return &CorruptError{File: file, Offset: off, Reason: fmt.Sprintf(format, args...), Recovery: advice}
	}
	if len(b) < logHeaderSize {
		return info, bad(0, adviceLogHeader, "the log header is cut short (%d of %d bytes)", len(b), logHeaderSize)
	}
	if string(b[:4]) != logMagic {
		return info, bad(0, adviceLogHeader, "not a log file (magic %q)", b[:4])
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != formatVersion {
		return info, bad(4, adviceLogHeader, "unknown format version %d", v)
	}
	if got, want := crc32.Checksum(b[:16], castagnoli), binary.LittleEndian.Uint32(b[16:]); got != want {
		return info, bad(0, adviceLogHeader, "log header checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	info.base = binary.LittleEndian.Uint64(b[8:])
	if info.base == 0 {
		return info, bad(8, adviceLogHeader, "the log header announces sequence number 0")
	}
	info.lastSeq = info.base - 1
	info.end = logHeaderSize

	var batch []frame
	next := info.base
	off := int64(logHeaderSize)
	for off < int64(len(b)) {
		f, why := parseFrame(b, off)
		if why != "" {
			first, start := next, off
			if len(batch) > 0 {
				first, start = batch[0].seq, batch[0].off
			}
			if later, ok := laterBatch(b, off+1, first); ok {
				return info, bad(off, adviceLog, "%s, but an intact later batch starts at offset %d", why, later)
			}
			info.tornAt, info.tornReason = start, fmt.Sprintf("%s at offset %d", why, off)
			return info, nil
		}
		switch {
		case f.seq != next:
			return info, bad(off, adviceLog, "entry has sequence number %d, want %d", f.seq, next)
		case f.count == 0 || f.idx >= f.count:
			return info, bad(off, adviceLog, "entry claims to be number %d of a batch of %d", f.idx, f.count)
		case len(batch) == 0 && f.idx != 0:
			return info, bad(off, adviceLog, "a batch starts with its entry number %d", f.idx)
		case len(batch) > 0 && (f.count != batch[0].count || f.idx != uint32(len(batch))):
			return info, bad(off, adviceLog, "entry number %d of a batch of %d follows entry %d of a batch of %d",
				f.idx, f.count, len(batch)-1, batch[0].count)
		}
		batch = append(batch, f)
		next++
		off = f.end
		if f.idx == f.count-1 {
			if fn != nil {
				for _, e := range batch {
					if err := fn(e); err != nil {
						return info, err
					}
				}
			}
			info.lastSeq, info.end = f.seq, off
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		info.tornAt = batch[0].off
		info.tornReason = fmt.Sprintf("the last batch holds %d of its %d entries", len(batch), batch[0].count)
	}
	return info, nil
}

// laterBatch looks from offset from on for an intact frame of a batch that
// started after sequence number first, which would prove that the damage
// before it is not a torn final write. Frames of the batch starting at
// first (the torn one) are skipped whole.
func laterBatch(b []byte, from int64, first uint64) (int64, bool) {
	for p := from; p+frameHeaderSize <= int64(len(b)); {
		h := b[p:]
		n := int64(binary.LittleEndian.Uint32(h[4:]))
		seq := binary.LittleEndian.Uint64(h[8:])
		idx := binary.LittleEndian.Uint32(h[16:])
		count := binary.LittleEndian.Uint32(h[20:])
		// Cheap tests first: most offsets are not frame starts.
		if idx >= count || uint64(idx) > seq || seq-uint64(idx) < first || n > int64(len(h)-frameHeaderSize) {
			p++
			continue
		}
		f, why := parseFrame(b, p)
		switch {
		case why != "":
			p++
		case f.first() > first:
			return p, true
		default: // part of the torn batch
			p = f.end
		}
	}
	return 0, false
}
