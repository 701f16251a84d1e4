package gossip

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/agent/httpapi"
	"github.com/chorusdns/chorus/agent/replication"
	"github.com/chorusdns/chorus/agent/wan"
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

// WANConfig are the WAN settings a reload may change.
type WANConfig struct {
	// Speakers is how many agents of the datacenter speak in the WAN
	// pool (wan_speakers).
	Speakers int
	// RetryJoin are agents of other datacenters to contact
	// (retry_join_wan; the default port is serf_wan_port).
	RetryJoin []string
}

// WAN is the agent's side of the WAN: the summary exchange (on every
// agent) and the WAN Serf pool (only while this agent is a speaker).
type WAN struct {
	p       *Pool
	node    *wan.Node
	root    *slog.Logger
	conf    atomic.Pointer[WANConfig]
	started time.Time
	// speakerStarts counts the times this agent joined the WAN pool.
	speakerStarts prometheus.Counter

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
	// bg are the goroutines the WAN member's work starts (its event
	// drain, joins, pings); Close waits for them.
	bg sync.WaitGroup
}

// newWAN creates the summary exchange, before the gossip transport
// starts delivering its packets (and before Serf rewrites its snapshot).
// The WAN pool uses the LAN pool's keyring object, so key rotations apply
// to both.
func newWAN(p *Pool, root *slog.Logger, reg prometheus.Registerer) *WAN {
	node := wan.New(wan.Config{
		Datacenter: p.cfg.Datacenter, Keyring: p.keyring, ReconnectTimeout: p.cfg.WANReconnectTimeout,
	}, p.store, root, wan.NewMetrics(reg))
	w := &WAN{p: p, node: node, root: root, speakerStarts: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chorus_wan_speaker_starts_total",
		Help: "Times this agent joined the WAN pool as a speaker for its datacenter.",
	})}
	reg.MustRegister(w.speakerStarts)
	w.SetConfig(p.cfg.WAN)
	return w
}

// SetConfig replaces the reloadable WAN settings; the speaker loop
// follows them from its next round.
func (w *WAN) SetConfig(c WANConfig) { w.conf.Store(&c) }

// Run runs the summary exchange and the speaker loop until ctx is done.
// Close must be called after, to leave the WAN pool.
func (w *WAN) Run(ctx context.Context) {
	w.mu.Lock()
	w.started = time.Now()
	w.mu.Unlock()
	w.node.SetLAN(lanPlane{w.p})
	var wg sync.WaitGroup
	wg.Go(func() { w.node.Run(ctx) })
	wg.Go(func() { w.speakerLoop(ctx) })
	wg.Wait()
}

// Close leaves the WAN pool (gracefully when leave is set, bounded by
// ctx) and shuts this agent's WAN member down; it then waits for the
// goroutines the member started. It is safe to call more than once.
func (w *WAN) Close(ctx context.Context, leave bool) {
	w.mu.Lock()
	w.closed = true
	w.stopSerfLocked(ctx, leave)
	w.mu.Unlock()
	w.bg.Wait()
}

// lanPacket routes a Chorus packet of the LAN gossip port: summaries to
// the exchange, records to the syncer.
func (p *Pool) lanPacket(pk *memberlist.Packet) {
	if wan.IsPacket(pk.Buf) {
		p.wan.node.HandleLANPacket(pk)
		return
	}
	p.sync.HandlePacket(pk)
}

// lanStream routes a Chorus stream of the LAN gossip port as lanPacket
// does packets.
func (p *Pool) lanStream(c net.Conn) {
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
		p.wan.node.HandleLANStream(pc)
		return
	}
	p.sync.HandleStream(pc)
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// lanPlane is the LAN pool as the exchange sees it.
type lanPlane struct{ p *Pool }

func (l lanPlane) Peers() []wan.Peer {
	self, dc := l.p.cfg.NodeName, l.p.cfg.Datacenter
	var out []wan.Peer
	for _, m := range l.p.serf.Members() {
		if m.Status != serf.StatusAlive || m.Name == self {
			continue
		}
		out = append(out, wan.Peer{Name: m.Name, Addr: net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))), DC: dc})
	}
	return out
}

func (l lanPlane) Send(addr string, b []byte) error {
	_, err := l.p.tr.WriteTo(b, addr)
	return err
}

