package gossip

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/agent/replication"
	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/test/testutil"
)

// testPool starts a LAN member named name on 127.0.0.1 with the local
// profile, its own catalog and syncer, and runs it until the test ends.
// Every event it hears is appended to *events.
func testPool(t *testing.T, name string, events *eventLog) *Pool {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "serf"), 0o700); err != nil {
		t.Fatal(err)
	}
	logger := testutil.Logger(t).With("node", name)
	reg := prometheus.NewPedanticRegistry()
	store := catalog.NewStore()
	syncer := replication.New(name, store, nil, logger, replication.NewMetrics(reg))
	p, err := New(Config{
		NodeName: name, Datacenter: "dc1", Bind: "127.0.0.1", Advertise: "127.0.0.1",
		DataDir: dir, Profile: "local", Build: "test", RetryInterval: time.Second,
		WANReconnectTimeout: time.Hour, WAN: WANConfig{Speakers: 1},
	}, Deps{
		Logger: logger, Root: logger, Registerer: reg, Store: store, Sync: syncer,
		SetGossipAddr: func(string) uint64 { return 1 }, OnEvent: events.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { syncer.Run(ctx) })
	wg.Go(func() {
		if err := p.Run(ctx); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		p.WAN().Close(context.Background(), false)
		p.Shutdown()
		syncer.Close()
	})
	return p
}

type eventLog struct {
	mu     sync.Mutex
	events []string // "type\nstdin"
}

func (l *eventLog) add(e Event) {
	stdin, _ := e.Script()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e.Type()+"\n"+string(stdin))
}

func (l *eventLog) find(prefix string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.events, func(e string) bool { return strings.HasPrefix(e, prefix) })
}

// TestMemberUpdateEvent: a member whose Serf tags change reaches the
// event hook as member-update, with Serf's event handler stdin (name,
// address, role, sorted tags), and its status reaches the catalog.
func TestMemberUpdateEvent(t *testing.T) {
	var events0, events1 eventLog
	p0 := testPool(t, "node0", &events0)
	p1 := testPool(t, "node1", &events1)
	if _, err := p1.Join([]string{p0.Addr()}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if n, ok := p0.store.Snapshot().Node("node1"); !ok || n.Status != catalog.MemberAlive {
			return fmt.Errorf("node0's catalog does not hold node1 alive")
		}
		if !events0.find("member-join\nnode1\t127.0.0.1\tnode\t") {
			return fmt.Errorf("no member-join for node1 yet")
		}
		return nil
	})
	// An agent sets its tags once, at start; node1 changes one here, as a
	// restart with a new zone or build would.
	tags := maps.Clone(p1.serf.LocalMember().Tags)
	tags["build"] = "0.0.0-update-test"
	if err := p1.serf.SetTags(tags); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if !events0.find("member-update\nnode1\t127.0.0.1\tnode\tbuild=0.0.0-update-test,") {
			return fmt.Errorf("no member-update for node1 yet")
		}
		return nil
	})
}
