package agent

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/chorusdns/chorus/agent/httpapi"
	"github.com/chorusdns/chorus/agent/replication"
	"github.com/chorusdns/chorus/agent/wan"
	"github.com/chorusdns/chorus/catalog"
)

// WAN timings. speakerCheck is how often an agent recomputes the speaker
// set from its LAN member list (a dead speaker is replaced within Serf's
// failure detection plus this); wanRejoin how often a speaker with no
// member of another datacenter in its WAN pool tries to join again.
const (
	speakerCheck = 500 * time.Millisecond
	// speakerIdleCheck replaces speakerCheck while the agent's
	// datacenter is linked to no other (no retry_join_wan, no remote
	// summary held) and it does not speak: such an agent only waits to
	// learn of another datacenter, and every agent of a datacenter
	// alone would otherwise wake twice a second for nothing.
	speakerIdleCheck = 5 * time.Second
	wanRejoin        = 3 * time.Second
	// rttPing is how often a speaker pings one member of each other
	// datacenter to measure the WAN round-trip time directly.
	rttPing = 5 * time.Second
	// speakerGrace is how long an agent that expects LAN peers (join,
	// retry_join or members in its gossip snapshot) waits, while it is
	// still alone in its LAN pool, before it speaks: alone it would
	// always choose itself, join the WAN pool and leave it again as soon
	// as its LAN join brought the members that outscore it.
	speakerGrace = 10 * time.Second
)

// wanLink is the agent's side of the WAN: the summary exchange (on every
// agent) and the WAN Serf pool (only while this agent is a speaker).
type wanLink struct {
	a       *Agent
	node    *wan.Node
	keyring *memberlist.Keyring
	// expectPeers: the agent was told of LAN peers at start (join,
	// retry_join, its gossip snapshot); it does not speak while alone
	// until speakerGrace after started.
	expectPeers bool
	started     time.Time

	mu       sync.Mutex // guards the fields below
	serf     *serf.Serf
	tr       *replication.Transport
	closed   bool
	lastJoin time.Time
	// rtt is the measured round-trip time per remote datacenter (an
	// exponentially weighted mean of direct pings), pinging whether a
	// round of pings runs, lastPing when the last one started.
	rtt      map[string]time.Duration
	pinging  bool
	lastPing time.Time
	// starts counts the times this agent joined the WAN pool.
	starts int
}

// validateWAN checks the WAN keys.
func (c *Config) validateWAN() error {
	if c.SerfWANPort < 0 || c.SerfWANPort > 65535 {
		return fmt.Errorf("serf_wan_port: %d is outside 0–65535", c.SerfWANPort)
	}
	if c.WANSpeakers < 1 || c.WANSpeakers > 16 {
		return fmt.Errorf("wan_speakers: %d: want 1 to 16", c.WANSpeakers)
	}
	if c.WANReconnectTimeout <= 0 {
		return fmt.Errorf("wan_reconnect_timeout: must be positive")
	}
	for i, addr := range c.RetryJoinWAN {
		if strings.TrimSpace(addr) == "" {
			return fmt.Errorf("retry_join_wan[%d]: empty address", i)
		}
	}
	if _, err := catalog.ParseFailover(c.Failover); err != nil {
		return err // it names the failover key
	}
	return nil
}

// newWAN creates the summary exchange, before the gossip transport
// starts delivering its packets (and before Serf rewrites its snapshot).
// keyring is the gossip keyring (nil: plain text); the WAN pool uses the
// same one.
func (a *Agent) newWAN(cfg *Config, keyring *memberlist.Keyring) {
	node := wan.New(wan.Config{
		Datacenter: cfg.Datacenter, Keyring: keyring, ReconnectTimeout: cfg.WANReconnectTimeout,
	}, a.store, a.root, wan.NewMetrics(a.reg))
	expect := len(cfg.Join) > 0 || len(cfg.RetryJoin) > 0 ||
		len(snapshotPeers(serfSnapshotPath(cfg.DataDir), cfg.NodeName)) > 0
	a.wan.Store(&wanLink{a: a, node: node, keyring: keyring, expectPeers: expect})
}

// startWAN starts the exchange and the speaker loop (after Serf).
func (a *Agent) startWAN() {
	w := a.wan.Load()
	w.started = time.Now()
	w.node.SetLAN(lanPlane{a})
	a.wg.Go(func() { w.node.Run(a.ctx) })
	a.wg.Go(func() { w.speakerLoop(a.ctx) })
}

// stopWAN leaves the WAN pool (gracefully when leave is set) and shuts
// it down. It is safe to call more than once.
func (a *Agent) stopWAN(ctx context.Context, leave bool) {
	w := a.wan.Load()
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.stopSerfLocked(ctx, leave)
}

