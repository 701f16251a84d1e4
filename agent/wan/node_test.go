package wan

import (
	"testing"
	"time"

	"github.com/chorusdns/chorus/catalog"
)

// A summary that is not confirmed is marked stale after StaleAfter and
// still answered from; it is dropped after ReconnectTimeout; a newer
// version replaces it and an older one does not.
func TestReplicaStaleAndExpiry(t *testing.T) {
	st := catalog.NewStore()
	n := New(Config{Datacenter: "dc1", StaleAfter: 30 * time.Second, ReconnectTimeout: 72 * time.Hour}, st, nil, nil)
	now := time.UnixMilli(1_000_000_000)
	n.now = func() time.Time { return now }
	s := sampleSummary()
	enc, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !n.acceptEncoded(entry{DC: "dc2", V: s.Version, C: now.UnixMilli()}, enc, "lan") {
		t.Fatal("a valid summary was refused")
	}
	remote := func() *catalog.RemoteDatacenter {
		r, _ := st.Snapshot().Remote("dc2")
		return r
	}
	if r := remote(); r == nil || r.Stale || r.Version != s.Version {
		t.Fatalf("after accept: %+v", r)
	}
	if _, ok := remote().Snapshot.Service("web"); !ok {
		t.Fatal("the remote catalog has no web")
	}

	// An older version changes nothing.
	old := sampleSummary()
	old.Version = s.Version - 1
	oenc, _ := old.Encode()
	n.acceptEncoded(entry{DC: "dc2", V: old.Version, C: now.UnixMilli()}, oenc, "lan")
	if remote().Version != s.Version {
		t.Fatal("an older summary replaced a newer one")
	}

	now = now.Add(31 * time.Second)
	n.age()
	if r := remote(); r == nil || !r.Stale {
		t.Fatalf("31 s unconfirmed: %+v, want stale", r)
	}
	// A confirmation of the same version makes it fresh again.
	n.confirm(entry{DC: "dc2", V: s.Version, C: now.UnixMilli()})
	if remote().Stale {
		t.Fatal("confirmed, still stale")
	}
	now = now.Add(72*time.Hour + time.Second)
	n.age()
	if r := remote(); r != nil {
		t.Fatalf("after the reconnect timeout: %+v, want dropped", r)
	}
}

// This datacenter's own summary is never taken as a remote one.
func TestOwnDatacenterIgnored(t *testing.T) {
	st := catalog.NewStore()
	n := New(Config{Datacenter: "dc2"}, st, nil, nil)
	s := sampleSummary()
	enc, _ := s.Encode()
	n.acceptEncoded(entry{DC: "dc2", V: s.Version, C: 1}, enc, "lan")
	if len(st.Snapshot().Remotes()) != 0 {
		t.Fatal("own datacenter stored as remote")
	}
}
