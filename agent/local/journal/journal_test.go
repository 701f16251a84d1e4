package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestAppendReplay(t *testing.T) {
	cases := []struct {
		name    string
		appends [][][]byte // one inner slice per Append
	}{
		{"nothing", nil},
		{"one entry", [][][]byte{{[]byte("a")}}},
		{"empty entry", [][][]byte{{{}}, {[]byte("b")}}},
		{"several per append", [][][]byte{{[]byte("a"), []byte("b"), []byte("c")}, {[]byte("d")}}},
		{"large entry", [][][]byte{{make([]byte, 1<<20)}, {[]byte("x")}}},
		{"many appends", func() [][][]byte {
			var a [][][]byte
			for i := 0; i < 200; i++ {
				a = append(a, [][]byte{entry(i)})
			}
			return a
		}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := open(t, t.TempDir(), Options{})
			var want [][]byte
			for _, a := range tc.appends {
				if err := j.Append(a...); err != nil {
					t.Fatal(err)
				}
				want = append(want, a...)
			}
			mustEqual(t, state(t, j), want)
			j = reopen(t, j, Options{})
			if j.TornTail() != nil {
				t.Fatalf("clean log reported torn: %+v", j.TornTail())
			}
			mustEqual(t, state(t, j), want)
			if got := j.Stats().LastSeq; got != uint64(len(want)) {
				t.Fatalf("LastSeq = %d, want %d", got, len(want))
			}
			// Sequence numbers continue after a reopen.
			if err := j.Append([]byte("after")); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, state(t, reopen(t, j, Options{})), append(want, []byte("after")))
		})
	}
}

func TestSubmitKeepsCallOrder(t *testing.T) {
	j := open(t, t.TempDir(), Options{})
	var ps []*Pending
	var want [][]byte
	for i := 0; i < 10; i++ {
		ps = append(ps, j.Submit(entry(2*i), entry(2*i+1)))
		want = append(want, entry(2*i), entry(2*i+1))
	}
	// Waiting on the last one writes all of them, in Submit order.
	if err := ps[len(ps)-1].Wait(); err != nil {
		t.Fatal(err)
	}
	for i, p := range ps {
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
		if got := p.Seq(); got != uint64(2*i+2) {
			t.Fatalf("pending %d: Seq = %d, want %d", i, got, 2*i+2)
		}
	}
	if st := j.Stats(); st.Batches != 1 {
		t.Fatalf("%d batches, want 1", st.Batches)
	}
	mustEqual(t, state(t, j), want)
	if p := j.Submit(); p.Wait() != nil || p.Seq() != 20 {
		t.Fatalf("empty Submit: Seq %d", p.Seq())
	}
}

func TestCloseWritesQueuedEntries(t *testing.T) {
	j := open(t, t.TempDir(), Options{})
	p := j.Submit([]byte("queued"))
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("queued entry: %v", err)
	}
	if err := j.Append([]byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	mustEqual(t, state(t, open(t, j.dir, Options{})), [][]byte{[]byte("queued")})
}

func TestOpenLocksDirectory(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	j.Close()
	open(t, dir, Options{})
}

