package journal

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// smallDisk mounts a 64 KiB tmpfs and returns its path; it skips the test
// when mounting is not possible (not root, or no mount permission).
func smallDisk(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a full disk needs a small tmpfs, and mounting one needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount a small tmpfs for a full disk: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestFullDisk fills a real filesystem: the append that does not fit
// fails with ENOSPC, nothing of it is replayed, the journal stays usable,
// and appends succeed again once there is space.
func TestFullDisk(t *testing.T) {
	disk := smallDisk(t)
	filler := filepath.Join(disk, "filler")
	writeFile(t, filler, make([]byte, 36<<10))
	dir := filepath.Join(disk, "journal")
	j, err := Open(dir, Options{Fold: foldList})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { j.Close() }()
	entry := make([]byte, 300)
	var acked [][]byte
	var full error
	for i := 0; i < 1000 && full == nil; i++ {
		e := append([]byte(nil), entry...)
		e[0], e[1] = byte(i), byte(i>>8)
		if full = j.Append(e); full == nil {
			acked = append(acked, e)
		}
	}
	if !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want ENOSPC (after %d entries)", full, len(acked))
	}
	t.Logf("disk full after %d entries: %v", len(acked), full)
	if err := j.Append(entry); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("second append on a full disk: %v, want ENOSPC", err)
	}
	// A compaction on the full disk fails and changes nothing.
	if err := j.Checkpoint(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("checkpoint on a full disk: %v, want ENOSPC", err)
	}
	mustEqual(t, state(t, j), acked)

	j.Close()
	if j, err = Open(dir, Options{Fold: foldList}); err != nil {
		t.Fatalf("reopen on a full disk: %v", err)
	}
	if tt := j.TornTail(); tt != nil {
		t.Fatalf("the failed append left a torn tail: %+v", tt)
	}
	mustEqual(t, state(t, j), acked)

	removeFile(t, filler)
	if err := j.Append([]byte("space again")); err != nil {
		t.Fatalf("append after freeing space: %v", err)
	}
	acked = append(acked, []byte("space again"))
	if err := j.Checkpoint(); err != nil {
		t.Fatalf("checkpoint after freeing space: %v", err)
	}
	j.Close()
	if j, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, state(t, j), acked)
}
