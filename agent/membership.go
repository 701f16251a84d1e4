package agent

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/agent/replication"
	"github.com/chorusdns/chorus/catalog"
)

// Serf tag keys. Tags ride every alive message and push-pull, so they
// always converge; the version tag is the truth the replication follows.
const (
	tagVersion = "v"
	// tagKey is the public key this node's records are signed with
	// (base64, 43 characters: Serf caps all of a member's tags at 512
	// bytes).
	tagKey        = "k"
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

// gossipTimings are the memberlist and serf timings of a profile.
type gossipTimings struct {
	ProbeInterval, ProbeTimeout, GossipInterval, PushPullInterval time.Duration
	// SuspicionMaxTimeoutMult, when set, replaces memberlist's 6: how
	// many suspicion timeouts a suspicion that no other member confirms
	// may last.
	SuspicionMult, SuspicionMaxTimeoutMult int
	// RetransmitMult, when set, replaces memberlist's 4.
	RetransmitMult int
	// AwarenessMaxMultiplier, when set, replaces memberlist's 8: how far
	// Lifeguard may stretch a member's own probe interval while its
	// probes fail without nacks (the member itself is slow).
	AwarenessMaxMultiplier int
	// HandoffQueueDepth, when set, replaces memberlist's 1,024: suspect,
	// alive and dead messages waiting for the handler, per priority.
	HandoffQueueDepth int
	ReconnectInterval time.Duration
	base              func() *memberlist.Config
}

// gossipProfile returns the timings of a named profile:
//   - lan (default): probes every 300 ms with a 200 ms timeout. Lifeguard's
//     dynamic suspicion is on: suspicion ×3 wants one independent
//     confirmation (memberlist's k = mult − 2) to declare a member at the
//     floor, 3 × log10(members) × 300 ms, which a real crash gets within a
//     probe round; an unconfirmed suspicion (a single starved prober's)
//     lasts up to ×6 that, time for the suspect's refutation to get
//     through. Lifeguard stretches a member's own probe interval up to 9×
//     while its probes fail without nacks (AwarenessMaxMultiplier 8), and
//     up to 4,096 suspect/alive/dead messages wait for the handler per
//     priority (memberlist's 1,024), so a starved member drops fewer
//     refutations. Messages are passed on 8 × ⌈log10(members+1)⌉ times
//     each (memberlist's 4), so that a refutation reaches its accuser
//     under heavy loss. The measurements behind these choices are in
//     BENCHMARKS.md ("Tuning experiments", "Scale");
//   - wan: memberlist's DefaultWANConfig;
//   - local: for agents on one machine (tests, demos).
func gossipProfile(name string) (gossipTimings, error) {
	switch name {
	case "", "lan":
		return gossipTimings{
			ProbeInterval: 300 * time.Millisecond, ProbeTimeout: 200 * time.Millisecond,
			GossipInterval: 100 * time.Millisecond, PushPullInterval: 30 * time.Second,
			SuspicionMult: 3, SuspicionMaxTimeoutMult: 6, RetransmitMult: 8,
			AwarenessMaxMultiplier: 8, HandoffQueueDepth: 4096,
			ReconnectInterval: 2 * time.Second, base: memberlist.DefaultLANConfig,
		}, nil
	case "wan":
		return gossipTimings{
			ProbeInterval: 5 * time.Second, ProbeTimeout: 3 * time.Second,
			GossipInterval: 500 * time.Millisecond, PushPullInterval: 60 * time.Second,
			SuspicionMult: 6, ReconnectInterval: 30 * time.Second, base: memberlist.DefaultWANConfig,
		}, nil
	case "local":
		return gossipTimings{
			ProbeInterval: 200 * time.Millisecond, ProbeTimeout: 100 * time.Millisecond,
			GossipInterval: 50 * time.Millisecond, PushPullInterval: 10 * time.Second,
			SuspicionMult: 2, ReconnectInterval: time.Second, base: memberlist.DefaultLocalConfig,
		}, nil
	}
	return gossipTimings{}, fmt.Errorf("unknown profile %q (lan, wan or local)", name)
}

// startSerf creates the Serf member on the gossip port, wrapped by the
// multiplexing transport that also carries Chorus's record traffic.
func (a *Agent) startSerf(cfg *Config, advertise string) error {
	ml, prof := memberlistConfig(cfg)
	serfLog := a.root.With("component", "serf")
	slogger := serfLogger(serfLog, a.metrics.gossipRemoteErrors.WithLabelValues("lan"))
	ml.Logger = slogger
	ml.Name = cfg.NodeName
	ml.BindAddr = cfg.Bind
	ml.BindPort = cfg.SerfPort
	ml.AdvertiseAddr = advertise
	ml.AdvertisePort = cfg.SerfPort

	keyring, err := a.loadKeyring(cfg)
	if err != nil {
		return err
	}
	if keyring != nil {
		ml.Keyring = keyring
		ml.SecretKey = keyring.GetPrimaryKey()
		ml.GossipVerifyIncoming, ml.GossipVerifyOutgoing = true, true
	} else {
		a.logger.Warn("gossip encryption is off: anyone who reaches the gossip port can join the pool and register nodes of their own; " +
			"record signatures still keep them from changing other nodes' services. Set encrypt to admit only key holders")
	}

	// Our own ping delegate keeps the network coordinates in place of
	// Serf's, which would send them on every probe ack (coords.go).
	a.coords, err = replication.NewCoords(cfg.NodeName, serfLog)
	if err != nil {
		return fmt.Errorf("network coordinates: %w", err)
	}
	ml.Ping = a.coords

	a.newWAN(cfg, keyring)
	a.sync = replication.New(cfg.NodeName, a.store, keyring, a.root, replication.NewMetrics(a.reg))
	tr, err := replication.NewTransport(cfg.Bind, cfg.SerfPort, serfLog, a.lanPacket, a.lanStream)
	if err != nil {
		return fmt.Errorf("serf_port: %w", err)
	}
	tr.Start()
	port := tr.Port()
	ml.BindPort, ml.AdvertisePort = port, port
	ml.Transport = tr
	a.transport = tr

	sc := serf.DefaultConfig()
	sc.NodeName = cfg.NodeName
	sc.MemberlistConfig = ml
	sc.Logger = slogger
	// The version tag carries the start version, set here once: setting
	// it later is a Serf tag update (an alive message every member
	// passes on) racing Serf's own queries. The record Start publishes
	// holds at least this version.
	startVersion := a.local.SetGossip(net.JoinHostPort(advertise, strconv.Itoa(port)))
	sc.Tags = a.tags(cfg, startVersion)
	sc.SnapshotPath = serfSnapshotPath(cfg.DataDir)
	sc.RejoinAfterLeave = false
	sc.ReconnectInterval = prof.ReconnectInterval
	sc.ReconnectTimeout = 72 * time.Hour
	sc.TombstoneTimeout = 24 * time.Hour
	sc.EnableNameConflictResolution = true
	sc.DisableCoordinates = true // kept by a.coords instead
	events := make(chan serf.Event, 4096)
	sc.EventCh = events
	if keyring != nil {
		sc.KeyringFile = filepath.Join(cfg.DataDir, "serf", "local.keyring")
	}
	s, err := serf.Create(sc)
	if err != nil {
		tr.Shutdown()
		return fmt.Errorf("start gossip on %s:%d: %w", cfg.Bind, port, err)
	}
	a.serf = s
	a.sync.Attach(serfMembers{a}, tr)
	self := s.LocalMember()
	a.store.SetMember(self.Name, self.Addr.String(), catalog.MemberAlive)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.handleEvents(events)
	}()
	return nil
}

