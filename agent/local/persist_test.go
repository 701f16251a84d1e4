package local

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chorusdns/chorus/agent/local/journal"
	"github.com/chorusdns/chorus/catalog"
)

// syncBuf collects log output for assertions.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testState is a State on dataDir with a counting publish function and
// its log in logs.
type testState struct {
	*State
	publishes atomic.Int64
	logs      *syncBuf
}

// newState returns a State on dataDir, not yet restored.
func newState(t testing.TB, dataDir string) *testState {
	t.Helper()
	ts := &testState{logs: &syncBuf{}}
	logger := slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts.State = New(Config{Node: catalog.Node{Name: "node1", Address: "127.0.0.1"}, DataDir: dataDir}, logger,
		func(*catalog.NodeRecord) { ts.publishes.Add(1) })
	return ts
}

// openState returns a restored State on dataDir, closed at the end of the
// test.
func openState(t testing.TB, dataDir string) *testState {
	t.Helper()
	ts := newState(t, dataDir)
	if err := ts.Restore(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	t.Cleanup(func() { ts.Close() })
	return ts
}

func (l *State) snapshot() persistedState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.snapshotLocked()
}

func (l *State) journalStats() journal.Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.jnl.Stats()
}

func serviceIDs(l *State) []string {
	var ids []string
	for _, s := range l.Services() {
		ids = append(ids, s.ID)
	}
	return ids
}

func checkStatus(l *State, id string) (string, string) {
	for _, c := range l.Checks() {
		if c.Check.CheckID == id {
			return c.Check.Status, c.Check.Output
		}
	}
	return "", ""
}

// sameState compares the persisted forms of two states, ignoring the
// version (a restart bumps it).
func sameState(t *testing.T, got, want persistedState) {
	t.Helper()
	got.Version, want.Version = 0, 0
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("state after restart:\n%s\nwant:\n%s", g, w)
	}
}

// TestJournalRoundTrip makes every kind of change, restarts, and finds
// exactly the state it left, in memory and as the journal replays it.
func TestJournalRoundTrip(t *testing.T) {
	dir := t.TempDir()
	l := openState(t, dir)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.RegisterService(ServiceDefinition{Name: "web", Port: 80, Tags: []string{"a"},
		Check: &CheckDefinition{TTL: Duration(time.Minute), Status: catalog.HealthPassing}}))
	must(l.RegisterService(ServiceDefinition{ID: "db1", Name: "db", Port: 5432,
		Checks: []CheckDefinition{{TTL: Duration(time.Minute)}, {TCP: "127.0.0.1:1", Interval: Duration(time.Hour)}}}))
	must(l.RegisterService(ServiceDefinition{ID: "gone", Name: "gone", Port: 1}))
	must(l.RegisterCheck(CheckDefinition{CheckID: "disk", Name: "disk", TTL: Duration(time.Minute)}))
	must(l.RegisterCheck(CheckDefinition{CheckID: "web-extra", ServiceID: "web", TTL: Duration(time.Minute)}))
	must(l.UpdateTTL("service:web", catalog.HealthWarning, "slow"))
	must(l.UpdateTTL("disk", catalog.HealthCritical, "full"))
	must(l.SetServiceMaintenance("db1", true, "upgrade"))
	must(l.SetNodeMaintenance(true, ""))
	// A legacy external service (external.go), as older agents kept them.
	must(l.registerService(ServiceDefinition{Name: "saas", Port: 443, Address: "10.1.1.1", Meta: map[string]string{ExternalNodeMetaKey: "ext"},
		Check: &CheckDefinition{TTL: Duration(time.Hour), Status: catalog.HealthPassing}}, sourceExternal))
	must(l.DeregisterService("gone"))
	must(l.RegisterService(ServiceDefinition{ID: "db1", Name: "db", Port: 5433,
		Checks: []CheckDefinition{{TTL: Duration(time.Minute)}}})) // drops service:db1:2
	must(l.DeregisterCheck("web-extra"))
	before := l.snapshot()
	rec := l.Record()
	must(l.Close())

	l2 := openState(t, dir)
	sameState(t, l2.snapshot(), before)
	if got := serviceIDs(l2.State); !reflect.DeepEqual(got, []string{"db1", "web"}) {
		t.Fatalf("services after restart: %v", got)
	}
	if !l2.IsExternal("saas") {
		t.Fatal("external service lost its kind")
	}
	if st, out := checkStatus(l2.State, "service:web"); st != catalog.HealthWarning || out != "slow" {
		t.Fatalf("TTL status after restart: %s %q", st, out)
	}
	if st, _ := checkStatus(l2.State, "disk"); st != catalog.HealthCritical {
		t.Fatalf("standalone TTL status after restart: %s", st)
	}
	rec2 := l2.Record()
	if rec2.Version <= rec.Version {
		t.Fatalf("version went from %d to %d across the restart", rec.Version, rec2.Version)
	}
	rec.Version, rec2.Version = 0, 0
	for i := range rec.Services.Len() {
		// Older agents set the flag when they registered a legacy
		// external service; restore sets it from its source.
		rec.Services.At(i).External = rec.Services.At(i).ID == "saas"
	}
	if !reflect.DeepEqual(rec, rec2) {
		t.Fatalf("record after restart:\n%+v\nwant\n%+v", rec2, rec)
	}

	// What the journal holds folds to the same state (compaction).
	l2.mu.Lock()
	err := l2.jnl.Checkpoint()
	l2.mu.Unlock()
	must(err)
	must(l2.Close())
	l3 := openState(t, dir)
	sameState(t, l3.snapshot(), before)
	if _, err := os.Stat(filepath.Join(dir, "local.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a local.json was written: %v", err)
	}
}

