package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/agent/replication"
	"github.com/chorusdns/chorus/catalog"
)

// Serf tag keys. Tags ride every alive message and push-pull, so they
// always converge; the version tag is the truth the replication follows.
const (
	// TagVersion is the record version this agent started with.
	TagVersion = "v"
	// TagKey is the public key this node's records are signed with
	// (base64, 43 characters: Serf caps all of a member's tags at 512
	// bytes).
	TagKey        = "k"
	tagZone       = "zone"
	tagDatacenter = "dc"
	tagBuild      = "build"
	tagRole       = "role"
	tagProtocol   = "vsn"
	tagProtoMin   = "vsn_min"
	tagProtoMax   = "vsn_max"
)

// protocolTag is the record protocol version as the vsn tags carry it.
var protocolTag = strconv.Itoa(int(catalog.RecordFormat))

// Config is what the gossip layer takes from the agent's configuration.
// Everything but WAN is read at New only.
type Config struct {
	NodeName, Datacenter, Zone string
	// Bind is the address both pools bind, Advertise the address peers
	// reach this agent at (already resolved).
	Bind, Advertise string
	// Port is the LAN pool's port (serf_port; 0 picks a free one),
	// WANPort the WAN pool's (serf_wan_port).
	Port, WANPort int
	// DataDir holds the keyring file and Serf's snapshot (under serf/).
	DataDir string
	// Encrypt is the configured gossip key (base64), used when the data
	// dir holds no keyring file yet.
	Encrypt string
	// Profile names the timings (lan, wan, local), Tuning overrides them.
	Profile string
	Tuning  Tuning
	// Build is the agent's version (tag build), KeyTag the public key
	// this node's records are signed with, as its tag (local.PublicKeyTag).
	Build, KeyTag string
	// RetryJoin, RetryInterval and RetryMax drive RetryJoin.
	RetryJoin     []string
	RetryInterval time.Duration
	RetryMax      int
	// ExpectPeers: the agent was told of LAN peers (join or retry_join
	// addresses); a Serf snapshot that lists members counts too.
	ExpectPeers bool
	// WANReconnectTimeout is the WAN pool's reconnect timeout and how
	// long a remote datacenter's summary is kept.
	WANReconnectTimeout time.Duration
	// WAN is the part of the WAN settings a reload changes (SetWAN).
	WAN WANConfig
}

// Deps are the parts of the agent the gossip layer works with.
type Deps struct {
	// Logger receives the gossip layer's own lines (the agent's logger);
	// Root is the logger Serf's and memberlist's lines go to, under
	// component=serf and component=serf-wan.
	Logger, Root *slog.Logger
	Registerer   prometheus.Registerer
	// Store receives member statuses; Sync hears of members and carries
	// Chorus's traffic on the gossip port. Sync must have been created
	// with the keyring LoadKeyring returned.
	Store   *catalog.Store
	Sync    *replication.Syncer
	Keyring *memberlist.Keyring
	// SetGossipAddr tells the local state this agent's gossip address
	// once the port is bound; it returns the record version to tag.
	SetGossipAddr func(addr string) uint64
	// OnEvent, if not nil, hears every member event after the catalog
	// has; it runs on the event loop and must not block.
	OnEvent func(Event)
}

// Pool is this agent's member of the LAN Serf pool, and its WAN member
// while it speaks for the datacenter (WAN). It owns the Serf instances,
// the gossip-port transport, the network coordinates and the keyring.
// Create it with New; Run must run for member events to reach the
// catalog; Leave and Shutdown end it.
type Pool struct {
	cfg     Config
	logger  *slog.Logger
	store   *catalog.Store
	sync    *replication.Syncer
	keyring *memberlist.Keyring
	onEvent func(Event)
	metrics *metrics

	serf   *serf.Serf
	tr     *replication.Transport
	coords *replication.Coords
	events chan serf.Event
	wan    *WAN
	// prevPeers are the members the Serf snapshot listed at New.
	prevPeers []string

	joined  atomic.Bool // a Join has reached a peer
	leaving atomic.Bool // Leave has been called
	// leaves is the Serf leave Leave started (Shutdown waits for it).
	leaves sync.WaitGroup
}

