package journal

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// BenchmarkAppend appends 300-byte entries from 1, 8 and 32 concurrent
// writers and reports appends and fsyncs per second. fsyncs dominate, so
// run it on the filesystem of the data dir, not on tmpfs: the journal
// goes to $JOURNAL_BENCH_DIR when set, else to the test's temporary
// directory ($TMPDIR).
func BenchmarkAppend(b *testing.B) {
	e := make([]byte, 300)
	for _, writers := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			parent := os.Getenv("JOURNAL_BENCH_DIR")
			if parent == "" {
				parent = b.TempDir()
			}
			dir, err := os.MkdirTemp(parent, "journal-bench-")
			if err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(dir)
			j, err := Open(dir, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			start := j.Stats()
			b.ResetTimer()
			t0 := time.Now()
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				n := b.N / writers
				if w < b.N%writers {
					n++
				}
				wg.Go(func() {
					for i := 0; i < n; i++ {
						if err := j.Append(e); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			secs := time.Since(t0).Seconds()
			b.StopTimer()
			st := j.Stats()
			b.ReportMetric(float64(st.Appends-start.Appends)/secs, "appends/s")
			b.ReportMetric(float64(st.Fsyncs-start.Fsyncs)/secs, "fsyncs/s")
			b.ReportMetric(float64(st.Appends-start.Appends)/float64(st.Batches-start.Batches), "appends/fsync")
		})
	}
}