// memberlistConfig returns memberlist's configuration for cfg: the
// gossip profile's timings with each gossip.* knob that is set on top.
func memberlistConfig(cfg *Config) (*memberlist.Config, gossipTimings) {
	prof, _ := gossipProfile(cfg.GossipProfile)
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
	g := cfg.Gossip // validated: none is negative
	override(&ml.ProbeInterval, g.ProbeInterval)
	override(&ml.ProbeTimeout, g.ProbeTimeout)
	override(&ml.GossipInterval, g.GossipInterval)
	override(&ml.PushPullInterval, g.PushPullInterval)
	override(&ml.SuspicionMult, g.SuspicionMult)
	override(&ml.SuspicionMaxTimeoutMult, g.SuspicionMaxTimeoutMult)
	override(&ml.RetransmitMult, g.RetransmitMult)
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

// loadKeyring returns the gossip keyring: the persisted one in the data
// dir if present (it holds rotations), else the configured key, else nil.
func (a *Agent) loadKeyring(cfg *Config) (*memberlist.Keyring, error) {
	path := filepath.Join(cfg.DataDir, "serf", "local.keyring")
	if b, err := os.ReadFile(path); err == nil {
		keys, err := parseKeyringFile(b)
		if err != nil {
			return nil, fmt.Errorf("keyring file %s: %w", path, err)
		}
		if len(keys) > 0 {
			return memberlist.NewKeyring(keys, keys[0])
		}
	}
	if cfg.Encrypt == "" {
		return nil, nil
	}
	k, err := decodeKey(cfg.Encrypt)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	kr, err := memberlist.NewKeyring(nil, k)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if err := writeKeyringFile(path, [][]byte{k}); err != nil {
		return nil, fmt.Errorf("keyring file %s: %w", path, err)
	}
	return kr, nil
}

// tags builds this agent's Serf tags.
func (a *Agent) tags(cfg *Config, version uint64) map[string]string {
	t := map[string]string{
		tagVersion:    strconv.FormatUint(version, 10),
		tagKey:        local.PublicKeyTag(a.key),
		tagDatacenter: cfg.Datacenter,
		tagBuild:      Version,
		// Consul's CLI (consul members) reads role, build, vsn and dc:
		// role "node" is what Consul calls a client agent (no Raft, no
		// server duties), which is what every Chorus agent is; vsn is
		// the version of Chorus's record protocol (catalog.RecordFormat).
		tagRole:     "node",
		tagProtocol: protocolTag,
		tagProtoMin: protocolTag,
		tagProtoMax: protocolTag,
	}
	if cfg.Zone != "" {
		t[tagZone] = cfg.Zone
	}
	return t
}

// handleEvents applies Serf's membership events to the catalog and asks
// the syncer for records whose version moved. It never blocks Serf for
// long: the event channel is large and the work here is local.
func (a *Agent) handleEvents(events <-chan serf.Event) {
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-a.serf.ShutdownCh():
			if !a.leaving.Load() && a.ctx.Err() == nil {
				// Serf shuts itself down when it loses a node-name conflict.
				a.fatal(fmt.Errorf("node name %q is already used by another alive agent (Serf's name-conflict resolution picked the other one): give this agent a unique --node", a.NodeName()))
			}
			return
		case e := <-events:
			me, ok := e.(serf.MemberEvent)
			if !ok {
				continue
			}
			a.store.Update(func(tx *catalog.Tx) {
				for _, m := range me.Members {
					switch me.Type {
					case serf.EventMemberReap:
						if m.Name != a.NodeName() {
							tx.RemoveNode(m.Name)
							a.coords.Forget(m.Name)
							// A node the catalog forgets may come back
							// with a new key.
							a.sync.Forget(m.Name)
						}
					default:
						tx.SetMember(m.Name, m.Addr.String(), memberStatus(m.Status))
					}
				}
			})
			for _, m := range me.Members {
				a.sync.Observe(toMember(m))
			}
			a.metrics.memberEvents.WithLabelValues(me.Type.String()).Add(float64(len(me.Members)))
			a.eventHandlers(me)
		}
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
func (a *Agent) Join(addrs []string) (int, error) {
	cfg := a.cfg.Load()
	full := make([]string, 0, len(addrs))
	for _, s := range addrs {
		if _, _, err := net.SplitHostPort(s); err != nil {
			s = net.JoinHostPort(s, strconv.Itoa(defaultPort(cfg.SerfPort)))
		}
		full = append(full, s)
	}
	// The catch-up starts before the join, so that the member events
	// the join brings pull nothing of their own (catchup.go).
	a.sync.BeginCatchUp()
	n, err := a.serf.Join(full, true)
	if n > 0 {
		a.joined.Store(true)
		a.logger.Info("joined cluster", "contacted", n)
		a.sync.Kick()
	} else {
		a.sync.EndCatchUp()
	}
	if err != nil && n == 0 {
		return 0, fmt.Errorf("join %v: %w", addrs, err)
	}
	return n, nil
}

func defaultPort(p int) int {
	if p == 0 {
		return 8301
	}
	return p
}

// startJoin joins the --join addresses once (failure is logged) and keeps
// retrying the --retry-join addresses with backoff until one succeeds, so
// agents may start in any order.
func (a *Agent) startJoin(cfg *Config) {
	if len(cfg.Join) > 0 {
		if _, err := a.Join(cfg.Join); err != nil {
			a.logger.Warn("join failed", "addrs", cfg.Join, "err", err)
		}
	}
	if len(cfg.RetryJoin) == 0 {
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		delay := cfg.RetryInterval
		for attempt := 1; ; attempt++ {
			if _, err := a.Join(cfg.RetryJoin); err == nil {
				return
			} else {
				a.logger.Warn("retry join failed", "attempt", attempt, "addrs", cfg.RetryJoin, "err", err, "next_in_seconds", delay.Seconds())
			}
			if cfg.RetryMax > 0 && attempt >= cfg.RetryMax {
				a.logger.Error("retry join gave up", "attempts", attempt)
				return
			}
			t := time.NewTimer(delay)
			select {
			case <-a.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			// Back off up to 8× the interval, with jitter.
			if delay < 8*cfg.RetryInterval {
				delay *= 2
			}
			delay = delay/2 + rand.N(delay/2+1)
		}
	}()
}

// leaveTimeout bounds how long a leave asked for over the API waits for
// Serf to broadcast it.
const leaveTimeout = 15 * time.Second

// Leave leaves the cluster gracefully and stops the agent. It returns
// once Serf has broadcast the leave and let it propagate (bounded by ctx
// and leaveTimeout), as Consul's /v1/agent/leave answers, so that peers
// no longer see this node alive when the caller hears back; the stop
// then goes on in the background (it is asked for over the API, whose
// server the stop shuts down) and Done is closed when it has finished.
func (a *Agent) Leave(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, leaveTimeout)
	a.leaveSerf(lctx)
	cancel()
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), leaveTimeout)
		defer cancel()
		a.Shutdown(ctx)
	}()
}

// ForceLeave marks a failed member as left, removing it at once.
func (a *Agent) ForceLeave(node string, prune bool) error {
	var err error
	if prune {
		err = a.serf.RemoveFailedNodePrune(node)
	} else {
		err = a.serf.RemoveFailedNode(node)
	}
	if err != nil {
		return fmt.Errorf("force-leave %q: %w", node, err)
	}
	return nil
}

// Members returns Serf's view of the cluster.
func (a *Agent) Members() []serf.Member { return a.serf.Members() }

// RTT implements dns.Distances: the estimated round-trip time to node from
// network coordinates.
func (a *Agent) RTT(node string) (time.Duration, bool) {
	if a.serf == nil {
		return 0, false
	}
	if node == a.NodeName() {
		return 0, true
	}
	mine := a.coords.Mine()
	other, ok := a.coords.Of(node)
	if !ok || other == nil {
		return 0, false
	}
	if !mine.IsCompatibleWith(other) {
		return 0, false
	}
	return mine.DistanceTo(other), true
}
