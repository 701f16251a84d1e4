package httpapi

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/hashicorp/serf/coordinate"
)

// FuzzCoordinateUpdate feeds arbitrary bodies to the decoder of PUT
// /v1/coordinate/update: errors are fine, panics are not, and whatever
// it accepts has a node, no segment and a usable coordinate (finite,
// and distances to it are finite).
func FuzzCoordinateUpdate(f *testing.F) {
	ok, _ := json.Marshal(coordinateEntry{Node: "db1", Coord: coordinate.NewCoordinate(coordinate.DefaultConfig())})
	f.Add(ok)
	f.Add([]byte(`{"Node":"db1","Segment":"x","Coord":{"Vec":[0,0,0,0,0,0,0,0],"Error":1.5,"Adjustment":0,"Height":1e-5}}`))
	f.Add([]byte(`{"Node":"db1","Coord":{"Vec":[1,2],"Error":1,"Height":1}}`))
	f.Add([]byte(`{"Node":"","Coord":null}`))
	f.Add([]byte(`[]`))
	mine := coordinate.NewCoordinate(coordinate.DefaultConfig())
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeCoordinateUpdate(b, mine)
		if err != nil {
			return
		}
		if e.Node == "" || e.Segment != "" || e.Coord == nil || !e.Coord.IsValid() || len(e.Coord.Vec) != len(mine.Vec) {
			t.Fatalf("accepted %+v", e)
		}
		if d := mine.DistanceTo(e.Coord).Seconds(); math.IsNaN(d) {
			t.Fatalf("accepted a coordinate whose distance is NaN: %+v", e.Coord)
		}
	})
}

func TestDecodeCoordinateUpdate(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"no node", `{"Coord":{"Vec":[0,0,0,0,0,0,0,0],"Error":1,"Height":1}}`, "Node is required"},
		{"segment", `{"Node":"a","Segment":"s","Coord":{"Vec":[0,0,0,0,0,0,0,0],"Error":1,"Height":1}}`, `Segment "s"`},
		{"no coord", `{"Node":"a"}`, "Coord"},
		{"dimensions", `{"Node":"a","Coord":{"Vec":[0,0],"Error":1,"Height":1}}`, "8 dimensions"},
		{"not json", `{`, "invalid coordinate update"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeCoordinateUpdate([]byte(tc.body), nil)
			if err == nil || statusOf(err) != 400 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want a 400 naming %q", err, tc.want)
			}
		})
	}
}