func (l lanPlane) Dial(addr string, timeout time.Duration) (net.Conn, error) {
	return l.p.tr.DialTimeout(addr, timeout)
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
func (w *WAN) speakerLoop(ctx context.Context) {
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
func (w *WAN) Speakers() []string {
	s, _ := w.speakers()
	return s
}

// speakers returns the speakers and how many LAN members are alive.
func (w *WAN) speakers() ([]string, int) {
	var alive []string
	for _, m := range w.p.serf.Members() {
		if m.Status == serf.StatusAlive {
			alive = append(alive, m.Name)
		}
	}
	return wan.Speakers(w.p.cfg.Datacenter, alive, w.conf.Load().Speakers), len(alive)
}

// IsSpeaker reports whether this agent is in the WAN pool now.
func (w *WAN) IsSpeaker() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.serf != nil
}

// step joins or leaves the WAN pool as the speaker set says, and reports
// whether the datacenter is linked to another or this agent speaks (the
// speaker set must then be followed closely).
func (w *WAN) step(ctx context.Context) (busy bool) {
	cfg, conf := w.p.cfg, w.conf.Load()
	// A datacenter alone needs no WAN pool: an agent speaks only once it
	// knows of another datacenter (retry_join_wan, or a remote summary
	// that reached it through the LAN).
	linked := len(conf.RetryJoin) > 0 || len(w.node.Versions()) > 0
	spk, alive := w.speakers()
	chosen := linked && slices.Contains(spk, cfg.NodeName)
	w.mu.Lock()
	defer w.mu.Unlock()
	defer func() { busy = linked || w.serf != nil }() // runs before the unlock
	if w.closed || ctx.Err() != nil {
		return
	}
	if chosen && w.serf == nil && alive == 1 && w.p.expectPeers() && time.Since(w.started) < speakerGrace {
		// Alone only because the LAN join has not happened yet.
		return
	}
	switch {
	case chosen && w.serf == nil:
		if err := w.startSerfLocked(); err != nil {
			w.p.logger.Warn("cannot join the WAN pool as a speaker", "err", err)
			return
		}
		w.p.logger.Info("speaking for the datacenter in the WAN pool", "wan", w.serf.LocalMember().Addr.String()+":"+strconv.Itoa(int(w.serf.LocalMember().Port)))
	case !chosen && w.serf != nil:
		w.p.logger.Info("no longer a speaker: leaving the WAN pool")
		w.stopSerfLocked(ctx, true)
		return
	case w.serf == nil:
		return
	}
	w.refreshLocked(conf)
	return
}

// startSerfLocked creates this agent's member of the WAN pool: Serf with
// memberlist's WAN timings on serf_wan_port, the gossip keyring, and the
// multiplexing transport whose Chorus traffic goes to the exchange.
func (w *WAN) startSerfLocked() error {
	cfg := w.p.cfg
	log := w.root.With("component", "serf-wan")
	tr, err := replication.NewTransport(cfg.Bind, cfg.WANPort, log, w.node.HandleWANPacket, w.node.HandleWANStream)
	if err != nil {
		return fmt.Errorf("serf_wan_port: %w", err)
	}
	tr.Start()
	ml := memberlist.DefaultWANConfig()
	ml.Logger = serfLogger(log, w.p.metrics.gossipRemoteErrors.WithLabelValues("wan"))
	ml.Name = cfg.NodeName + "." + cfg.Datacenter
	ml.BindAddr = cfg.Bind
	ml.BindPort, ml.AdvertisePort = tr.Port(), tr.Port()
	ml.AdvertiseAddr = cfg.Advertise
	ml.Transport = tr
	ml.EnableCompression = false
	if kr := w.p.keyring; kr != nil {
		ml.Keyring = kr
		ml.SecretKey = kr.GetPrimaryKey()
		ml.GossipVerifyIncoming, ml.GossipVerifyOutgoing = true, true
	}
	sc := serf.DefaultConfig()
	sc.NodeName = ml.Name
	sc.MemberlistConfig = ml
	sc.Logger = ml.Logger
	sc.Tags = map[string]string{tagDatacenter: cfg.Datacenter, tagRole: "chorus-wan", tagBuild: cfg.Build}
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
	w.bg.Go(func() {
		for {
			select {
			case <-events:
			case <-s.ShutdownCh():
				return
			}
		}
	})
	w.serf, w.tr = s, tr
	w.speakerStarts.Inc()
	w.lastJoin = time.Time{}
	w.node.SetWAN(wanPlane{s: s, tr: tr})
	return nil
}

// stopSerfLocked leaves (when leave is set, bounded by ctx and 2 s) and
// shuts down this agent's WAN member.
func (w *WAN) stopSerfLocked(ctx context.Context, leave bool) {
	if w.serf == nil {
		return
	}
	w.node.SetWAN(nil)
	if leave {
		errc := make(chan error, 1)
		s := w.serf
		w.bg.Go(func() { errc <- s.Leave() })
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
func (w *WAN) refreshLocked(conf *WANConfig) {
	cfg := w.p.cfg
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
		slices.Sort(ds)
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
	w.pingLocked()
	slices.Sort(mine[1:])
	w.node.SetSpeakers(mine)
	w.node.SetView(view)
	if len(view) == 0 && time.Since(w.lastJoin) >= wanRejoin {
		w.lastJoin = time.Now()
		addrs := w.joinAddrs(conf)
		if len(addrs) == 0 {
			return
		}
		s := w.serf
		// Joining blocks on the network: not under the lock.
		w.bg.Go(func() {
			if n, err := s.Join(addrs, true); err != nil && n == 0 {
				w.p.logger.Debug("WAN join found no other datacenter yet", "addrs", addrs, "err", err)
			}
		})
	}
}

// pingLocked starts a round of pings, one random alive member of each
// other datacenter, every rttPing; the results feed w.rtt.
func (w *WAN) pingLocked() {
	cfg := w.p.cfg
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
	w.bg.Go(func() {
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
func (w *WAN) joinAddrs(conf *WANConfig) []string {
	var out []string
	for _, addr := range conf.RetryJoin {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(addr, strconv.Itoa(w.p.cfg.WANPort))
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

// Members lists the WAN pool's members in Consul's AgentMember shape
// while this agent speaks; an empty list otherwise.
func (w *WAN) Members() []httpapi.Member {
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
