package local

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chorusdns/chorus/catalog"
)

// testExternals is an Externals of agent self over store, whose publish
// signs with a fresh key and applies to store.
func testExternals(t testing.TB, self, dir string, store *catalog.Store, now func() time.Time) *Externals {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	x := NewExternals(ExternalsConfig{Self: self, Datacenter: "dc1", DataDir: dir, Store: store, Now: now,
		Publish: func(rec *catalog.NodeRecord) bool {
			if err := rec.Sign(key); err != nil {
				t.Error(err)
				return false
			}
			return store.ApplyRecord(rec)
		}}, slog.New(slog.DiscardHandler))
	if err := x.Restore(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func dbRegistration() NodeRegistration {
	return NodeRegistration{
		Node: "db1", Address: "10.0.0.5", NodeMeta: map[string]string{"rack": "r1"},
		Service: &catalog.Service{ID: "pg", Name: "postgres", Port: 5432},
		Checks: []catalog.Check{
			{CheckID: "alive", Status: catalog.HealthPassing},
			{CheckID: "pg-ready", ServiceID: "pg", Output: "starting"}, // status defaults to critical
		},
	}
}

func TestExternalsRegisterAndDeregister(t *testing.T) {
	store := catalog.NewStore()
	x := testExternals(t, "agent1", t.TempDir(), store, nil)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(x.Register(dbRegistration()))
	n, ok := store.Snapshot().Node("db1")
	if !ok || n.Owner() != "agent1" || n.Node.Datacenter != "dc1" || n.Node.Meta["rack"] != "r1" {
		t.Fatalf("node %+v", n)
	}
	if len(n.Checks) != 1 || n.Checks[0].CheckID != "alive" || n.Health != catalog.HealthPassing {
		t.Fatalf("node checks (no serfHealth): %+v", n.Checks)
	}
	if n.Instances.Len() != 1 || n.Instances.Get(0).Health != catalog.HealthCritical || n.Instances.Get(0).OwnChecks()[0].ServiceName != "postgres" {
		t.Fatalf("instance %+v", n.Instances.Get(0))
	}
	v := n.Version

	// The same registration again changes nothing.
	must(x.Register(dbRegistration()))
	if got := store.Version("db1"); got != v {
		t.Fatalf("an unchanged registration made version %d (was %d)", got, v)
	}
	// SkipNodeUpdate keeps the node's fields; a second service is added.
	must(x.Register(NodeRegistration{Node: "db1", SkipNodeUpdate: true, Service: &catalog.Service{ID: "exp", Name: "exporter", Port: 9187}}))
	n, _ = store.Snapshot().Node("db1")
	if n.Node.Address != "10.0.0.5" || n.Node.Meta["rack"] != "r1" || n.Instances.Len() != 2 {
		t.Fatalf("after SkipNodeUpdate: %+v, %d instances", n.Node, n.Instances.Len())
	}
	// Case-insensitive names update the same node.
	must(x.Register(NodeRegistration{Node: "DB1", SkipNodeUpdate: true, Checks: []catalog.Check{{CheckID: "alive", Status: catalog.HealthWarning}}}))
	if n, _ = store.Snapshot().Node("db1"); n.Node.Name != "db1" || n.Health != catalog.HealthWarning {
		t.Fatalf("after DB1: %+v %s", n.Node, n.Health)
	}

	// Refusals change nothing.
	v = store.Version("db1")
	for _, reg := range []NodeRegistration{
		{Node: "db1", Address: "10.0.0.5", Checks: []catalog.Check{{CheckID: "c", ServiceID: "nope"}}},
		{Node: "db1", Address: "10.0.0.5", Checks: []catalog.Check{{CheckID: "serfHealth"}}},
		{Node: "db1", Address: "not an address"},
		{Node: "db1", Address: "10.0.0.5", Service: &catalog.Service{Name: "bad name"}},
		{Node: "db1", Address: "10.0.0.5", Service: &catalog.Service{Name: "a", Tags: []string{strings.Repeat("t", 256)}}},
		{Node: "db1", Address: "10.0.0.5", Checks: []catalog.Check{{}}},
	} {
		if err := x.Register(reg); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%+v: got %v, want ErrInvalid", reg, err)
		}
	}
	if store.Version("db1") != v {
		t.Fatal("a refused registration changed the node")
	}

	// Deregistration: a service takes its checks along; a check; the node.
	must(x.Deregister("db1", "pg", ""))
	n, _ = store.Snapshot().Node("db1")
	if all := slices.Collect(n.AllChecks()); n.Instances.Len() != 1 || len(all) != 1 {
		t.Fatalf("after service deregistration: %d instances, checks %+v", n.Instances.Len(), all)
	}
	must(x.Deregister("db1", "", "alive"))
	must(x.Deregister("db1", "", "alive")) // idempotent
	must(x.Deregister("db1", "", ""))
	if _, ok := store.Snapshot().Node("db1"); ok {
		t.Fatal("deregistered node still served")
	}
	tombs := store.Snapshot().Tombstones()
	if len(tombs) != 1 || tombs[0].Node != "db1" || tombs[0].Owner != "agent1" {
		t.Fatalf("tombstones %+v", tombs)
	}
	must(x.Deregister("db1", "", "")) // of a deregistered node: nothing
	if store.Snapshot().Tombstones()[0].Version != tombs[0].Version {
		t.Fatal("deregistering a deregistered node wrote a version")
	}
	// Registered again: a version above the tombstone's.
	must(x.Register(dbRegistration()))
	if v := store.Version("db1"); v <= tombs[0].Version || len(store.Snapshot().Tombstones()) != 0 {
		t.Fatalf("re-registered at %d over tombstone %d", v, tombs[0].Version)
	}
}

func TestExternalsRefuseAgentNames(t *testing.T) {
	store := catalog.NewStore()
	store.SetMember("agent2", "127.0.0.1", catalog.MemberAlive) // listed, no record yet
	x := testExternals(t, "agent1", "", store, nil)
	for _, name := range []string{"agent1", "agent2", "AGENT2"} {
		if err := x.Register(NodeRegistration{Node: name, Address: "10.0.0.1"}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "is an agent") {
			t.Fatalf("%s: got %v", name, err)
		}
		if err := x.Deregister(name, "", ""); !errors.Is(err, ErrInvalid) {
			t.Fatalf("deregister %s: got %v", name, err)
		}
	}
}

// TestExternalsRestoreYieldAdopt: a restarted owner republishes its
// journal's versions unchanged and yields a node another agent wrote a
// newer version of; an adoption writes a newer version owned by the
// adopter, persisted.
func TestExternalsRestoreYieldAdopt(t *testing.T) {
	dir := t.TempDir()
	store := catalog.NewStore()
	x := testExternals(t, "agent1", dir, store, nil)
	if err := x.Register(dbRegistration()); err != nil {
		t.Fatal(err)
	}
	if err := x.Register(NodeRegistration{Node: "db2", Address: "10.0.0.6"}); err != nil {
		t.Fatal(err)
	}
	v1 := store.Version("db1")
	x.Close()

	// Restart: the same versions, owned again.
	store2 := catalog.NewStore()
	x2 := testExternals(t, "agent1", dir, store2, nil)
	if store2.Version("db1") != v1 || strings.Join(x2.Owned(), ",") != "db1,db2" {
		t.Fatalf("restored version %d (want %d), owned %v", store2.Version("db1"), v1, x2.Owned())
	}
	// agent2 adopted db1 meanwhile: agent1 yields it.
	adopter := testExternals(t, "agent2", "", store2, nil)
	if ok, err := adopter.Adopt(store2.Record("db1")); !ok || err != nil {
		t.Fatalf("adopt: %v %v", ok, err)
	}
	rec := store2.Record("db1")
	if rec.Owner != "agent2" || rec.Version <= v1 || rec.Services.Len() != 1 {
		t.Fatalf("adopted record %+v", rec)
	}
	if gone := x2.Reconcile(); strings.Join(gone, ",") != "db1" || strings.Join(x2.Owned(), ",") != "db2" {
		t.Fatalf("yielded %v, owns %v", gone, x2.Owned())
	}
	// An adoption of a record the catalog holds a newer version of does
	// nothing.
	old := *rec
	old.Version = v1
	if ok, err := x2.Adopt(&old); ok || err != nil || store2.Record("db1").Owner != "agent2" {
		t.Fatalf("stale adoption: %v, owner %s", err, store2.Record("db1").Owner)
	}
	x2.Close()
	// The yield is persisted.
	x3 := testExternals(t, "agent1", dir, catalog.NewStore(), nil)
	if strings.Join(x3.Owned(), ",") != "db2" {
		t.Fatalf("after restart owns %v", x3.Owned())
	}
}

func TestExternalsTombstoneExpires(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	store := catalog.NewStore()
	x := testExternals(t, "agent1", t.TempDir(), store, clock)
	if err := x.Register(NodeRegistration{Node: "db1", Address: "10.0.0.5"}); err != nil {
		t.Fatal(err)
	}
	if err := x.Deregister("db1", "", ""); err != nil {
		t.Fatal(err)
	}
	if gone := x.Reconcile(); len(gone) != 0 {
		t.Fatalf("a fresh tombstone was dropped: %v", gone)
	}
	now = now.Add(TombstoneTTL + time.Minute)
	if gone := x.Reconcile(); strings.Join(gone, ",") != "db1" {
		t.Fatalf("expired tombstone kept: %v", gone)
	}
	tb := store.Snapshot().Tombstones()
	if len(tb) != 1 || !store.ForgetTombstone("db1", tb[0].Version) || len(store.Snapshot().Tombstones()) != 0 {
		t.Fatalf("tombstone not forgotten: %+v", store.Snapshot().Tombstones())
	}
}

// TestLegacyExternals: a service kept the old way (in this agent's own
// record) comes back as the registration of its external node.
func TestLegacyExternals(t *testing.T) {
	l := openState(t, t.TempDir())
	if err := l.registerService(ServiceDefinition{ID: "saas1", Name: "saas", Port: 443, Address: "10.1.1.1",
		Meta:  map[string]string{ExternalNodeMetaKey: "ext", "owner": "them"},
		Check: &CheckDefinition{CheckID: "saas-up", TTL: Duration(time.Hour), Status: catalog.HealthWarning}}, sourceExternal); err != nil {
		t.Fatal(err)
	}
	le := l.LegacyExternals()
	if len(le) != 1 || le[0].ServiceID != "saas1" {
		t.Fatalf("legacy %+v", le)
	}
	store := catalog.NewStore()
	x := testExternals(t, "agent1", "", store, nil)
	if err := x.Register(le[0].Registration); err != nil {
		t.Fatal(err)
	}
	n, ok := store.Snapshot().Node("ext")
	if !ok || n.Node.Address != "10.1.1.1" || n.Instances.Len() != 1 {
		t.Fatalf("node %+v", n)
	}
	inst := n.Instances.Get(0)
	if inst.Service.Meta[ExternalNodeMetaKey] != "" || inst.Service.Meta["owner"] != "them" || inst.Health != catalog.HealthWarning {
		t.Fatalf("instance %+v %s", inst.Service, inst.Health)
	}
}

// FuzzFoldExternal: the external journal's fold takes arbitrary entries
// without panicking, and what it returns decodes.
func FuzzFoldExternal(f *testing.F) {
	rec, _ := json.Marshal(externalEntry{Node: "db1", Record: &catalog.NodeRecord{Node: catalog.Node{Name: "db1"}, Owner: "a", Version: 1}})
	f.Add([]byte(`{"Records":[]}`), rec, []byte(`{"Node":"db1"}`))
	f.Add([]byte(nil), []byte(`{"Node":"x","Record":{"Node":{"Name":"x"}}}`), []byte(`{`))
	f.Fuzz(func(t *testing.T, snap, e1, e2 []byte) {
		if len(snap) == 0 {
			snap = nil
		}
		out, err := foldExternal(snap, [][]byte{e1, e2})
		if err != nil {
			return
		}
		var im externalImage
		if err := json.Unmarshal(out, &im); err != nil {
			t.Fatalf("fold returned what does not decode: %v", err)
		}
	})
}