// New creates this agent's member of the LAN pool on the gossip port,
// with the multiplexing transport that also carries Chorus's record and
// summary traffic, and the WAN side (not yet speaking). Serf starts its
// own goroutines; the member events wait for Run.
func New(cfg Config, d Deps) (*Pool, error) {
	p := &Pool{
		cfg: cfg, logger: d.Logger, store: d.Store, sync: d.Sync, keyring: d.Keyring,
		onEvent: d.OnEvent, metrics: newMetrics(d.Registerer),
		prevPeers: snapshotPeers(snapshotPath(cfg.DataDir), cfg.NodeName),
	}
	ml, prof := memberlistConfig(cfg.Profile, cfg.Tuning)
	serfLog := d.Root.With("component", "serf")
	slogger := serfLogger(serfLog, p.metrics.gossipRemoteErrors.WithLabelValues("lan"))
	ml.Logger = slogger
	ml.Name = cfg.NodeName
	ml.BindAddr = cfg.Bind
	ml.AdvertiseAddr = cfg.Advertise
	if p.keyring != nil {
		ml.Keyring = p.keyring
		ml.SecretKey = p.keyring.GetPrimaryKey()
		ml.GossipVerifyIncoming, ml.GossipVerifyOutgoing = true, true
	} else {
		p.logger.Warn("gossip encryption is off: anyone who reaches the gossip port can join the pool and register nodes of their own; " +
			"record signatures still keep them from changing other nodes' services. Set encrypt to admit only key holders")
	}

	// Our own ping delegate keeps the network coordinates in place of
	// Serf's, which would send them on every probe ack (coords.go).
	var err error
	p.coords, err = replication.NewCoords(cfg.NodeName, serfLog)
	if err != nil {
		return nil, fmt.Errorf("network coordinates: %w", err)
	}
	ml.Ping = p.coords

	p.wan = newWAN(p, d.Root, d.Registerer)
	tr, err := replication.NewTransport(cfg.Bind, cfg.Port, serfLog, p.lanPacket, p.lanStream)
	if err != nil {
		return nil, fmt.Errorf("serf_port: %w", err)
	}
	tr.Start()
	port := tr.Port()
	ml.BindPort, ml.AdvertisePort = port, port
	ml.Transport = tr
	p.tr = tr

	sc := serf.DefaultConfig()
	sc.NodeName = cfg.NodeName
	sc.MemberlistConfig = ml
	sc.Logger = slogger
	// The version tag carries the start version, set here once: setting
	// it later is a Serf tag update (an alive message every member
	// passes on) racing Serf's own queries. The record the agent
	// publishes at start holds at least this version.
	startVersion := d.SetGossipAddr(net.JoinHostPort(cfg.Advertise, strconv.Itoa(port)))
	sc.Tags = p.tags(startVersion)
	sc.SnapshotPath = snapshotPath(cfg.DataDir)
	sc.RejoinAfterLeave = false
	sc.ReconnectInterval = prof.ReconnectInterval
	sc.ReconnectTimeout = 72 * time.Hour
	sc.TombstoneTimeout = 24 * time.Hour
	sc.EnableNameConflictResolution = true
	sc.DisableCoordinates = true // kept by p.coords instead
	p.events = make(chan serf.Event, 4096)
	sc.EventCh = p.events
	if p.keyring != nil {
		sc.KeyringFile = keyringPath(cfg.DataDir)
	}
	s, err := serf.Create(sc)
	if err != nil {
		tr.Shutdown()
		return nil, fmt.Errorf("start gossip on %s:%d: %w", cfg.Bind, port, err)
	}
	p.serf = s
	p.sync.Attach(members{p}, tr)
	self := s.LocalMember()
	p.store.SetMember(self.Name, self.Addr.String(), catalog.MemberAlive)
	return p, nil
}

// snapshotPath is where Serf keeps its snapshot in the data dir.
func snapshotPath(dataDir string) string {
	return filepath.Join(dataDir, "serf", "local.snapshot")
}

// PreviousPeers are the gossip addresses of the alive members other than
// this agent that Serf's snapshot listed at New: the members a restarted
// agent rejoins even without join addresses.
func (p *Pool) PreviousPeers() []string { return p.prevPeers }

// expectPeers reports whether this agent was told of LAN peers at start:
// join or retry_join addresses, or members in its Serf snapshot.
func (p *Pool) expectPeers() bool { return p.cfg.ExpectPeers || len(p.prevPeers) > 0 }

// tags builds this agent's Serf tags.
func (p *Pool) tags(version uint64) map[string]string {
	t := map[string]string{
		TagVersion:    strconv.FormatUint(version, 10),
		TagKey:        p.cfg.KeyTag,
		tagDatacenter: p.cfg.Datacenter,
		tagBuild:      p.cfg.Build,
		// Consul's CLI (consul members) reads role, build, vsn and dc:
		// role "node" is what Consul calls a client agent (no Raft, no
		// server duties), which is what every Chorus agent is; vsn is
		// the version of Chorus's record protocol (catalog.RecordFormat).
		tagRole:     "node",
		tagProtocol: protocolTag,
		tagProtoMin: protocolTag,
		tagProtoMax: protocolTag,
	}
	if p.cfg.Zone != "" {
		t[tagZone] = p.cfg.Zone
	}
	return t
}

