package journal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func removeFile(t testing.TB, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// wantCorrupt opens dir and expects a *CorruptError about file; it
// returns the error.
func wantCorrupt(t testing.TB, dir, file string) *CorruptError {
	t.Helper()
	j, err := Open(dir, Options{})
	if err == nil {
		got, _ := replayList(j)
		j.Close()
		t.Fatalf("Open succeeded on a damaged %s (replays %q)", file, got)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v, want a *CorruptError", err)
	}
	if ce.File != filepath.Join(dir, file) || ce.Recovery == "" {
		t.Fatalf("error names %q (recovery %q), want %q", ce.File, ce.Recovery, filepath.Join(dir, file))
	}
	return ce
}

// history is a closed journal directory and what it was built from.
type history struct {
	dir     string
	batches [][][]byte // entries of each batch, in order
	ends    []int64    // log offset after each batch
	frames  []int64    // offset of every frame
}

func (h history) entriesUpTo(n int) [][]byte {
	var list [][]byte
	for _, b := range h.batches[:n] {
		list = append(list, b...)
	}
	return list
}

// buildHistory appends batches of 1, 2, 1, 3 and 2 entries.
func buildHistory(t *testing.T) history {
	t.Helper()
	h := history{dir: t.TempDir()}
	j := open(t, h.dir, Options{})
	n := 0
	for _, size := range []int{1, 2, 1, 3, 2} {
		var b [][]byte
		for i := 0; i < size; i++ {
			b = append(b, entry(n))
			n++
		}
		if err := j.Append(b...); err != nil {
			t.Fatal(err)
		}
		h.batches = append(h.batches, b)
		h.ends = append(h.ends, j.Stats().LogBytes)
	}
	j.Close()
	if _, err := scanLog("", readFile(t, filepath.Join(h.dir, logName)), func(f frame) error {
		h.frames = append(h.frames, f.off)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestTornTailAtEveryOffset cuts the log at every length, as a crash in
// the middle of a write would: Open replays the batches that are whole,
// reports and removes the rest, and the journal takes new appends.
func TestTornTailAtEveryOffset(t *testing.T) {
	h := buildHistory(t)
	full := readFile(t, filepath.Join(h.dir, logName))
	for cut := 0; cut < len(full); cut++ {
		dir := copyDir(t, h.dir)
		writeFile(t, filepath.Join(dir, logName), full[:cut])
		if cut < logHeaderSize {
			if ce := wantCorrupt(t, dir, logName); ce.Offset != 0 {
				t.Fatalf("cut %d: offset %d, want 0", cut, ce.Offset)
			}
			continue
		}
		whole, start := 0, int64(logHeaderSize)
		for whole < len(h.ends) && h.ends[whole] <= int64(cut) {
			start = h.ends[whole]
			whole++
		}
		j := open(t, dir, Options{})
		tt := j.TornTail()
		switch {
		case int64(cut) == start && tt != nil:
			t.Fatalf("cut %d at a batch boundary reported torn: %+v", cut, tt)
		case int64(cut) > start && (tt == nil || tt.Offset != start || tt.Bytes != int64(cut)-start):
			t.Fatalf("cut %d: torn tail %+v, want offset %d", cut, tt, start)
		}
		want := h.entriesUpTo(whole)
		mustEqual(t, state(t, j), want)
		if err := j.Append([]byte("new")); err != nil {
			t.Fatal(err)
		}
		j = reopen(t, j, Options{})
		if j.TornTail() != nil {
			t.Fatalf("cut %d: torn again after the repair", cut)
		}
		mustEqual(t, state(t, j), append(want, []byte("new")))
		j.Close()
	}
}

// TestDamagedLastBatch flips every byte of the last batch: that is a torn
// final write, removed and reported.
func TestDamagedLastBatch(t *testing.T) {
	h := buildHistory(t)
	full := readFile(t, filepath.Join(h.dir, logName))
	start := h.ends[len(h.ends)-2]
	for off := start; off < int64(len(full)); off++ {
		dir := copyDir(t, h.dir)
		b := append([]byte(nil), full...)
		b[off] ^= 0x5a
		writeFile(t, filepath.Join(dir, logName), b)
		j := open(t, dir, Options{})
		if tt := j.TornTail(); tt == nil || tt.Offset != start {
			t.Fatalf("byte %d: torn tail %+v, want offset %d", off, tt, start)
		}
		mustEqual(t, state(t, j), h.entriesUpTo(len(h.batches)-1))
		j.Close()
	}
}

// TestDamagedEarlierBatch flips every byte before the last batch: Open
// refuses, naming the log and the damaged frame's offset.
func TestDamagedEarlierBatch(t *testing.T) {
	h := buildHistory(t)
	full := readFile(t, filepath.Join(h.dir, logName))
	last := h.ends[len(h.ends)-2]
	for off := int64(0); off < last; off++ {
		dir := copyDir(t, h.dir)
		b := append([]byte(nil), full...)
		b[off] ^= 0x01
		writeFile(t, filepath.Join(dir, logName), b)
		ce := wantCorrupt(t, dir, logName)
		want := int64(-1)
		if off < logHeaderSize {
			want = ce.Offset // header: any offset inside it
			if ce.Offset >= logHeaderSize {
				t.Fatalf("byte %d: offset %d outside the header", off, ce.Offset)
			}
		} else {
			for _, f := range h.frames {
				if f <= off {
					want = f
				}
			}
		}
		if ce.Offset != want {
			t.Fatalf("byte %d: error at offset %d, want the frame at %d: %v", off, ce.Offset, want, ce)
		}
	}
}

// TestDamagedSnapshot cuts and flips the snapshot at every offset: Open
// refuses every time.
func TestDamagedSnapshot(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{})
	var want [][]byte
	for i := 0; i < 5; i++ {
		want = append(want, entry(i))
		if err := j.Append(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Compact(5, encodeList(want)); err != nil {
		t.Fatal(err)
	}
	j.Close()
	snap := readFile(t, filepath.Join(dir, snapName))
	for cut := 0; cut < len(snap); cut++ {
		d := copyDir(t, dir)
		writeFile(t, filepath.Join(d, snapName), snap[:cut])
		wantCorrupt(t, d, snapName)
	}
	for off := range snap {
		d := copyDir(t, dir)
		b := append([]byte(nil), snap...)
		b[off] ^= 0x80
		writeFile(t, filepath.Join(d, snapName), b)
		wantCorrupt(t, d, snapName)
	}
	mustEqual(t, state(t, open(t, dir, Options{})), want)
}
