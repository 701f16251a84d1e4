package replication

import (
	"bytes"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/coordinate"
)

// coordPingVersion is the first byte of a probe ack's coordinate payload,
// the same format as Serf's own (serf.PingVersion), so agents of either
// kind read each other's.
const coordPingVersion = 1

// coordEvery: one probe ack in coordEvery, drawn at random, carries this
// agent's coordinate. Random rather than every n-th, so that a member
// whose pings keep arriving at the same point of a cycle is not always
// left out.
const coordEvery = 4

// coordWarmup: for this long after start every ack carries the
// coordinate, so that peers learn a new agent's coordinate (and ?near=
// works) in seconds, while it moves most.
const coordWarmup = 30 * time.Second

// Coords keeps this agent's network coordinate (Serf's Vivaldi client)
// from its probes' round-trip times, and the last coordinate heard from
// each member: ?near= sorting and DNS distances read them.
//
// It stands in for Serf's own ping delegate, which puts the encoded
// coordinate (about 135 bytes) on every probe ack: at 300 ms probes that
// was 60% of an idle agent's gossip bytes. Here one ack in coordEvery
// carries it (every ack in the agent's first coordWarmup), and a probe
// answered without one still updates our coordinate from its round trip
// and the peer's last known coordinate, which moves slowly once the
// cluster has settled.
type Coords struct {
	self   string
	warm   time.Time // every ack carries the coordinate until then
	client *coordinate.Client
	logger *slog.Logger

	mu    sync.RWMutex
	cache map[string]*coordinate.Coordinate // node → its last coordinate
}

var coordHandle = &codec.MsgpackHandle{}

// NewCoords returns the coordinates of agent self: it is the memberlist
// ping delegate (set it as memberlist.Config.Ping).
func NewCoords(self string, logger *slog.Logger) (*Coords, error) {
	client, err := coordinate.NewClient(coordinate.DefaultConfig())
	if err != nil {
		return nil, err
	}
	c := &Coords{self: self, warm: time.Now().Add(coordWarmup), client: client, logger: logger,
		cache: make(map[string]*coordinate.Coordinate)}
	c.cache[self] = client.GetCoordinate()
	return c, nil
}

// AckPayload implements memberlist.PingDelegate: our coordinate on every
// ack while warming up, then on one ack in coordEvery.
func (c *Coords) AckPayload() []byte {
	if time.Now().After(c.warm) && rand.IntN(coordEvery) != 0 {
		return nil
	}
	var buf bytes.Buffer
	buf.WriteByte(coordPingVersion)
	if err := codec.NewEncoder(&buf, coordHandle).Encode(c.client.GetCoordinate()); err != nil {
		c.logger.Error("encode coordinate", "err", err)
		return nil
	}
	return buf.Bytes()
}

// NotifyPingComplete implements memberlist.PingDelegate: it keeps the
// coordinate the ack carried, if any, and updates ours from the round
// trip against the peer's latest coordinate.
func (c *Coords) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	if len(payload) > 0 {
		coord, ok := c.decode(other.Name, payload)
		if !ok {
			return
		}
		c.mu.Lock()
		c.cache[other.Name] = coord
		c.mu.Unlock()
	}
	c.mu.RLock()
	remote := c.cache[other.Name]
	c.mu.RUnlock()
	if remote == nil {
		return
	}
	if _, err := c.client.Update(other.Name, remote, rtt); err != nil {
		c.logger.Debug("coordinate rejected", "node", other.Name, "err", err)
		return
	}
	mine := c.client.GetCoordinate()
	c.mu.Lock()
	c.cache[c.self] = mine
	c.mu.Unlock()
}

func (c *Coords) decode(node string, payload []byte) (*coordinate.Coordinate, bool) {
	if payload[0] != coordPingVersion {
		c.logger.Debug("unsupported coordinate version", "node", node, "version", payload[0])
		return nil, false
	}
	var coord coordinate.Coordinate
	if err := codec.NewDecoderBytes(payload[1:], coordHandle).Decode(&coord); err != nil {
		c.logger.Debug("bad coordinate", "node", node, "err", err)
		return nil, false
	}
	if !coord.IsValid() || !coord.IsCompatibleWith(c.client.GetCoordinate()) {
		c.logger.Debug("bad coordinate", "node", node)
		return nil, false
	}
	return &coord, true
}

// Mine returns this agent's coordinate.
func (c *Coords) Mine() *coordinate.Coordinate { return c.client.GetCoordinate() }

// Of returns node's last known coordinate.
func (c *Coords) Of(node string) (*coordinate.Coordinate, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	coord, ok := c.cache[node]
	return coord, ok
}

// Forget drops a member the gossip layer has erased.
func (c *Coords) Forget(node string) {
	c.client.ForgetNode(node)
	c.mu.Lock()
	delete(c.cache, node)
	c.mu.Unlock()
}