// Run applies Serf's membership events to the catalog and asks the
// syncer for records whose version moved, until ctx is done. It never
// blocks Serf for long: the event channel is large and the work here is
// local. It returns an error only when Serf shut itself down without a
// Leave: it lost a node-name conflict.
func (p *Pool) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.serf.ShutdownCh():
			if !p.leaving.Load() && ctx.Err() == nil {
				return fmt.Errorf("node name %q is already used by another alive agent (Serf's name-conflict resolution picked the other one): give this agent a unique --node: %w", p.cfg.NodeName, ErrNameConflict)
			}
			return nil
		case e := <-p.events:
			me, ok := e.(serf.MemberEvent)
			if !ok {
				continue
			}
			p.apply(me)
		}
	}
}

// apply is one member event: statuses into the catalog, members to the
// syncer, then the event hook.
func (p *Pool) apply(me serf.MemberEvent) {
	p.store.Update(func(tx *catalog.Tx) {
		for _, m := range me.Members {
			switch me.Type {
			case serf.EventMemberReap:
				if m.Name != p.cfg.NodeName {
					tx.RemoveNode(m.Name)
					p.coords.Forget(m.Name)
					// A node the catalog forgets may come back
					// with a new key.
					p.sync.Forget(m.Name)
				}
			default:
				tx.SetMember(m.Name, m.Addr.String(), memberStatus(m.Status))
			}
		}
	})
	for _, m := range me.Members {
		p.sync.Observe(toMember(m))
	}
	p.metrics.memberEvents.WithLabelValues(me.Type.String()).Add(float64(len(me.Members)))
	if p.onEvent != nil {
		p.onEvent(Event{event: me, self: p.LocalMember()})
	}
}

func memberStatus(s serf.MemberStatus) catalog.MemberStatus {
	switch s {
	case serf.StatusAlive:
		return catalog.MemberAlive
	case serf.StatusLeaving:
		return catalog.MemberLeaving
	case serf.StatusLeft:
		return catalog.MemberLeft
	case serf.StatusFailed:
		return catalog.MemberFailed
	}
	return catalog.MemberNone
}

// Join asks Serf to join the members at addrs ("host" or "host:port",
// the default port being the serf_port). It returns how many it reached.
func (p *Pool) Join(addrs []string) (int, error) {
	full := make([]string, 0, len(addrs))
	for _, s := range addrs {
		if _, _, err := net.SplitHostPort(s); err != nil {
			s = net.JoinHostPort(s, strconv.Itoa(defaultPort(p.cfg.Port)))
		}
		full = append(full, s)
	}
	// The catch-up starts before the join, so that the member events
	// the join brings pull nothing of their own (catchup.go).
	p.sync.BeginCatchUp()
	n, err := p.serf.Join(full, true)
	if n > 0 {
		p.joined.Store(true)
		p.logger.Info("joined cluster", "contacted", n)
		p.sync.Kick()
	} else {
		p.sync.EndCatchUp()
	}
	if err != nil && n == 0 {
		return 0, fmt.Errorf("join %v: %w", addrs, err)
	}
	return n, nil
}

// Joined reports whether a Join has reached a peer.
func (p *Pool) Joined() bool { return p.joined.Load() }

func defaultPort(port int) int {
	if port == 0 {
		return 8301
	}
	return port
}

