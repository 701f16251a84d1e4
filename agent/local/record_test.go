package local

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/chorusdns/chorus/catalog"
)

// TestPublishedRecordsVerifyAtReceivers runs every kind of change and
// checks that each record published, signed over the hash tree the State
// builds from its cached leaves, verifies at a receiver that decodes it
// and computes the tree itself: a leaf cache that missed a change would
// fail here.
func TestPublishedRecordsVerifyAtReceivers(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	var mu sync.Mutex
	var n int
	var fail error
	publish := func(rec *catalog.NodeRecord) {
		mu.Lock()
		defer mu.Unlock()
		n++
		if err := rec.Sign(key); err != nil {
			fail = err
			return
		}
		b, err := catalog.EncodeRecord(rec)
		if err != nil {
			fail = err
			return
		}
		got, err := catalog.DecodeRecord(b)
		if err != nil {
			fail = err
			return
		}
		if err := got.Verify(pub); err != nil && fail == nil {
			fail = err
		}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	l := New(Config{Node: catalog.Node{Name: "n1", Address: "127.0.0.1"}, DataDir: t.TempDir()}, logger, publish)
	if err := l.Restore(); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Publish()
	steps := []struct {
		name string
		do   func() error
	}{
		{"register", func() error { return l.RegisterService(benchService(1, 80)) }},
		{"register another", func() error { return l.RegisterService(benchService(2, 81)) }},
		{"change port", func() error { return l.RegisterService(benchService(1, 90)) }},
		{"ttl critical", func() error { return l.UpdateTTL("service:web-00001", catalog.HealthCritical, "down") }},
		{"ttl output", func() error {
			// An output-only change waits (check_update_interval): publish it.
			if err := l.UpdateTTL("service:web-00001", catalog.HealthCritical, "still down"); err != nil {
				return err
			}
			l.Publish()
			return nil
		}},
		{"service maintenance", func() error { return l.SetServiceMaintenance("web-00002", true, "patching") }},
		{"node maintenance", func() error { return l.SetNodeMaintenance(true, "rack move") }},
		{"load", func() error {
			if err := l.SetServiceLoad("web-00001", 0.75); err != nil {
				return err
			}
			l.Publish()
			return nil
		}},
		{"maintenance off", func() error { return l.SetServiceMaintenance("web-00002", false, "") }},
		{"node maintenance off", func() error { return l.SetNodeMaintenance(false, "") }},
		{"standalone check", func() error {
			return l.RegisterCheck(CheckDefinition{ID: "disk", Name: "disk", TTL: Duration(time.Minute), Status: catalog.HealthWarning})
		}},
		{"deregister check", func() error { return l.DeregisterCheck("disk") }},
		{"deregister", func() error { return l.DeregisterService("web-00001") }},
		{"deregister last", func() error { return l.DeregisterService("web-00002") }},
	}
	for _, st := range steps {
		mu.Lock()
		before := n
		mu.Unlock()
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if err := l.checkPatchedRecord(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if err := l.checkIndexConsistent(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		mu.Lock()
		if fail != nil {
			mu.Unlock()
			t.Fatalf("%s: a published record does not verify: %v", st.name, fail)
		}
		if n == before {
			mu.Unlock()
			t.Fatalf("%s: published nothing", st.name)
		}
		mu.Unlock()
	}
}

// checkIndexConsistent compares the checks-by-service index with a walk
// of every check.
func (l *State) checkIndexConsistent() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for id, c := range l.checks {
		if sid := c.Def.ServiceID; sid != "" {
			n++
			if _, ok := l.bySvc[sid][id]; !ok {
				return fmt.Errorf("check %q of service %q missing from the index", id, sid)
			}
		}
	}
	for _, m := range l.bySvc {
		n -= len(m)
	}
	if n != 0 {
		return fmt.Errorf("the index holds %d checks too many", -n)
	}
	return nil
}

// checkPatchedRecord compares the record the State builds from the last
// one and the changes since (patchRecordLocked) with one built from
// scratch, tree included.
func (l *State) checkPatchedRecord() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bumpLocked()
	patched := l.patchRecordLocked()
	if patched == nil {
		return fmt.Errorf("no record to patch")
	}
	full := l.recordLocked()
	pj, _ := json.Marshal(patched)
	fj, _ := json.Marshal(full)
	if !bytes.Equal(pj, fj) {
		return fmt.Errorf("patched record differs from a full build:\n%s\n%s", pj, fj)
	}
	pt, _ := patched.PieceTree()
	ft, err := full.PieceTree()
	if err != nil {
		return err
	}
	if pt.Root() != ft.Root() {
		return fmt.Errorf("patched tree differs from the tree of a full build")
	}
	return nil
}
