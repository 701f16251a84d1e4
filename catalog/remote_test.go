package catalog

import (
	"errors"
	"testing"
	"time"
)

func remoteDC(name string, rtt time.Duration) *RemoteDatacenter {
	return &RemoteDatacenter{Name: name, Version: 1, RTT: rtt, Snapshot: NewStore().Snapshot()}
}

func TestSetRemotes(t *testing.T) {
	st := NewStore()
	if st.Snapshot().Remotes() != nil || st.Snapshot().RemotesIndex() != 0 {
		t.Fatal("a new store has remotes")
	}
	dc2, dc3, dc4 := remoteDC("dc2", 30*time.Millisecond), remoteDC("dc3", 10*time.Millisecond), remoteDC("dc4", 0)
	st.SetRemotes([]*RemoteDatacenter{dc2, dc3, dc4})
	s := st.Snapshot()
	got := s.Remotes()
	if len(got) != 3 || got[0] != dc3 || got[1] != dc2 || got[2] != dc4 {
		t.Fatalf("order %v %v %v, want dc3 dc2 dc4 (nearest first, unknown last)", got[0].Name, got[1].Name, got[2].Name)
	}
	if r, ok := s.Remote("DC2"); !ok || r != dc2 {
		t.Fatal("Remote is not case-insensitive")
	}
	if s.RemotesIndex() != s.Index {
		t.Fatalf("remotes index %d, snapshot index %d", s.RemotesIndex(), s.Index)
	}
	st.SetRemotes([]*RemoteDatacenter{dc2, dc3, dc4})
	if st.Snapshot() != s {
		t.Fatal("the same remotes published a new snapshot")
	}
	// A later node change keeps the remotes.
	st.SetMember("n", "10.0.0.1", MemberAlive)
	if _, ok := st.Snapshot().Remote("dc3"); !ok {
		t.Fatal("a node change dropped the remotes")
	}
	select {
	case <-s.Changed():
	default:
		t.Fatal("the old snapshot was not marked changed")
	}
}

func TestFailoverOrder(t *testing.T) {
	st := NewStore()
	st.SetRemotes([]*RemoteDatacenter{
		remoteDC("dc2", 30*time.Millisecond), remoteDC("dc3", 10*time.Millisecond),
		remoteDC("dc4", 50*time.Millisecond), remoteDC("far", 0),
	})
	snap := st.Snapshot()
	for _, tc := range []struct {
		spec string
		want []string
		err  bool
	}{
		{spec: "", want: nil},
		{spec: "dc2", want: []string{"dc2"}},
		{spec: "dc4, dc2", want: []string{"dc4", "dc2"}},
		{spec: "DC2,dc2", want: []string{"dc2"}},
		{spec: "unknown,dc3", want: []string{"dc3"}},
		{spec: "dc1,dc2", want: []string{"dc2"}}, // the local datacenter is skipped
		{spec: "nearest:2", want: []string{"dc3", "dc2"}},
		{spec: "dc2,nearest:2", want: []string{"dc2", "dc3", "dc4"}},
		{spec: "nearest:9", want: []string{"dc3", "dc2", "dc4", "far"}},
		{spec: "Nearest:1", want: []string{"dc3"}},
		{spec: "nearest:0", err: true},
		{spec: "nearest:x", err: true},
		{spec: "dc 2", err: true},
		{spec: "dc2,,dc3", err: true},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			f, err := ParseFailover(tc.spec)
			if tc.err {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range f.Order(snap, "dc1") {
				got = append(got, r.Name)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}
