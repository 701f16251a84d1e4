package journal

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Environment of the child process of TestKillDuringWrite.
const (
	childDirEnv   = "JOURNAL_TEST_CHILD_DIR"
	childRoundEnv = "JOURNAL_TEST_CHILD_ROUND"
)

const childWriters = 4

// TestKillDuringWrite runs a real process that appends from several
// goroutines (with background compaction) and prints every entry it was
// told is durable, kills it with SIGKILL at a different moment each
// round, then reopens the journal: every acknowledged entry is there, and
// each writer's entries are in order without gaps.
func TestKillDuringWrite(t *testing.T) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		runChild(dir, os.Getenv(childRoundEnv))
		return
	}
	dir := t.TempDir()
	acked := map[string]bool{}
	for round := 0; round < 6; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringWrite$", "-test.count=1")
		cmd.Env = append(os.Environ(), childDirEnv+"="+dir, childRoundEnv+"="+strconv.Itoa(round))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 50 + round*173
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() {
			e, ok := strings.CutPrefix(sc.Text(), "ack ")
			if !ok {
				continue
			}
			acked[e] = true
			if n++; n == killAfter {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v after %d acks, not by SIGKILL", round, err, n)
		}

		j, err := Open(dir, Options{Fold: foldList})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		list, err := replayList(j)
		tt := j.TornTail()
		j.Close()
		if err != nil {
			t.Fatalf("round %d: replay: %v", round, err)
		}
		// Each writer's entries are 0, 1, 2, ... in order.
		next := map[string]int{}
		present := map[string]bool{}
		for _, e := range list {
			s := string(e)
			cut := strings.LastIndexByte(s, '-')
			i, err := strconv.Atoi(s[cut+1:])
			if err != nil {
				t.Fatalf("round %d: unexpected entry %q", round, s)
			}
			if w := s[:cut]; i != next[w] {
				t.Fatalf("round %d: writer %s: entry %d replayed where %d was expected", round, w, i, next[w])
			}
			next[s[:cut]]++
			present[s] = true
		}
		for e := range acked {
			if !present[e] {
				t.Fatalf("round %d: acknowledged entry %s is missing after SIGKILL (%d replayed)", round, e, len(list))
			}
		}
		t.Logf("round %d: killed after %d acks; %d entries replayed, %d acknowledged; torn tail %+v", round, n, len(list), len(acked), tt)
	}
	// The children compacted in the background while being killed.
	if _, err := os.Stat(filepath.Join(dir, snapName)); err != nil {
		t.Fatalf("no compaction happened in the children: %v", err)
	}
}

// runChild appends until killed, printing "ack ROUND-WRITER-INDEX" after
// each successful Append.
func runChild(dir, round string) {
	j, err := Open(dir, Options{Fold: foldList, CompactBytes: 16 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	go j.Run(context.Background()) // ends with the process
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < childWriters; w++ {
		wg.Go(func() {
			for i := 0; ; i++ {
				e := fmt.Sprintf("%s.%d-%d", round, w, i)
				if err := j.Append([]byte(e)); err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(2)
				}
				mu.Lock()
				os.Stdout.WriteString("ack " + e + "\n")
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