// TestUnchangedRegistrationWritesNothing: re-registering a service, check
// or maintenance mode exactly as it is costs no write, no version and no
// publish.
func TestUnchangedRegistrationWritesNothing(t *testing.T) {
	l := openState(t, t.TempDir())
	def := ServiceDefinition{Name: "web", Port: 80, Meta: map[string]string{"a": "b"},
		Checks: []CheckDefinition{{TTL: Duration(time.Minute)}, {HTTP: "http://127.0.0.1:1/", Interval: Duration(time.Hour)}}}
	check := CheckDefinition{CheckID: "disk", TTL: Duration(time.Minute)}
	if err := l.RegisterService(def); err != nil {
		t.Fatal(err)
	}
	if err := l.RegisterCheck(check); err != nil {
		t.Fatal(err)
	}
	if err := l.SetNodeMaintenance(true, "why"); err != nil {
		t.Fatal(err)
	}
	if err := l.UpdateTTL("disk", catalog.HealthPassing, "ok"); err != nil {
		t.Fatal(err)
	}
	stats, version, pubs := l.journalStats(), l.Record().Version, l.publishes.Load()
	for i := 0; i < 3; i++ {
		if err := l.RegisterService(def); err != nil {
			t.Fatal(err)
		}
		if err := l.RegisterCheck(check); err != nil {
			t.Fatal(err)
		}
		if err := l.SetNodeMaintenance(true, "why"); err != nil {
			t.Fatal(err)
		}
		if err := l.SetServiceMaintenance("web", false, ""); err != nil {
			t.Fatal(err)
		}
		if err := l.UpdateTTL("disk", catalog.HealthPassing, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	after := l.journalStats()
	if after.Entries != stats.Entries || after.Fsyncs != stats.Fsyncs {
		t.Fatalf("unchanged registrations wrote: entries %d → %d, fsyncs %d → %d", stats.Entries, after.Entries, stats.Fsyncs, after.Fsyncs)
	}
	if v := l.Record().Version; v != version {
		t.Fatalf("unchanged registrations moved the version %d → %d", version, v)
	}
	if p := l.publishes.Load(); p != pubs {
		t.Fatalf("unchanged registrations published %d records", p-pubs)
	}
	// A real change writes one entry.
	def.Port = 81
	if err := l.RegisterService(def); err != nil {
		t.Fatal(err)
	}
	if got := l.journalStats().Entries; got != after.Entries+1 {
		t.Fatalf("a changed registration wrote %d entries, want 1", got-after.Entries)
	}
	// A check dropped on its own comes back with the same definition.
	if err := l.DeregisterCheck("service:web:1"); err != nil {
		t.Fatal(err)
	}
	if err := l.RegisterService(def); err != nil {
		t.Fatal(err)
	}
	if st, _ := checkStatus(l.State, "service:web:1"); st == "" {
		t.Fatal("re-registration did not bring back the service's check")
	}
}

// TestTenThousandServicesRestart: 10,000 services (migrated from a
// local.json, then 200 registered through the journal) survive a
// restart; the times are logged.
func TestTenThousandServicesRestart(t *testing.T) {
	dir := t.TempDir()
	writeLegacyState(t, dir, 9800)
	t0 := time.Now()
	l := openState(t, dir)
	migrate := time.Since(t0)
	t0 = time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Go(func() {
			for i := 9800 + w; i < 10000; i += 32 {
				if err := l.RegisterService(benchService(i, 3000)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	register := time.Since(t0)
	stats := l.journalStats()
	want := l.snapshot()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	l2 := openState(t, dir)
	restart := time.Since(t0)
	if n := len(l2.Services()); n != 10000 {
		t.Fatalf("%d services after restart, want 10000", n)
	}
	sameState(t, l2.snapshot(), want)
	t.Logf("migrate 9,800: %v; 200 registrations (32 callers): %v (%d batches); restart with 10,000: %v (snapshot %d bytes, log %d bytes)",
		migrate, register, stats.Batches, restart, stats.SnapshotBytes, stats.LogBytes)
}

// smallDisk mounts a small tmpfs and returns its path; it skips the test
// when mounting is not possible.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a full disk needs a small tmpfs, and mounting one needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a small tmpfs for a full disk: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestFailedWriteRollsBack fills a real filesystem: the registration that
// does not fit fails with ErrPersistence and changes nothing (memory,
// record, disk); once there is space again registrations succeed, and a
// restart finds exactly the acknowledged ones.
func TestFailedWriteRollsBack(t *testing.T) {
	disk := smallDisk(t, "256k")
	filler := filepath.Join(disk, "filler")
	if err := os.WriteFile(filler, make([]byte, 200<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(disk, "data")
	l := openState(t, dir)
	var acked []string
	var full error
	for i := 0; i < 2000 && full == nil; i++ {
		id := fmt.Sprintf("svc-%04d", i)
		before, rec := l.snapshot(), l.Record()
		pubs := l.publishes.Load()
		full = l.RegisterService(ServiceDefinition{ID: id, Name: "svc", Port: 1000 + i,
			Meta: map[string]string{"pad": strings.Repeat("x", 400)}})
		if full == nil {
			acked = append(acked, id)
			continue
		}
		if !errors.Is(full, ErrPersistence) || !errors.Is(full, syscall.ENOSPC) {
			t.Fatalf("registration on a full disk: %v, want ErrPersistence wrapping ENOSPC", full)
		}
		sameState(t, l.snapshot(), before)
		if _, ok := l.Service(id); ok {
			t.Fatal("the failed registration is visible")
		}
		after := l.Record()
		if after.Version <= rec.Version {
			t.Fatalf("version after the rollback %d, before %d: peers would keep the failed change", after.Version, rec.Version)
		}
		after.Version, rec.Version = 0, 0
		if !reflect.DeepEqual(after, rec) {
			t.Fatal("the record changed")
		}
		if l.publishes.Load() == pubs {
			t.Fatal("the rolled-back record was not published")
		}
	}
	if full == nil {
		t.Fatal("the disk never filled")
	}
	t.Logf("disk full after %d registrations: %v", len(acked), full)
	// Fill what is left: a change whose entry needs a new page fails too
	// (a small one may still fit in the log's last page) and changes
	// nothing.
	f, err := os.Create(filepath.Join(disk, "filler2"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 512)); err != nil {
			break
		}
	}
	f.Close()
	before := l.snapshot()
	if err := l.SetServiceMaintenance(acked[0], true, strings.Repeat("r", 16<<10)); !errors.Is(err, ErrPersistence) {
		t.Fatalf("maintenance on a full disk: %v", err)
	}
	sameState(t, l.snapshot(), before)
	for _, c := range l.Checks() {
		if c.Check.ServiceID == acked[0] && c.Check.Type == "maintenance" {
			t.Fatal("the failed maintenance change is visible")
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(disk, "filler2")); err != nil {
		t.Fatal(err)
	}
	if err := l.RegisterService(ServiceDefinition{ID: "after", Name: "svc", Port: 1}); err != nil {
		t.Fatalf("registration after freeing space: %v", err)
	}
	acked = append(acked, "after")
	want := l.snapshot()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openState(t, dir)
	sameState(t, l2.snapshot(), want)
	if got := len(l2.Services()); got != len(acked) {
		t.Fatalf("%d services after restart, want the %d acknowledged", got, len(acked))
	}
}

// TestDamagedJournalRefusesToStart: damage that is not a torn final write
// stops Restore with an error naming the file and how to recover.
func TestDamagedJournalRefusesToStart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string
	}{
		{"log frame in the middle", func(t *testing.T, dir string) {
			path := filepath.Join(dir, "local", "log")
			b := readFile(t, path)
			b[40] ^= 0xff // inside the first frame; later frames are intact
			writeFile(t, path, b)
		}, []string{filepath.Join("local", "log"), "corrupt", "offset"}},
		{"empty log", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "local", "log"), nil)
		}, []string{"log", "corrupt"}},
		{"snapshot of {}", func(t *testing.T, dir string) {
			// A snapshot whose checksums hold but whose content no agent
			// writes: an empty state.
			j, err := journal.Open(filepath.Join(dir, "local"), journal.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := j.Compact(j.Stats().LastSeq, []byte("{}")); err != nil {
				t.Fatal(err)
			}
			j.Close()
		}, []string{filepath.Join("local", "snapshot"), "no record version", "backup"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openState(t, dir)
			for i := 0; i < 5; i++ {
				if err := l.RegisterService(ServiceDefinition{ID: fmt.Sprintf("s%d", i), Name: "s", Port: i}); err != nil {
					t.Fatal(err)
				}
			}
			l.Close()
			tc.damage(t, dir)
			l2 := newState(t, dir)
			err := l2.Restore()
			if err == nil {
				l2.Close()
				t.Fatalf("started on a damaged journal with %v", serviceIDs(l2.State))
			}
			if !errors.Is(err, journal.ErrCorrupt) {
				t.Fatalf("error %v does not wrap journal.ErrCorrupt", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
			t.Logf("refused: %v", err)
		})
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTornTailDropsOnlyUnacknowledged cuts the last write short, as a
// crash during its fsync would: the agent starts with every acknowledged
// change, drops the torn one and says so at WARN.
func TestTornTailDropsOnlyUnacknowledged(t *testing.T) {
	dir := t.TempDir()
	l := openState(t, dir)
	for _, id := range []string{"a", "b", "torn"} {
		if err := l.RegisterService(ServiceDefinition{ID: id, Name: "s", Port: 1}); err != nil {
			t.Fatal(err)
		}
	}
	full := l.journalStats().LogBytes
	l.mu.Lock()
	j := l.jnl
	l.mu.Unlock()
	j.Close() // no final entry: the log ends with the "torn" registration
	path := filepath.Join(dir, "local", "log")
	b := readFile(t, path)
	if int64(len(b)) != full {
		t.Fatalf("log is %d bytes, want %d", len(b), full)
	}
	// Find where the last entry starts by replaying the log without it.
	var lastStart int64
	{
		l0 := openState(t, t.TempDir())
		for _, id := range []string{"a", "b"} {
			if err := l0.RegisterService(ServiceDefinition{ID: id, Name: "s", Port: 1}); err != nil {
				t.Fatal(err)
			}
		}
		lastStart = l0.journalStats().LogBytes
	}
	writeFile(t, path, b[:lastStart+(full-lastStart)/2]) // half of the last write reached the disk

	l2 := newState(t, dir)
	if err := l2.Restore(); err != nil {
		t.Fatalf("a torn final write refused the start: %v", err)
	}
	defer l2.Close()
	if got := serviceIDs(l2.State); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("services after the torn write: %v, want [a b]", got)
	}
	logs := l2.logs.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "torn") || !strings.Contains(logs, path) {
		t.Fatalf("no ERROR about the torn write naming %s:\n%s", path, logs)
	}
	if got, want := l2.DroppedAtStart(), (full-lastStart)/2; got != want {
		t.Fatalf("DroppedAtStart = %d, want the %d bytes cut off", got, want)
	}
}

// TestMigrateFromLocalJSON reads an older agent's local.json (and keeps
// its .prev) once into the journal, finishes a migration cut short, and
// refuses a local.json that is damaged or that the journal did not come
// from.
func TestMigrateFromLocalJSON(t *testing.T) {
	dir := t.TempDir()
	writeLegacyState(t, dir, 3)
	legacy := filepath.Join(dir, "local.json")
	writeFile(t, legacy+".prev", readFile(t, legacy))
	orig := readFile(t, legacy)

	l := openState(t, dir)
	if got := serviceIDs(l.State); !reflect.DeepEqual(got, []string{"web-00000", "web-00001", "web-00002"}) {
		t.Fatalf("services after migration: %v", got)
	}
	for _, name := range []string{legacy, legacy + ".prev"} {
		if _, err := os.Stat(name); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s still there after the migration: %v", name, err)
		}
		if _, err := os.Stat(name + ".migrated"); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.RegisterService(benchService(7, 1)); err != nil {
		t.Fatal(err)
	}
	want := l.snapshot()
	l.Close()

	// A crash after the snapshot but before the rename: the same
	// local.json is back. The migration is finished, not redone.
	writeFile(t, legacy, orig)
	l2 := openState(t, dir)
	sameState(t, l2.snapshot(), want)
	if _, err := os.Stat(legacy); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("local.json not renamed when finishing the migration")
	}
	l2.Close()

	// Another local.json beside the journal (an older agent ran on this
	// data dir since): one of the two would be lost, so refuse.
	writeLegacyState(t, dir, 1)
	l3 := newState(t, dir)
	if err := l3.Restore(); err == nil || !strings.Contains(err.Error(), legacy) || !strings.Contains(err.Error(), "both hold") {
		t.Fatalf("local.json beside a journal it did not make: %v", err)
	}

	for _, tc := range []struct{ name, content string }{
		{"truncated", string(orig[:len(orig)/2])},
		{"empty object", "{}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "local.json"), []byte(tc.content))
			l := newState(t, dir)
			err := l.Restore()
			if err == nil {
				l.Close()
				t.Fatalf("migrated a damaged local.json: %v", serviceIDs(l.State))
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, "local.json")+" is damaged") || !strings.Contains(err.Error(), ".prev") {
				t.Fatalf("error %q names neither the file nor the previous copy", err)
			}
		})
	}
}

// TestServiceLimits: Consul's per-service limits are refused with
// ErrInvalid, and nothing changes.
func TestServiceLimits(t *testing.T) {
	l := openState(t, t.TempDir())
	meta := func(n, k, v int) map[string]string {
		m := map[string]string{}
		for i := 0; i < n; i++ {
			m[fmt.Sprintf("%0*d", k, i)] = strings.Repeat("v", v)
		}
		return m
	}
	for _, tc := range []struct {
		name string
		def  ServiceDefinition
		want string
	}{
		{"65 meta keys", ServiceDefinition{Name: "a", Meta: meta(65, 3, 1)}, "65 keys, over the limit of 64"},
		{"meta key of 129 bytes", ServiceDefinition{Name: "a", Meta: meta(1, 129, 1)}, "129 bytes, over the limit of 128"},
		{"meta value of 513 bytes", ServiceDefinition{Name: "a", Meta: meta(1, 3, 513)}, "513 bytes, over the limit of 512"},
		{"tag of 256 bytes", ServiceDefinition{Name: "a", Tags: []string{strings.Repeat("t", 256)}}, "256 bytes, over the limit of 255"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := l.journalStats().Entries
			err := l.RegisterService(tc.def)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalid saying %q", err, tc.want)
			}
			if len(l.Services()) != 0 || l.journalStats().Entries != before {
				t.Fatal("a refused registration changed something")
			}
		})
	}
	// At the limits exactly: accepted.
	if err := l.RegisterService(ServiceDefinition{Name: "a", Meta: meta(64, 128, 512)}); err != nil {
		t.Fatal(err)
	}
}

// TestRecordSizeLimit: a registration that would make the record larger
// than peers accept is refused with ErrTooLarge naming the size and the
// limit, and nothing changes; the size accounting matches the encoding.
func TestRecordSizeLimit(t *testing.T) {
	dir := t.TempDir()
	// Services with the most meta a service may have, 40 KiB of JSON each:
	// about 400 of them reach catalog.MaxRecordSize.
	big := func(i int) ServiceDefinition {
		m := map[string]string{}
		for k := 0; k < MaxServiceMetaKeys; k++ {
			m[fmt.Sprintf("key-%03d-%s", k, strings.Repeat("k", MaxServiceMetaKeyBytes-8))] = strings.Repeat(fmt.Sprintf("%x", i%16), MaxServiceMetaValueBytes)
		}
		return ServiceDefinition{ID: fmt.Sprintf("big-%04d", i), Name: "big", Port: 1, Meta: m}
	}
	p := persistedState{Version: 1}
	const n = 395
	for i := 0; i < n; i++ {
		p.Services = append(p.Services, persistedService{Source: sourceAPI, Definition: big(i)})
	}
	b, _ := json.Marshal(p)
	writeFile(t, filepath.Join(dir, "local.json"), b)
	l := openState(t, dir)

	l.mu.Lock()
	est := l.recordJSONSizeLocked()
	raw, _ := json.Marshal(l.recordLocked())
	l.mu.Unlock()
	// The estimate counts a signature (the agent signs each record).
	if est < len(raw) || est > len(raw)+120 {
		t.Fatalf("size estimate %d, encoded record %d", est, len(raw))
	}
	t.Logf("%d services: record of %d bytes", n, len(raw))

	var refused error
	i := n
	for ; i < n+20 && refused == nil; i++ {
		refused = l.RegisterService(big(i))
	}
	if !errors.Is(refused, ErrTooLarge) {
		t.Fatalf("registrations up to %d services: %v, want ErrTooLarge", i, refused)
	}
	if !strings.Contains(refused.Error(), fmt.Sprint(catalog.MaxRecordSize)) {
		t.Fatalf("error %q does not name the limit", refused)
	}
	t.Logf("refused at %d services: %v", i, refused)
	before, stats := l.snapshot(), l.journalStats()
	if err := l.RegisterService(big(i)); !errors.Is(err, ErrTooLarge) {
		t.Fatal(err)
	}
	sameState(t, l.snapshot(), before)
	if s := l.journalStats(); s.Entries != stats.Entries {
		t.Fatal("a refused registration was written")
	}
	l.mu.Lock()
	rec := l.recordLocked()
	l.mu.Unlock()
	enc, err := catalog.EncodeRecord(rec)
	if err != nil {
		t.Fatalf("the record as it stands does not encode: %v", err)
	}
	if _, err := catalog.DecodeRecord(enc); err != nil {
		t.Fatalf("peers would refuse the record as it stands: %v", err)
	}
	// Smaller changes still fit, and shrinking is always allowed.
	if err := l.RegisterService(ServiceDefinition{Name: "small", Port: 1}); err != nil {
		t.Fatal(err)
	}
	if err := l.DeregisterService("big-0000"); err != nil {
		t.Fatal(err)
	}
}

// FuzzFold feeds the journal's fold arbitrary snapshots and entries (what
// a damaged or foreign data dir could hold): it returns an error or a
// snapshot that decodes, never panics.
func FuzzFold(f *testing.F) {
	f.Add([]byte(`{"Version":1,"Services":[{"Source":"api","Definition":{"Name":"web"}}]}`),
		[]byte(`{"Version":2,"Services":{"web":null},"Checks":{"c":{"Source":"api","Definition":{"CheckID":"c","TTL":"1s"}}},"States":{"c":{"Status":"passing"}},"NodeMaint":{"Reason":"x"}}`))
	f.Add([]byte(nil), []byte(`{}`))
	f.Add([]byte(`{}`), []byte(`null`))
	f.Fuzz(func(t *testing.T, snap, e []byte) {
		out, err := fold(snap, [][]byte{e, e})
		if err != nil {
			return
		}
		var p persistedState
		if err := json.Unmarshal(out, &p); err != nil {
			t.Fatalf("fold returned %q, which does not decode: %v", out, err)
		}
	})
}

// TestWriteFileOnce: of writers racing to create one file, exactly one
// one's data ends up there, whole, mode 0600, and nothing else is left in
// the directory; a later write leaves the file as it is.
func TestWriteFileOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.key")
	const writers = 8
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			if err := WriteFileOnce(path, []byte(fmt.Sprintf("writer %d %s", i, strings.Repeat("x", 4096)))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscanf(string(got), "writer %d", &n); err != nil || n < 0 || n >= writers || len(got) != len(fmt.Sprintf("writer %d ", n))+4096 {
		t.Fatalf("file holds %.40q… (%d bytes), not one writer's whole data", got, len(got))
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if err := WriteFileOnce(path, []byte("later")); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, got) {
		t.Fatalf("a later write replaced the file: %q", again)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("the directory holds %d entries, want only the file", len(ents))
	}
}