// lanPacket routes a Chorus packet of the LAN gossip port: summaries to
// the exchange, records to the syncer.
func (a *Agent) lanPacket(p *memberlist.Packet) {
	if wan.IsPacket(p.Buf) {
		if w := a.wan.Load(); w != nil {
			w.node.HandleLANPacket(p)
		}
		return
	}
	a.sync.HandlePacket(p)
}

// lanStream routes a Chorus stream of the LAN gossip port as lanPacket
// does packets.
func (a *Agent) lanStream(c net.Conn) {
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := br.Peek(2)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return
	}
	pc := &bufferedConn{Conn: c, r: br}
	if wan.IsPacket(b) {
		if w := a.wan.Load(); w != nil {
			w.node.HandleLANStream(pc)
			return
		}
		c.Close()
		return
	}
	a.sync.HandleStream(pc)
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// lanPlane is the LAN pool as the exchange sees it.
type lanPlane struct{ a *Agent }

func (p lanPlane) Peers() []wan.Peer {
	self, dc := p.a.NodeName(), p.a.cfg.Load().Datacenter
	var out []wan.Peer
	for _, m := range p.a.serf.Members() {
		if m.Status != serf.StatusAlive || m.Name == self {
			continue
		}
		out = append(out, wan.Peer{Name: m.Name, Addr: net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))), DC: dc})
	}
	return out
}

func (p lanPlane) Send(addr string, b []byte) error {
	_, err := p.a.transport.WriteTo(b, addr)
	return err
}

func (p lanPlane) Dial(addr string, timeout time.Duration) (net.Conn, error) {
	return p.a.transport.DialTimeout(addr, timeout)
}

// wanPlane is the WAN pool as the exchange sees it.
type wanPlane struct {
	s  *serf.Serf
	tr *replication.Transport
}

func (p wanPlane) Peers() []wan.Peer {
	self := p.s.LocalMember().Name
	var out []wan.Peer
	for _, m := range p.s.Members() {
		if m.Status != serf.StatusAlive || m.Name == self {
			continue
		}
		out = append(out, wan.Peer{Name: m.Name, Addr: net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))), DC: m.Tags[tagDatacenter]})
	}
	return out
}

func (p wanPlane) Send(addr string, b []byte) error {
	_, err := p.tr.WriteTo(b, addr)
	return err
}

func (p wanPlane) Dial(addr string, timeout time.Duration) (net.Conn, error) {
	return p.tr.DialTimeout(addr, timeout)
}

