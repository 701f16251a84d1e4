package gossip

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/serf/coordinate"
	"github.com/hashicorp/serf/serf"

	"github.com/chorusdns/chorus/agent/httpapi"
	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/agent/replication"
)

// members is the LAN pool as the replication sees it (replication.Members).
type members struct{ p *Pool }

var _ replication.Members = members{}

func (m members) Members() []replication.Member { return m.p.Members() }
func (m members) NumMembers() int               { return m.p.serf.NumNodes() }
func (m members) LocalAddr() string             { return m.p.Addr() }

func (m members) Join(addr string) error {
	_, err := m.p.serf.Join([]string{addr}, true)
	return err
}

// toMember maps a Serf member onto the replication's view of it.
func toMember(m serf.Member) replication.Member {
	v, _ := strconv.ParseUint(m.Tags[TagVersion], 10, 64)
	return replication.Member{
		Name: m.Name, Addr: net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))),
		IP: m.Addr.String(), Status: memberStatus(m.Status), Version: v, Key: local.ParseKeyTag(m.Tags[TagKey]),
	}
}

// API returns the gossip layer as the HTTP API sees it (httpapi.Gossip).
// leave is what the API's leave runs: leaving the pool and stopping the
// agent, which is the agent's to do.
func (p *Pool) API(leave func(context.Context)) httpapi.Gossip { return api{p: p, leave: leave} }

type api struct {
	p     *Pool
	leave func(context.Context)
}

var _ httpapi.Gossip = api{}

func (g api) Members() []httpapi.Member {
	ms := g.p.serf.Members()
	out := make([]httpapi.Member, len(ms))
	for i, m := range ms {
		out[i] = toAPIMember(m)
	}
	return out
}

func (g api) LocalMember() httpapi.Member           { return toAPIMember(g.p.LocalMember()) }
func (g api) Stats() map[string]string              { return g.p.serf.Stats() }
func (g api) Addr() string                          { return g.p.Addr() }
func (g api) Join(addrs []string) (int, error)      { return g.p.Join(addrs) }
func (g api) Leave(ctx context.Context)             { g.leave(ctx) }
func (g api) ForceLeave(n string, prune bool) error { return g.p.ForceLeave(n, prune) }
func (g api) RTT(node string) (time.Duration, bool) { return g.p.RTT(node) }
func (g api) KeyringOp(op, key string) (*httpapi.KeyringResponse, error) {
	return g.p.KeyringOp(op, key)
}

// WANMembers is the API's optional WAN listing for /v1/agent/members?wan=1.
func (g api) WANMembers() []httpapi.Member { return g.p.wan.Members() }

func (g api) Coordinate(node string) (*coordinate.Coordinate, bool) {
	if node == "" || node == g.p.cfg.NodeName {
		return g.p.coords.Mine(), true
	}
	return g.p.coords.Of(node)
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

// Event is a member event of the LAN pool, as the agent's event handlers
// see it.
type Event struct {
	event serf.MemberEvent
	self  serf.Member
}

// Type is Serf's name of the event: member-join, member-leave,
// member-failed, member-update or member-reap.
func (e Event) Type() string { return e.event.Type.String() }

// Script is what Serf's event handler protocol hands a handler: a line per
// member on standard input (name, address, role, tags as k=v sorted,
// tab-separated) and SERF_EVENT, SERF_SELF_NAME, SERF_SELF_ROLE and a
// SERF_TAG_<KEY> per tag of this agent in the environment.
func (e Event) Script() (stdin []byte, env []string) {
	var input bytes.Buffer
	for _, m := range e.event.Members {
		tags := make([]string, 0, len(m.Tags))
		for k, v := range m.Tags {
			tags = append(tags, k+"="+v)
		}
		slices.Sort(tags)
		fmt.Fprintf(&input, "%s\t%s\t%s\t%s\n", m.Name, m.Addr, m.Tags[tagRole], strings.Join(tags, ","))
	}
	env = []string{"SERF_EVENT=" + e.Type(), "SERF_SELF_NAME=" + e.self.Name, "SERF_SELF_ROLE=" + e.self.Tags[tagRole]}
	for k, v := range e.self.Tags {
		env = append(env, "SERF_TAG_"+strings.ToUpper(k)+"="+v)
	}
	return input.Bytes(), env
}
