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

// TestBuiltinServicesInRecord: the built-in services are pieces of every
// record in ID order, with the record's hash tree covering them, so a
// receiver verifies it; a registration with a built-in ID takes its place
// and the built-in one comes back when it leaves; they are not
// registrations (Services does not list them).
func TestBuiltinServicesInRecord(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	var mu sync.Mutex
	var last *catalog.NodeRecord
	var fail error
	publish := func(rec *catalog.NodeRecord) {
		mu.Lock()
		defer mu.Unlock()
		if err := rec.Sign(key); err != nil {
			fail = err
			return
		}
		b, err := catalog.EncodeRecord(rec)
		if err == nil {
			var got *catalog.NodeRecord
			if got, err = catalog.DecodeRecord(b); err == nil {
				err = got.Verify(pub)
			}
		}
		if err != nil && fail == nil {
			fail = err
		}
		last = rec
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	l := New(Config{Node: catalog.Node{Name: "n1", Address: "127.0.0.1"}, DataDir: t.TempDir()}, logger, publish)
	if err := l.Restore(); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	meta := map[string]string{"version": "test"}
	if err := l.SetBuiltin([]catalog.Service{
		{ID: "consul", Name: "consul", Port: 8500, Meta: meta, Weights: catalog.DefaultWeights},
		{ID: "chorus", Name: "chorus", Port: 8500, Meta: meta, Weights: catalog.DefaultWeights},
	}); err != nil {
		t.Fatal(err)
	}
	l.Publish()
	ids := func() string {
		mu.Lock()
		defer mu.Unlock()
		if fail != nil {
			t.Fatalf("a published record does not verify: %v", fail)
		}
		var out []string
		for _, s := range last.Services.All() {
			out = append(out, fmt.Sprintf("%s:%d", s.ID, s.Port))
		}
		return fmt.Sprint(out)
	}
	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"start", func() error { return nil }, "[chorus:8500 consul:8500]"},
		{"register a", func() error { return l.RegisterService(ServiceDefinition{ID: "a", Name: "a", Port: 1}) }, "[a:1 chorus:8500 consul:8500]"},
		{"register d", func() error { return l.RegisterService(ServiceDefinition{ID: "d", Name: "d", Port: 2}) }, "[a:1 chorus:8500 consul:8500 d:2]"},
		{"take chorus", func() error { return l.RegisterService(ServiceDefinition{ID: "chorus", Name: "mine", Port: 3}) }, "[a:1 chorus:3 consul:8500 d:2]"},
		{"change chorus", func() error { return l.RegisterService(ServiceDefinition{ID: "chorus", Name: "mine", Port: 4}) }, "[a:1 chorus:4 consul:8500 d:2]"},
		{"leave chorus", func() error { return l.DeregisterService("chorus") }, "[a:1 chorus:8500 consul:8500 d:2]"},
		{"take consul", func() error { return l.RegisterService(ServiceDefinition{ID: "consul", Name: "consul", Port: 5}) }, "[a:1 chorus:8500 consul:5 d:2]"},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := ids(); got != st.want {
			t.Fatalf("%s: record services %s, want %s", st.name, got, st.want)
		}
		// A whole rebuild gives the same record as the patched one.
		l.mu.Lock()
		full, _, _, _ := l.buildRecordLocked(false)
		l.mu.Unlock()
		mu.Lock()
		same := full.Services.Len() == last.Services.Len()
		for i := 0; same && i < full.Services.Len(); i++ {
			same = full.Services.At(i).ID == last.Services.At(i).ID && full.Services.At(i).Port == last.Services.At(i).Port
		}
		mu.Unlock()
		if !same {
			t.Fatalf("%s: a whole rebuild has services %v", st.name, full.Services)
		}
	}
	for _, s := range l.Services() {
		if s.Port == 8500 {
			t.Fatalf("Services lists a built-in service: %+v", s)
		}
	}
}