// speakerLoop recomputes the speaker set from the LAN member list and
// joins or leaves the WAN pool accordingly, until ctx ends.
func (w *wanLink) speakerLoop(ctx context.Context) {
	t := time.NewTimer(speakerCheck)
	defer t.Stop()
	for {
		if w.step(ctx) {
			t.Reset(speakerCheck)
		} else {
			t.Reset(speakerIdleCheck)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Speakers returns the LAN members that speak for this agent's
// datacenter, as this agent computes them.
func (a *Agent) Speakers() []string {
	s, _ := a.speakers()
	return s
}

// speakers returns the speakers and how many LAN members are alive.
func (a *Agent) speakers() ([]string, int) {
	var alive []string
	for _, m := range a.serf.Members() {
		if m.Status == serf.StatusAlive {
			alive = append(alive, m.Name)
		}
	}
	cfg := a.cfg.Load()
	return wan.Speakers(cfg.Datacenter, alive, cfg.WANSpeakers), len(alive)
}

// IsSpeaker reports whether this agent is in the WAN pool now.
func (a *Agent) IsSpeaker() bool {
	w := a.wan.Load()
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.serf != nil
}

// WANAddr returns the WAN pool address while this agent speaks, else "".
func (a *Agent) WANAddr() string {
	w := a.wan.Load()
	if w == nil {
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.serf == nil {
		return ""
	}
	m := w.serf.LocalMember()
	return net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port)))
}

// step joins or leaves the WAN pool as the speaker set says, and reports
// whether the datacenter is linked to another or this agent speaks (the
// speaker set must then be followed closely).
func (w *wanLink) step(ctx context.Context) (busy bool) {
	a := w.a
	cfg := a.cfg.Load()
	// A datacenter alone needs no WAN pool: an agent speaks only once it
	// knows of another datacenter (retry_join_wan, or a remote summary
	// that reached it through the LAN).
	linked := len(cfg.RetryJoinWAN) > 0 || len(w.node.Versions()) > 0
	spk, alive := a.speakers()
	chosen := linked && slices.Contains(spk, cfg.NodeName)
	w.mu.Lock()
	defer w.mu.Unlock()
	defer func() { busy = linked || w.serf != nil }() // runs before the unlock
	if w.closed || ctx.Err() != nil {
		return
	}
	if chosen && w.serf == nil && alive == 1 && w.expectPeers && time.Since(w.started) < speakerGrace {
		// Alone only because the LAN join has not happened yet.
		return
	}
	switch {
	case chosen && w.serf == nil:
		if err := w.startSerfLocked(cfg); err != nil {
			a.logger.Warn("cannot join the WAN pool as a speaker", "err", err)
			return
		}
		a.logger.Info("speaking for the datacenter in the WAN pool", "wan", w.serf.LocalMember().Addr.String()+":"+strconv.Itoa(int(w.serf.LocalMember().Port)))
	case !chosen && w.serf != nil:
		a.logger.Info("no longer a speaker: leaving the WAN pool")
		w.stopSerfLocked(ctx, true)
		return
	case w.serf == nil:
		return
	}
	w.refreshLocked(cfg)
	return
}

// startSerfLocked creates this agent's member of the WAN pool: Serf with
// memberlist's WAN timings on serf_wan_port, the gossip keyring, and the
// multiplexing transport whose Chorus traffic goes to the exchange.
func (w *wanLink) startSerfLocked(cfg *Config) error {
	a := w.a
	advertise, err := advertiseAddr(cfg)
	if err != nil {
		return err
	}
	log := a.root.With("component", "serf-wan")
	tr, err := replication.NewTransport(cfg.Bind, cfg.SerfWANPort, log, w.node.HandleWANPacket, w.node.HandleWANStream)
	if err != nil {
		return fmt.Errorf("serf_wan_port: %w", err)
	}
	tr.Start()
	ml := memberlist.DefaultWANConfig()
	ml.Logger = serfLogger(log, w.a.metrics.gossipRemoteErrors.WithLabelValues("wan"))
	ml.Name = cfg.NodeName + "." + cfg.Datacenter
	ml.BindAddr = cfg.Bind
	ml.BindPort, ml.AdvertisePort = tr.Port(), tr.Port()
	ml.AdvertiseAddr = advertise
	ml.Transport = tr
	ml.EnableCompression = false
	if w.keyring != nil {
		ml.Keyring = w.keyring
		ml.SecretKey = w.keyring.GetPrimaryKey()
		ml.GossipVerifyIncoming, ml.GossipVerifyOutgoing = true, true
	}
	sc := serf.DefaultConfig()
	sc.NodeName = ml.Name
	sc.MemberlistConfig = ml
	sc.Logger = ml.Logger
	sc.Tags = map[string]string{tagDatacenter: cfg.Datacenter, tagRole: "chorus-wan", tagBuild: Version}
	sc.ReconnectTimeout = cfg.WANReconnectTimeout
	sc.TombstoneTimeout = 24 * time.Hour
	sc.EnableNameConflictResolution = true
	events := make(chan serf.Event, 1024)
	sc.EventCh = events
	s, err := serf.Create(sc)
	if err != nil {
		tr.Shutdown()
		return fmt.Errorf("start the WAN pool on %s:%d: %w", cfg.Bind, tr.Port(), err)
	}
	// Nothing reads member events: the loop polls the member list.
	a.wg.Go(func() {
		for {
			select {
			case <-events:
			case <-s.ShutdownCh():
				return
			}
		}
	})
	w.serf, w.tr = s, tr
	w.starts++
	w.lastJoin = time.Time{}
	w.node.SetWAN(wanPlane{s: s, tr: tr})
	return nil
}

// stopSerfLocked leaves (when leave is set, bounded by ctx and 2 s) and
// shuts down this agent's WAN member.
func (w *wanLink) stopSerfLocked(ctx context.Context, leave bool) {
	if w.serf == nil {
		return
	}
	w.node.SetWAN(nil)
	if leave {
		errc := make(chan error, 1)
		s := w.serf
		go func() { errc <- s.Leave() }()
		t := time.NewTimer(2 * time.Second)
		select {
		case <-errc:
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	w.serf.Shutdown()
	w.tr.Shutdown()
	w.serf, w.tr = nil, nil
}

// refreshLocked tells the exchange what the WAN pool looks like (this
// datacenter's speakers, which remote datacenters are alive and their
// RTT) and joins the pool again when no other datacenter is in it.
func (w *wanLink) refreshLocked(cfg *Config) {
	s := w.serf
	self := s.LocalMember()
	mine := []string{net.JoinHostPort(self.Addr.String(), strconv.Itoa(int(self.Port)))}
	view := map[string]wan.DCView{}
	rtts := map[string][]time.Duration{}
	selfCoord, err := s.GetCoordinate()
	if err != nil {
		selfCoord = nil
	}
	for _, m := range s.Members() {
		dc := m.Tags[tagDatacenter]
		if m.Status != serf.StatusAlive || m.Name == self.Name || dc == "" {
			continue
		}
		if strings.EqualFold(dc, cfg.Datacenter) {
			mine = append(mine, net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))))
			continue
		}
		v := view[dc]
		v.Alive = true
		view[dc] = v
		if selfCoord != nil {
			if c, ok := s.GetCachedCoordinate(m.Name); ok && c != nil {
				rtts[dc] = append(rtts[dc], selfCoord.DistanceTo(c))
			}
		}
	}
	for dc, ds := range rtts {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		v := view[dc]
		v.RTT = ds[len(ds)/2]
		view[dc] = v
	}
	// Direct pings win over the coordinates, which converge slowly at
	// the WAN probe interval.
	for dc, d := range w.rtt {
		if v, ok := view[dc]; ok {
			v.RTT = d
			view[dc] = v
		}
	}
	w.pingLocked(cfg)
	sort.Strings(mine[1:])
	w.node.SetSpeakers(mine)
	w.node.SetView(view)
	if len(view) == 0 && time.Since(w.lastJoin) >= wanRejoin {
		w.lastJoin = time.Now()
		addrs := w.joinAddrs(cfg)
		if len(addrs) == 0 {
			return
		}
		s := w.serf
		// Joining blocks on the network: not under the lock.
		w.a.wg.Go(func() {
			if n, err := s.Join(addrs, true); err != nil && n == 0 {
				w.a.logger.Debug("WAN join found no other datacenter yet", "addrs", addrs, "err", err)
			}
		})
	}
}

