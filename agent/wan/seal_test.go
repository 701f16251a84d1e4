package wan

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"net"
	"testing"

	"github.com/hashicorp/memberlist"

	"github.com/chorusdns/chorus/agent/sealing"
	"github.com/chorusdns/chorus/catalog"
)

func testKeyring(t *testing.T) *memberlist.Keyring {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	kr, err := memberlist.NewKeyring(nil, k)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// With a keyring, the exchange takes only packets and pulls sealed with
// one of its keys, on the WAN port and on the LAN gossip port alike:
// plain text and packets sealed with another key are dropped, even from
// an address the pool lists.
func TestSealedWithKeyring(t *testing.T) {
	k1, other := testKeyring(t), testKeyring(t)
	st := catalog.NewStore()
	recv := New(Config{Datacenter: "dc1", Keyring: k1}, st, nil, nil)
	recv.SetWAN(fakePlane{peers: []Peer{{Name: "s.dc2", Addr: "10.2.0.1:8302", DC: "dc2"}}})
	recv.SetLAN(fakePlane{peers: []Peer{{Name: "m", Addr: "10.1.0.2:8301", DC: "dc1"}}})
	held := func() uint64 {
		if r, ok := st.Snapshot().Remote("dc2"); ok {
			return r.Version
		}
		return 0
	}
	for _, plane := range []struct {
		name    string
		from    *net.UDPAddr
		deliver func(*memberlist.Packet)
	}{
		{"wan", &net.UDPAddr{IP: net.IPv4(10, 2, 0, 1), Port: 8302}, recv.HandleWANPacket},
		{"lan", &net.UDPAddr{IP: net.IPv4(10, 1, 0, 2), Port: 8301}, recv.HandleLANPacket},
	} {
		for _, tc := range []struct {
			name    string
			keyring *memberlist.Keyring
			taken   bool
		}{
			{"plain text", nil, false},
			{"another key", other, false},
			{"the same key", k1, true},
		} {
			t.Run(plane.name+"/"+tc.name, func(t *testing.T) {
				before := held()
				s := sampleSummary()
				s.Version = before + 10
				enc, err := s.Encode()
				if err != nil {
					t.Fatal(err)
				}
				sender := New(Config{Datacenter: "dc2", Keyring: tc.keyring}, catalog.NewStore(), nil, nil)
				pkt, err := sender.packet(kindNotice, message{E: []entry{{DC: "dc2", V: s.Version, C: 1}}, S: enc})
				if err != nil {
					t.Fatal(err)
				}
				plane.deliver(&memberlist.Packet{Buf: pkt, From: plane.from})
				want := before
				if tc.taken {
					want = s.Version
				}
				if got := held(); got != want {
					t.Fatalf("held version %d, want %d", got, want)
				}
			})
		}
	}
	if held() == 0 {
		t.Fatal("no sealed notice was taken")
	}

	// A LAN member's pull of the held summary: answered only when sealed
	// with a key of the ring.
	for _, tc := range []struct {
		name     string
		keyring  *memberlist.Keyring
		answered bool
	}{
		{"plain text", nil, false},
		{"another key", other, false},
		{"the same key", k1, true},
	} {
		t.Run("pull/"+tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			done := make(chan struct{})
			go func() { defer close(done); recv.HandleLANStream(server) }()
			defer func() { client.Close(); <-done }()
			s := sealer{sealing.Sealer{Keyring: tc.keyring}}
			req, _ := json.Marshal(map[string]string{"d": "dc2"})
			bw := bufio.NewWriter(client)
			bw.Write([]byte{chorusMagic, typeWAN, kindPull})
			if err := s.writeFrame(bw, kindPull, req); err != nil {
				t.Fatal(err)
			}
			// The server may close before reading all of a frame it
			// refuses; the answer (or its absence) is what counts.
			bw.Flush()
			body, err := s.readFrame(bufio.NewReader(client), kindPull, maxFrame)
			if !tc.answered {
				if err == nil {
					t.Fatalf("a pull sealed with %s was answered", tc.name)
				}
				return
			}
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			e, _, err := decodePullResponse(body)
			if err != nil || e.DC != "dc2" || e.V != held() {
				t.Fatalf("pull answered %+v, %v; want dc2 at %d", e, err, held())
			}
		})
	}
}
