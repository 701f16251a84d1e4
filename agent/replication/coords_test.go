package replication

import (
	"bytes"
	"log/slog"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/coordinate"
)

func testCoords(t testing.TB, name string) *Coords {
	t.Helper()
	c, err := NewCoords(name, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCoordsOneAckInFour: about one ack in coordEvery carries the
// coordinate, and what it carries is Serf's format.
func TestCoordsOneAckInFour(t *testing.T) {
	a := testCoords(t, "a")
	for i := 0; i < 10; i++ {
		if len(a.AckPayload()) == 0 {
			t.Fatal("an ack without the coordinate while warming up")
		}
	}
	a.warm = time.Time{}
	const acks = 4000
	with := 0
	for i := 0; i < acks; i++ {
		p := a.AckPayload()
		if len(p) == 0 {
			continue
		}
		with++
		if p[0] != coordPingVersion {
			t.Fatalf("version byte %d", p[0])
		}
		var c coordinate.Coordinate
		if err := codec.NewDecoderBytes(p[1:], &codec.MsgpackHandle{}).Decode(&c); err != nil {
			t.Fatalf("payload is not a msgpack coordinate: %v", err)
		}
		if !c.IsCompatibleWith(coordinate.NewCoordinate(coordinate.DefaultConfig())) {
			t.Fatalf("coordinate of %d dimensions", len(c.Vec))
		}
	}
	// Binomial(4000, 1/4): mean 1000, sd 27; the bounds are 7 sd out.
	if lo, hi := acks/coordEvery-200, acks/coordEvery+200; with < lo || with > hi {
		t.Fatalf("%d of %d acks carried the coordinate, want %d–%d", with, acks, lo, hi)
	}
}

// TestCoordsUpdateFromCachedPeer: once a peer's coordinate is known, a
// probe answered without one still moves ours, and the distance to the
// peer approaches the measured round trip.
func TestCoordsUpdateFromCachedPeer(t *testing.T) {
	a, b := testCoords(t, "a"), testCoords(t, "b")
	peer := &memberlist.Node{Name: "b"}
	const rtt = 20 * time.Millisecond

	a.NotifyPingComplete(peer, rtt, nil)
	if _, ok := a.Of("b"); ok {
		t.Fatal("a coordinate for b without any payload")
	}
	var payload []byte
	for len(payload) == 0 {
		payload = b.AckPayload()
	}
	a.NotifyPingComplete(peer, rtt, payload)
	if _, ok := a.Of("b"); !ok {
		t.Fatal("b's coordinate not kept")
	}
	for i := 0; i < 50; i++ {
		a.NotifyPingComplete(peer, rtt, nil)
	}
	other, _ := a.Of("b")
	got := a.Mine().DistanceTo(other)
	if got < rtt/2 || got > 2*rtt {
		t.Fatalf("distance to b %v after 50 probes of %v", got, rtt)
	}
	if self, _ := a.Of("a"); !reflect.DeepEqual(self, a.Mine()) {
		t.Fatal("own cached coordinate not current")
	}
	a.Forget("b")
	if _, ok := a.Of("b"); ok {
		t.Fatal("b still cached after forget")
	}
}

// TestCoordsBadPayloadIgnored: a wrong version, garbage or an invalid
// coordinate changes nothing.
func TestCoordsBadPayloadIgnored(t *testing.T) {
	a := testCoords(t, "a")
	bad := coordinate.NewCoordinate(coordinate.DefaultConfig())
	bad.Vec[0] = math.NaN()
	var nan bytes.Buffer
	nan.WriteByte(coordPingVersion)
	if err := codec.NewEncoder(&nan, &codec.MsgpackHandle{}).Encode(bad); err != nil {
		t.Fatal(err)
	}
	short := coordinate.NewCoordinate(&coordinate.Config{Dimensionality: 2, VivaldiErrorMax: 1.5, HeightMin: 10e-6})
	var dims bytes.Buffer
	dims.WriteByte(coordPingVersion)
	if err := codec.NewEncoder(&dims, &codec.MsgpackHandle{}).Encode(short); err != nil {
		t.Fatal(err)
	}
	before := a.Mine()
	for i, p := range [][]byte{{2, 1, 2, 3}, {coordPingVersion, 0xc1, 0xff}, {coordPingVersion}, nan.Bytes(), dims.Bytes()} {
		a.NotifyPingComplete(&memberlist.Node{Name: "b"}, 10*time.Millisecond, p)
		if _, ok := a.Of("b"); ok {
			t.Fatalf("payload %d kept", i)
		}
	}
	if !reflect.DeepEqual(before, a.Mine()) {
		t.Fatal("bad payloads moved our coordinate")
	}
}

// FuzzCoordPayload: no ack payload crashes the decoder or leaves a
// coordinate that is not valid.
func FuzzCoordPayload(f *testing.F) {
	b := testCoords(f, "b")
	for i := 0; i < coordEvery; i++ {
		if p := b.AckPayload(); len(p) > 0 {
			f.Add(p)
		}
	}
	f.Add([]byte{coordPingVersion, 0x80})
	f.Fuzz(func(t *testing.T, p []byte) {
		a := testCoords(t, "a")
		a.NotifyPingComplete(&memberlist.Node{Name: "b"}, 5*time.Millisecond, p)
		if c, ok := a.Of("b"); ok && !c.IsValid() {
			t.Fatalf("invalid coordinate kept: %+v", c)
		}
		if !a.Mine().IsValid() {
			t.Fatal("own coordinate invalid")
		}
	})
}