// RetryJoin keeps joining the retry_join addresses with backoff until
// one join succeeds, retry_max attempts failed or ctx is done, so agents
// may start in any order.
func (p *Pool) RetryJoin(ctx context.Context) {
	addrs := p.cfg.RetryJoin
	if len(addrs) == 0 {
		return
	}
	delay := p.cfg.RetryInterval
	for attempt := 1; ; attempt++ {
		if _, err := p.Join(addrs); err == nil {
			return
		} else {
			p.logger.Warn("retry join failed", "attempt", attempt, "addrs", addrs, "err", err, "next_in_seconds", delay.Seconds())
		}
		if p.cfg.RetryMax > 0 && attempt >= p.cfg.RetryMax {
			p.logger.Error("retry join gave up", "attempts", attempt)
			return
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		// Back off up to 8× the interval, with jitter.
		if delay < 8*p.cfg.RetryInterval {
			delay *= 2
		}
		delay = delay/2 + rand.N(delay/2+1)
	}
}

// Leave announces a graceful leave of the LAN pool and waits for it to
// propagate, bounded by ctx. Only the first call leaves; it is safe to
// call more than once.
func (p *Pool) Leave(ctx context.Context) {
	if !p.leaving.CompareAndSwap(false, true) {
		return
	}
	errc := make(chan error, 1)
	// Serf's Leave takes no ctx: it runs on its own goroutine, bounded
	// by Serf's broadcast timeout and leave propagation delay, which
	// Shutdown waits for.
	p.leaves.Go(func() { errc <- p.serf.Leave() })
	select {
	case err := <-errc:
		if err != nil {
			p.logger.Warn("leave", "err", err)
		}
	case <-ctx.Done():
		p.logger.Warn("leave timed out")
	}
}

// Leaving reports whether Leave has been called.
func (p *Pool) Leaving() bool { return p.leaving.Load() }

// Shutdown stops this agent's LAN member without a leave (after Leave,
// or as a crash would). The WAN member must have been closed before
// (WAN.Close). It is safe to call more than once.
func (p *Pool) Shutdown() error {
	err := p.serf.Shutdown()
	p.leaves.Wait()
	return err
}

// ForceLeave marks a failed member as left, removing it at once.
func (p *Pool) ForceLeave(node string, prune bool) error {
	var err error
	if prune {
		err = p.serf.RemoveFailedNodePrune(node)
	} else {
		err = p.serf.RemoveFailedNode(node)
	}
	if err != nil {
		return fmt.Errorf("force-leave %q: %w", node, err)
	}
	return nil
}

// Members returns Serf's view of the LAN pool as the replication sees
// it: name, gossip address, status, version tag and key.
func (p *Pool) Members() []replication.Member {
	ms := p.serf.Members()
	out := make([]replication.Member, len(ms))
	for i, sm := range ms {
		out[i] = toMember(sm)
	}
	return out
}

// LocalMember is this agent's own member of the LAN pool (its tags as
// peers see them).
func (p *Pool) LocalMember() serf.Member { return p.serf.LocalMember() }

// Addr returns the gossip address peers join ("ip:port").
func (p *Pool) Addr() string {
	m := p.serf.LocalMember()
	return net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port)))
}

// Transport is the gossip port's transport (byte counts, and the fault
// injection of tests).
func (p *Pool) Transport() *replication.Transport { return p.tr }

// WAN is this agent's side of the WAN: the summary exchange and, while
// it speaks, its member of the WAN pool.
func (p *Pool) WAN() *WAN { return p.wan }

// RTT implements dns.Distances: the estimated round-trip time to node from
// network coordinates.
func (p *Pool) RTT(node string) (time.Duration, bool) {
	if node == p.cfg.NodeName {
		return 0, true
	}
	mine := p.coords.Mine()
	other, ok := p.coords.Of(node)
	if !ok || other == nil {
		return 0, false
	}
	if !mine.IsCompatibleWith(other) {
		return 0, false
	}
	return mine.DistanceTo(other), true
}

// memberlistConfig returns memberlist's configuration for a profile
// (validated) and the knobs set on top.
func memberlistConfig(profile string, t Tuning) (*memberlist.Config, timings) {
	prof, _ := profileTimings(profile)
	ml := prof.base()
	ml.ProbeInterval, ml.ProbeTimeout = prof.ProbeInterval, prof.ProbeTimeout
	ml.GossipInterval, ml.PushPullInterval = prof.GossipInterval, prof.PushPullInterval
	ml.SuspicionMult = prof.SuspicionMult
	override(&ml.SuspicionMaxTimeoutMult, prof.SuspicionMaxTimeoutMult)
	override(&ml.RetransmitMult, prof.RetransmitMult)
	override(&ml.AwarenessMaxMultiplier, prof.AwarenessMaxMultiplier)
	override(&ml.HandoffQueueDepth, prof.HandoffQueueDepth)
	// A restarted agent may come back with a new address (a container,
	// DHCP): let it reclaim its name from its own dead entry soon. An
	// alive member's name is never taken (see the conflict handling).
	ml.DeadNodeReclaimTime = 10 * time.Second
	// t is validated: none is negative.
	override(&ml.ProbeInterval, t.ProbeInterval)
	override(&ml.ProbeTimeout, t.ProbeTimeout)
	override(&ml.GossipInterval, t.GossipInterval)
	override(&ml.PushPullInterval, t.PushPullInterval)
	override(&ml.SuspicionMult, t.SuspicionMult)
	override(&ml.SuspicionMaxTimeoutMult, t.SuspicionMaxTimeoutMult)
	override(&ml.RetransmitMult, t.RetransmitMult)
	// Memberlist tries to compress every packet it sends, allocating a
	// 64 KB LZW table each time, and keeps the result only if smaller:
	// gossip packets are small and rarely gain. Off, idle CPU drops by
	// about a third; push-pulls (TCP, every 30 s × the cluster scale) go
	// uncompressed, about 3.4× larger. Agents still read
	// compressed messages from peers that send them.
	ml.EnableCompression = false
	return ml, prof
}

// override sets *dst to v when v is set (not the zero value).
func override[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}