func TestTooLarge(t *testing.T) {
	j := open(t, t.TempDir(), Options{MaxEntryBytes: 10})
	if err := j.Append(make([]byte, 11)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if err := j.Append(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentAppends runs many writers at once: every entry is
// replayed, each writer's entries in its own order, and writers share
// fsyncs.
func TestConcurrentAppends(t *testing.T) {
	const writers, each = 32, 40
	j := open(t, t.TempDir(), Options{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Go(func() {
			for i := 0; i < each; i++ {
				if err := j.Append([]byte(fmt.Sprintf("%02d-%04d", w, i))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := j.Stats()
	t.Logf("%d appends, %d batches, %d fsyncs", st.Appends, st.Batches, st.Fsyncs)
	if st.Appends != writers*each || st.Entries != writers*each {
		t.Fatalf("stats %+v", st)
	}
	if st.Fsyncs >= st.Appends {
		t.Fatalf("%d fsyncs for %d concurrent appends: no group commit", st.Fsyncs, st.Appends)
	}
	checkWriterOrder(t, state(t, reopen(t, j, Options{})), writers, each)
}

// checkWriterOrder checks that list holds exactly the entries "WW-IIII"
// of every writer, each writer's in order.
func checkWriterOrder(t *testing.T, list [][]byte, writers, each int) {
	t.Helper()
	if len(list) != writers*each {
		t.Fatalf("replayed %d entries, want %d", len(list), writers*each)
	}
	next := make([]int, writers)
	for _, e := range list {
		var w, i int
		if _, err := fmt.Sscanf(string(e), "%d-%d", &w, &i); err != nil || w >= writers {
			t.Fatalf("unexpected entry %q", e)
		}
		if i != next[w] {
			t.Fatalf("writer %d: entry %d replayed where %d was expected", w, i, next[w])
		}
		next[w]++
	}
}

// TestFailedSyncIsUndone: a batch whose fsync fails is cut back, its
// callers get the error, it is never replayed, and the journal goes on.
func TestFailedSyncIsUndone(t *testing.T) {
	j := open(t, t.TempDir(), Options{})
	if err := j.Append([]byte("before")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("injected fsync failure")
	realSync := j.syncFile
	fail := true
	j.syncFile = func(f *os.File) error {
		if fail {
			fail = false
			return boom
		}
		return realSync(f)
	}
	if err := j.Append([]byte("failed")); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the fsync error", err)
	}
	if err := j.Append([]byte("after")); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{[]byte("before"), []byte("after")}
	mustEqual(t, state(t, j), want)
	j = reopen(t, j, Options{})
	mustEqual(t, state(t, j), want)
	if j.Stats().LastSeq != 2 {
		t.Fatalf("LastSeq = %d, want 2 (the failed batch's number is used again)", j.Stats().LastSeq)
	}
}

// TestFailedUndoBreaksJournal: when the cut-back fails too, every later
// append fails until the journal is reopened.
func TestFailedUndoBreaksJournal(t *testing.T) {
	j := open(t, t.TempDir(), Options{})
	if err := j.Append([]byte("before")); err != nil {
		t.Fatal(err)
	}
	realSync := j.syncFile
	j.syncFile = func(*os.File) error { return errors.New("injected fsync failure") }
	j.truncateFile = func(*os.File, int64) error { return errors.New("injected truncate failure") }
	if err := j.Append([]byte("failed")); !errors.Is(err, ErrBroken) {
		t.Fatalf("err = %v, want ErrBroken", err)
	}
	j.syncFile = realSync
	for i := 0; i < 2; i++ {
		if err := j.Append([]byte("later")); !errors.Is(err, ErrBroken) {
			t.Fatalf("append on a broken journal: %v, want ErrBroken", err)
		}
	}
	if err := j.Compact(1, encodeList([][]byte{[]byte("before")})); !errors.Is(err, ErrBroken) {
		t.Fatalf("compact on a broken journal: %v, want ErrBroken", err)
	}
	j = reopen(t, j, Options{})
	if err := j.Append([]byte("reopened")); err != nil {
		t.Fatal(err)
	}
	got := state(t, j)
	if len(got) == 0 || string(got[0]) != "before" || string(got[len(got)-1]) != "reopened" {
		t.Fatalf("replayed %q", got)
	}
}

func TestMissingAndStrayFiles(t *testing.T) {
	t.Run("leftover temporary files are removed", func(t *testing.T) {
		dir := t.TempDir()
		j := open(t, dir, Options{})
		j.Append([]byte("a"))
		j.Close()
		writeFile(t, filepath.Join(dir, snapName+tmpSuffix), []byte("half a snapshot"))
		writeFile(t, filepath.Join(dir, logName+tmpSuffix), []byte("half a log"))
		j = open(t, dir, Options{})
		mustEqual(t, state(t, j), [][]byte{[]byte("a")})
	})
	t.Run("snapshot without log", func(t *testing.T) {
		dir := t.TempDir()
		j := open(t, dir, Options{})
		j.Append([]byte("a"))
		if err := j.Compact(1, encodeList([][]byte{[]byte("a")})); err != nil {
			t.Fatal(err)
		}
		j.Close()
		removeFile(t, filepath.Join(dir, logName))
		wantCorrupt(t, dir, logName)
	})
	t.Run("log after a missing snapshot", func(t *testing.T) {
		dir := t.TempDir()
		j := open(t, dir, Options{})
		j.Append([]byte("a"), []byte("b"))
		j.Append([]byte("c"))
		if err := j.Compact(2, encodeList([][]byte{[]byte("a"), []byte("b")})); err != nil {
			t.Fatal(err)
		}
		j.Close()
		removeFile(t, filepath.Join(dir, snapName))
		wantCorrupt(t, dir, logName)
	})
}
