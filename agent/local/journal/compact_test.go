package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chorusdns/chorus/test/testutil"
)

func TestCompact(t *testing.T) {
	a, b, c, d := []byte("a"), []byte("b"), []byte("c"), []byte("d")
	cases := []struct {
		name string
		seq  uint64
		snap [][]byte
	}{
		{"everything", 4, [][]byte{a, b, c, d}},
		{"at a batch boundary", 3, [][]byte{a, b, c}},
		// Entry 2 is in the batch {b, c}: the new log keeps that whole
		// batch and replay skips b.
		{"inside a batch", 2, [][]byte{a, b}},
		{"nothing", 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := open(t, t.TempDir(), Options{})
			for _, batch := range [][][]byte{{a}, {b, c}, {d}} {
				if err := j.Append(batch...); err != nil {
					t.Fatal(err)
				}
			}
			if err := j.Compact(tc.seq, encodeList(tc.snap)); err != nil {
				t.Fatal(err)
			}
			all := [][]byte{a, b, c, d}
			mustEqual(t, state(t, j), all)
			if err := j.Append([]byte("e")); err != nil {
				t.Fatal(err)
			}
			all = append(all, []byte("e"))
			j = reopen(t, j, Options{})
			mustEqual(t, state(t, j), all)
			if st := j.Stats(); st.SnapshotSeq != tc.seq || st.LastSeq != 5 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestCompactRejectsSequenceOutOfRange(t *testing.T) {
	j := open(t, t.TempDir(), Options{})
	j.Append([]byte("a"), []byte("b"))
	if err := j.Compact(3, nil); err == nil {
		t.Fatal("Compact beyond the last durable entry succeeded")
	}
	if err := j.Compact(2, encodeList([][]byte{[]byte("a"), []byte("b")})); err != nil {
		t.Fatal(err)
	}
	if err := j.Compact(1, nil); err == nil {
		t.Fatal("Compact before the snapshot succeeded")
	}
}

// TestCompactionCrashStates builds every state a crash can leave during a
// compaction and checks that each replays exactly the same entries.
func TestCompactionCrashStates(t *testing.T) {
	before := t.TempDir()
	j := open(t, before, Options{Fold: foldList})
	var want [][]byte
	for i := 0; i < 6; i++ {
		b := [][]byte{entry(2 * i), entry(2*i + 1)}
		if err := j.Append(b...); err != nil {
			t.Fatal(err)
		}
		want = append(want, b...)
	}
	// A first compaction, so that the interesting one replaces a snapshot.
	if err := j.Compact(4, encodeList(want[:4])); err != nil {
		t.Fatal(err)
	}
	j.Close()
	after := copyDir(t, before)
	j = open(t, after, Options{Fold: foldList})
	if err := j.Compact(9, encodeList(want[:9])); err != nil {
		t.Fatal(err)
	}
	j.Close()

	newSnap := readFile(t, filepath.Join(after, snapName))
	newLog := readFile(t, filepath.Join(after, logName))
	states := []struct {
		name  string
		files map[string][]byte // written over a copy of "before"
	}{
		{"snapshot temp half written", map[string][]byte{snapName + tmpSuffix: newSnap[:len(newSnap)/2]}},
		{"snapshot temp written", map[string][]byte{snapName + tmpSuffix: newSnap}},
		{"snapshot renamed, old log", map[string][]byte{snapName: newSnap}},
		{"log temp half written", map[string][]byte{snapName: newSnap, logName + tmpSuffix: newLog[:len(newLog)/2]}},
		{"log temp written", map[string][]byte{snapName: newSnap, logName + tmpSuffix: newLog}},
		{"log renamed", map[string][]byte{snapName: newSnap, logName: newLog}},
	}
	for _, st := range states {
		t.Run(st.name, func(t *testing.T) {
			dir := copyDir(t, before)
			for name, b := range st.files {
				writeFile(t, filepath.Join(dir, name), b)
			}
			j := open(t, dir, Options{Fold: foldList})
			mustEqual(t, state(t, j), want)
			// The next compaction and append work from there.
			if err := j.Append([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := j.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, state(t, reopen(t, j, Options{})), append(append([][]byte(nil), want...), []byte("x")))
		})
	}
}

// TestCheckpointWhileAppending folds the log again and again while
// writers append: every acknowledged entry survives, in order.
func TestCheckpointWhileAppending(t *testing.T) {
	const writers, each = 8, 60
	j := open(t, t.TempDir(), Options{Fold: foldList})
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	stop := make(chan struct{})
	var compactor sync.WaitGroup
	compactor.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := j.Checkpoint(); err != nil {
				errs <- fmt.Errorf("checkpoint: %w", err)
				return
			}
		}
	})
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
	close(stop)
	compactor.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if j.Stats().Compactions == 0 {
		t.Fatal("no compaction ran")
	}
	checkWriterOrder(t, state(t, j), writers, each)
	checkWriterOrder(t, state(t, reopen(t, j, Options{})), writers, each)
}

// TestRunCompactsInBackground: Run folds the log once it outgrows the
// thresholds, so a restart reads a snapshot and a short log.
func TestRunCompactsInBackground(t *testing.T) {
	j := open(t, t.TempDir(), Options{Fold: foldList, CompactBytes: 4 << 10})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx) }()
	var want [][]byte
	for i := 0; i < 400; i++ {
		e := []byte(fmt.Sprintf("%0100d", i))
		want = append(want, e)
		if err := j.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if st := j.Stats(); st.Compactions == 0 {
			return fmt.Errorf("no compaction yet: %+v", st)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := j.Stats()
	if st.LogBytes >= int64(len(want))*(frameHeaderSize+100) {
		t.Fatalf("log still holds everything: %+v", st)
	}
	mustEqual(t, state(t, reopen(t, j, Options{})), want)
}

func TestRunReturnsOnClose(t *testing.T) {
	j := open(t, t.TempDir(), Options{Fold: foldList, CompactBytes: 1})
	done := make(chan error, 1)
	go func() { done <- j.Run(context.Background()) }()
	j.Append([]byte("a"))
	j.Close()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestCheckpointErrors(t *testing.T) {
	j := open(t, t.TempDir(), Options{})
	if err := j.Checkpoint(); !errors.Is(err, ErrNoFold) {
		t.Fatalf("Checkpoint without Fold: %v", err)
	}
	boom := errors.New("fold failed")
	j = reopen(t, j, Options{Fold: func([]byte, [][]byte) ([]byte, error) { return nil, boom }})
	j.Append([]byte("a"))
	if err := j.Checkpoint(); !errors.Is(err, boom) {
		t.Fatalf("Checkpoint: %v, want the fold error", err)
	}
	if _, err := os.Stat(filepath.Join(j.dir, snapName)); !os.IsNotExist(err) {
		t.Fatalf("a failed fold left a snapshot: %v", err)
	}
	mustEqual(t, state(t, j), [][]byte{[]byte("a")})
}