// pingLocked starts a round of pings, one random alive member of each
// other datacenter, every rttPing; the results feed w.rtt.
func (w *wanLink) pingLocked(cfg *Config) {
	if w.pinging || time.Since(w.lastPing) < rttPing {
		return
	}
	type target struct {
		dc, name string
		addr     *net.UDPAddr
	}
	byDC := map[string][]target{}
	for _, m := range w.serf.Members() {
		dc := m.Tags[tagDatacenter]
		if m.Status != serf.StatusAlive || dc == "" || strings.EqualFold(dc, cfg.Datacenter) {
			continue
		}
		byDC[dc] = append(byDC[dc], target{dc, m.Name, &net.UDPAddr{IP: m.Addr, Port: int(m.Port)}})
	}
	if len(byDC) == 0 {
		return
	}
	w.pinging, w.lastPing = true, time.Now()
	ml := w.serf.Memberlist()
	w.a.wg.Go(func() {
		got := map[string]time.Duration{}
		for dc, ts := range byDC {
			t := ts[rand.N(len(ts))]
			if d, err := ml.Ping(t.name, t.addr); err == nil && d > 0 {
				got[dc] = d
			}
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.pinging = false
		if w.rtt == nil {
			w.rtt = map[string]time.Duration{}
		}
		for dc, d := range got {
			if old, ok := w.rtt[dc]; ok {
				d = (old*7 + d*3) / 10
			}
			w.rtt[dc] = d
		}
	})
}

// joinAddrs are where a speaker looks for the WAN pool: retry_join_wan
// (default port serf_wan_port) and the speakers the remote summaries it
// holds name.
func (w *wanLink) joinAddrs(cfg *Config) []string {
	var out []string
	for _, addr := range cfg.RetryJoinWAN {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(addr, strconv.Itoa(cfg.SerfWANPort))
		}
		out = append(out, addr)
	}
	for _, addr := range w.node.RemoteSpeakers() {
		if !slices.Contains(out, addr) {
			out = append(out, addr)
		}
	}
	return out
}

// WANMembers lists the WAN pool's members in Consul's AgentMember shape
// while this agent speaks; an empty list otherwise.
func (a *Agent) WANMembers() []httpapi.Member {
	w := a.wan.Load()
	if w == nil {
		return nil
	}
	w.mu.Lock()
	s := w.serf
	w.mu.Unlock()
	if s == nil {
		return nil
	}
	ms := s.Members()
	out := make([]httpapi.Member, len(ms))
	for i, m := range ms {
		out[i] = toAPIMember(m)
	}
	return out
}

// WANMembers is gossip's optional WAN listing for /v1/agent/members?wan=1.
func (g gossip) WANMembers() []httpapi.Member { return g.a.WANMembers() }
