package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/hashicorp/serf/coordinate"

	"github.com/chorusdns/chorus/catalog"
)

// coordinateEntry is Consul's CoordinateEntry JSON shape.
type coordinateEntry struct {
	Node    string
	Segment string
	Coord   *coordinate.Coordinate
}

// coordinateDatacenter is Consul's CoordinateDatacenterMap JSON shape.
type coordinateDatacenter struct {
	Datacenter  string
	AreaID      string
	Coordinates []coordinateEntry
}

// coordOf is a node's network coordinate: the one the agents measure for
// a gossip member, else one set for a node that runs no agent with PUT
// /v1/coordinate/update.
func (a *Server) coordOf(node string) (*coordinate.Coordinate, bool) {
	if c, ok := a.gossip.Coordinate(node); ok && c != nil {
		return c, true
	}
	if v, ok := a.extCoords.Load(strings.ToLower(node)); ok {
		return v.(*coordinate.Coordinate), true
	}
	return nil, false
}

// apiCoordinateDatacenters lists the WAN coordinates of each datacenter's
// servers in Consul. Chorus has one datacenter, no servers and no WAN
// pool: it lists this datacenter with no coordinates.
func (a *Server) apiCoordinateDatacenters(w http.ResponseWriter, r *http.Request) (any, error) {
	return []coordinateDatacenter{{Datacenter: a.cfg().Datacenter, AreaID: "wan", Coordinates: []coordinateEntry{}}}, nil
}

// apiCoordinateNodes lists the coordinate of every catalog node that has
// one, in node order.
func (a *Server) apiCoordinateNodes(w http.ResponseWriter, r *http.Request) (any, error) {
	return a.serve(w, r, readQuery{key: keyNodes, local: true, render: func(s *catalog.Snapshot) (any, error) {
		out := []coordinateEntry{}
		for _, n := range s.Nodes() {
			if c, ok := a.coordOf(n.Node.Name); ok {
				out = append(out, coordinateEntry{Node: n.Node.Name, Coord: c})
			}
		}
		return out, nil
	}})
}

// apiCoordinateNode is one node's coordinate, as a list of one (Consul
// lists one per network segment); 404 when the node has none.
func (a *Server) apiCoordinateNode(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("node")
	return a.serve(w, r, readQuery{key: nodeKey(name), local: true, render: func(s *catalog.Snapshot) (any, error) {
		n, ok := s.Node(name)
		if !ok {
			return nil, errorf(http.StatusNotFound, "unknown node %q", name)
		}
		c, ok := a.coordOf(n.Node.Name)
		if !ok {
			return nil, errorf(http.StatusNotFound, "node %q has no network coordinate yet", name)
		}
		return []coordinateEntry{{Node: n.Node.Name, Coord: c}}, nil
	}})
}

// apiCoordinateUpdate sets the coordinate of a catalog node that runs no
// agent (consul-esm measures those). The agents' own coordinates are
// measured by the agents (Vivaldi over the gossip probes) and cannot be
// set. A set coordinate is held by this agent only, for its coordinate
// and ?near= answers.
func (a *Server) apiCoordinateUpdate(w http.ResponseWriter, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	mine, _ := a.gossip.Coordinate("")
	e, err := decodeCoordinateUpdate(b, mine)
	if err != nil {
		return nil, err
	}
	snap := a.store.Snapshot()
	n, ok := snap.Node(e.Node)
	if !ok {
		return nil, errorf(http.StatusNotFound, "unknown node %q: register it first", e.Node)
	}
	// Forget the coordinates of nodes that have left the catalog, so that
	// the map holds at most one per node the catalog has.
	a.extCoords.Range(func(k, _ any) bool {
		if _, ok := snap.Node(k.(string)); !ok {
			a.extCoords.Delete(k)
		}
		return true
	})
	for _, m := range a.gossip.Members() {
		if strings.EqualFold(m.Name, n.Node.Name) {
			return nil, errorf(http.StatusBadRequest, "node %q runs an agent: its coordinate is measured by the agents and cannot be set", e.Node)
		}
	}
	a.extCoords.Store(strings.ToLower(n.Node.Name), e.Coord)
	return nil, nil
}

// decodeCoordinateUpdate decodes and checks the body of PUT
// /v1/coordinate/update: a Node, no Segment, and a Coord with finite
// values of mine's dimensions (Serf's default when mine is nil). The
// errors are 400s naming the field.
func decodeCoordinateUpdate(b []byte, mine *coordinate.Coordinate) (coordinateEntry, error) {
	var e coordinateEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return e, errorf(http.StatusBadRequest, "invalid coordinate update: %v", err)
	}
	if e.Node == "" {
		return e, errorf(http.StatusBadRequest, "Node is required")
	}
	if e.Segment != "" {
		return e, errorf(http.StatusBadRequest, "Segment %q: Chorus has no network segments", e.Segment)
	}
	if mine == nil {
		mine = coordinate.NewCoordinate(coordinate.DefaultConfig())
	}
	if e.Coord == nil || !e.Coord.IsValid() || !mine.IsCompatibleWith(e.Coord) {
		return e, errorf(http.StatusBadRequest, "Coord: want a valid coordinate with finite values and %d dimensions", len(mine.Vec))
	}
	return e, nil
}
