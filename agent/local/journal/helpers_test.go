package journal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// The tests' state is the list of every entry ever appended; a snapshot
// is that list, each entry prefixed by its length.

func encodeList(list [][]byte) []byte {
	var b []byte
	for _, e := range list {
		b = binary.AppendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	return b
}

func decodeList(b []byte) ([][]byte, error) {
	var list [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, fmt.Errorf("bad list encoding")
		}
		list = append(list, b[k:k+int(n)])
		b = b[k+int(n):]
	}
	return list, nil
}

func foldList(snap []byte, entries [][]byte) ([]byte, error) {
	list, err := decodeList(snap)
	if err != nil {
		return nil, err
	}
	return encodeList(append(list, entries...)), nil
}

// open opens dir and closes the journal at the end of the test.
func open(t testing.TB, dir string, opts Options) *Journal {
	t.Helper()
	j, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// state replays j into the list of entries it stands for, checking that
// sequence numbers follow each other.
func state(t testing.TB, j *Journal) [][]byte {
	t.Helper()
	list, err := replayList(j)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	return list
}

func replayList(j *Journal) ([][]byte, error) {
	var list [][]byte
	var last uint64
	first := true
	err := j.Replay(func(r Record) error {
		if r.Snapshot {
			l, err := decodeList(r.Data)
			if err != nil {
				return err
			}
			list = append(list, l...)
		} else {
			if !first && r.Seq != last+1 {
				return fmt.Errorf("entry %d follows %d", r.Seq, last)
			}
			list = append(list, r.Data)
		}
		first, last = false, r.Seq
		return nil
	})
	return list, err
}

// reopen closes j and opens its directory again.
func reopen(t testing.TB, j *Journal, opts Options) *Journal {
	t.Helper()
	if err := j.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return open(t, j.dir, opts)
}

func entry(i int) []byte { return []byte(fmt.Sprintf("entry-%04d", i)) }

func equalLists(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func mustEqual(t testing.TB, got, want [][]byte) {
	t.Helper()
	if !equalLists(got, want) {
		t.Fatalf("replayed %d entries %q\nwant %d entries %q", len(got), got, len(want), want)
	}
}

// copyDir copies the journal files of src into a new directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	for _, name := range []string{logName, snapName, logName + tmpSuffix, snapName + tmpSuffix} {
		copyFile(t, filepath.Join(src, name), filepath.Join(dst, name))
	}
	return dst
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
