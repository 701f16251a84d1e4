package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"path/filepath"
	"testing"
)

// FuzzReplay decodes arbitrary snapshot and log bytes as Open and Replay
// do. It must never panic, never deliver an entry that fails its
// checksum or breaks the sequence, and cutting a reported torn tail must
// leave a log that scans cleanly to the same entries.
func FuzzReplay(f *testing.F) {
	dir := f.TempDir()
	j, err := Open(dir, Options{})
	if err != nil {
		f.Fatal(err)
	}
	j.Append([]byte("a"))
	j.Append([]byte("b"), []byte("c"), []byte{})
	j.Append(bytes.Repeat([]byte{0xff}, 40))
	if err := j.Compact(2, encodeList([][]byte{[]byte("a"), []byte("b")})); err != nil {
		f.Fatal(err)
	}
	j.Append([]byte("d"))
	j.Close()
	snap := readFile(f, filepath.Join(dir, snapName))
	log := readFile(f, filepath.Join(dir, logName))
	f.Add(snap, log)
	f.Add([]byte{}, log[:len(log)-3])
	f.Add(snap[:10], appendLogHeader(nil, 1))
	f.Add(encodeSnapshot(0, nil), append(appendLogHeader(nil, 1), make([]byte, 40)...))
	f.Add([]byte(nil), appendFrame(appendFrame(appendLogHeader(nil, 7), 7, 0, 2, []byte("x")), 8, 1, 2, []byte("y")))

	f.Fuzz(func(t *testing.T, snap, log []byte) {
		if len(snap) > 0 {
			if seq, data, err := decodeSnapshot("snapshot", snap); err == nil {
				want := binary.LittleEndian.Uint32(snap[24:])
				got := crc32.Update(crc32.Checksum(snap[:24], castagnoli), castagnoli, data)
				if got != want || seq != binary.LittleEndian.Uint64(snap[8:]) {
					t.Fatalf("accepted a snapshot that fails its checksum")
				}
			} else if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("snapshot error %v is not ErrCorrupt", err)
			}
		}
		var seen []frame
		info, err := scanLog("log", log, func(fr frame) error {
			again, why := parseFrame(log, fr.off)
			if why != "" || again.seq != fr.seq || !bytes.Equal(again.data, fr.data) {
				t.Fatalf("delivered entry %d at offset %d does not check: %s", fr.seq, fr.off, why)
			}
			if len(seen) > 0 && fr.seq != seen[len(seen)-1].seq+1 {
				t.Fatalf("entry %d follows %d", fr.seq, seen[len(seen)-1].seq)
			}
			seen = append(seen, fr)
			return nil
		})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("log error %v is not ErrCorrupt", err)
			}
			return
		}
		if info.end > int64(len(log)) || (len(seen) > 0 && seen[len(seen)-1].end != info.end) {
			t.Fatalf("end %d does not follow the last entry", info.end)
		}
		if info.tornAt < 0 {
			if info.end != int64(len(log)) {
				t.Fatalf("clean log of %d bytes ends at %d", len(log), info.end)
			}
			return
		}
		if info.tornAt != info.end {
			t.Fatalf("torn at %d but the whole batches end at %d", info.tornAt, info.end)
		}
		again, err := scanLog("log", log[:info.tornAt], nil)
		if err != nil || again.tornAt >= 0 || again.lastSeq != info.lastSeq {
			t.Fatalf("the log cut at its torn tail does not scan cleanly: %+v, %v", again, err)
		}
	})
}
