package agent

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/serf/coordinate"
	"github.com/hashicorp/serf/serf"

	"github.com/chorusdns/chorus/agent/httpapi"
	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/agent/replication"
)

// serfMembers is Serf as the replication sees it (replication.Members).
type serfMembers struct{ a *Agent }

var _ replication.Members = serfMembers{}

func (m serfMembers) Members() []replication.Member {
	ms := m.a.serf.Members()
	out := make([]replication.Member, len(ms))
	for i, sm := range ms {
		out[i] = toMember(sm)
	}
	return out
}

func (m serfMembers) NumMembers() int   { return m.a.serf.NumNodes() }
func (m serfMembers) LocalAddr() string { return m.a.SerfAddr() }

func (m serfMembers) Join(addr string) error {
	_, err := m.a.serf.Join([]string{addr}, true)
	return err
}

// toMember maps a Serf member onto the replication's view of it.
func toMember(m serf.Member) replication.Member {
	v, _ := strconv.ParseUint(m.Tags[tagVersion], 10, 64)
	return replication.Member{
		Name: m.Name, Addr: net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))),
		IP: m.Addr.String(), Status: memberStatus(m.Status), Version: v, Key: local.ParseKeyTag(m.Tags[tagKey]),
	}
}

// gossip is the agent as the HTTP API sees it (httpapi.Gossip).
type gossip struct{ a *Agent }

var _ httpapi.Gossip = gossip{}

func (g gossip) Members() []httpapi.Member {
	ms := g.a.serf.Members()
	out := make([]httpapi.Member, len(ms))
	for i, m := range ms {
		out[i] = toAPIMember(m)
	}
	return out
}

func (g gossip) LocalMember() httpapi.Member       { return toAPIMember(g.a.serf.LocalMember()) }
func (g gossip) Stats() map[string]string          { return g.a.serf.Stats() }
func (g gossip) Addr() string                      { return g.a.SerfAddr() }
func (g gossip) Join(addrs []string) (int, error)  { return g.a.Join(addrs) }
func (g gossip) Leave(ctx context.Context)         { g.a.Leave(ctx) }
func (g gossip) ForceLeave(n string, p bool) error { return g.a.ForceLeave(n, p) }
func (g gossip) RTT(node string) (time.Duration, bool) {
	return g.a.RTT(node)
}

func (g gossip) KeyringOp(op, key string) (*httpapi.KeyringResponse, error) {
	return g.a.KeyringOp(op, key)
}

func (g gossip) Coordinate(node string) (*coordinate.Coordinate, bool) {
	if node == "" || node == g.a.NodeName() {
		return g.a.coords.Mine(), true
	}
	return g.a.coords.Of(node)
}

// toAPIMember maps a Serf member onto Consul's AgentMember shape.
func toAPIMember(m serf.Member) httpapi.Member {
	tags := m.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return httpapi.Member{
		Name: m.Name, Addr: m.Addr.String(), Port: m.Port, Tags: tags, Status: int(memberStatus(m.Status)),
		ProtocolMin: m.ProtocolMin, ProtocolMax: m.ProtocolMax, ProtocolCur: m.ProtocolCur,
		DelegateMin: m.DelegateMin, DelegateMax: m.DelegateMax, DelegateCur: m.DelegateCur,
	}
}
