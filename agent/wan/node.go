package wan

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/agent/sealing"
	"github.com/chorusdns/chorus/catalog"
)

// Peer is one member of a plane: its node name, its address on that
// plane's port (ip:port) and its datacenter.
type Peer struct {
	Name, Addr, DC string
}

// Plane is one network a Node talks on: the LAN pool's gossip port or the
// WAN pool's port. Peers lists the alive members other than this agent;
// Send sends one datagram; Dial opens a stream. Implementations must be
// safe for concurrent use.
type Plane interface {
	Peers() []Peer
	Send(addr string, b []byte) error
	Dial(addr string, timeout time.Duration) (net.Conn, error)
}

// DCView is what a speaker sees of a remote datacenter in the WAN pool.
type DCView struct {
	// Alive: at least one of its speakers is alive in the WAN pool.
	Alive bool
	// RTT is the estimated round-trip time to it (0: unknown).
	RTT time.Duration
}

// Config configures a Node.
type Config struct {
	// Datacenter is this agent's datacenter.
	Datacenter string
	// Keyring, when set, seals every packet and stream (the gossip
	// keyring: the same keys as the LAN and WAN pools).
	Keyring *memberlist.Keyring
	// ReconnectTimeout is how long a remote summary that cannot be
	// refreshed is kept (default 72 h).
	ReconnectTimeout time.Duration
	// StaleAfter is how long without news of a remote datacenter before
	// its summary is marked stale (default 30 s).
	StaleAfter time.Duration
	// DigestInterval is the mean interval of the LAN digests and of the
	// WAN announcements (default 1.5 s, jittered ±25%).
	DigestInterval time.Duration
	// PullTimeout bounds one pull (default 10 s).
	PullTimeout time.Duration
}

func (c *Config) defaults() {
	if c.ReconnectTimeout <= 0 {
		c.ReconnectTimeout = 72 * time.Hour
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = 30 * time.Second
	}
	if c.DigestInterval <= 0 {
		c.DigestInterval = 1500 * time.Millisecond
	}
	if c.PullTimeout <= 0 {
		c.PullTimeout = 10 * time.Second
	}
}

// held is one summary this agent holds.
type held struct {
	e    entry
	enc  []byte
	sum  *Summary
	hash uint64 // sum.ContentHash()
	// remote is what the catalog was last given for it.
	remote *catalog.RemoteDatacenter
}

// Node exchanges datacenter summaries. Every agent has one: it keeps the
// replica of the remote datacenters' summaries, replicates them in the
// LAN and gives them to the catalog store; while the agent is a speaker
// (SetWAN with a plane) it also builds its own datacenter's summary,
// announces it to the other datacenters' speakers and fetches theirs.
// All methods are safe for concurrent use. New starts nothing; Run does
// the periodic work and returns when its context ends, after the pulls
// it started have finished.
type Node struct {
	cfg     Config
	store   *catalog.Store
	logger  *slog.Logger
	seal    sealer
	metrics *Metrics
	now     func() time.Time

	mu       sync.Mutex
	lan, wan Plane
	held     map[string]*held // by lower-case datacenter
	own      *held            // this datacenter's summary, while speaking
	ownHash  uint64
	// floor is the highest version of this datacenter's summary that
	// another datacenter said it holds; the next one must exceed it.
	floor    uint64
	speakers []string // WAN addresses of this datacenter's speakers
	pulling  map[string]bool
	ctx      context.Context // set by Run; pulls end with it
	wg       sync.WaitGroup
	rebuild  chan struct{}
	// active wakes Run's ticker when the node starts holding a summary
	// or speaking; it sleeps while it does neither (a datacenter alone).
	active chan struct{}
}

// Metrics are the exchange's counters.
type Metrics struct {
	summaries *prometheus.CounterVec
	speaker   prometheus.Gauge
	held      prometheus.GaugeFunc
	n         *Node
}

// NewMetrics registers the metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		summaries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_wan_summaries_total",
			Help: "Remote datacenter summaries received, by how they came (wan, lan) and result (applied, old, rejected).",
		}, []string{"via", "result"}),
		speaker: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chorus_wan_speaker",
			Help: "1 while this agent is one of its datacenter's WAN speakers.",
		}),
	}
	m.held = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chorus_wan_datacenters",
		Help: "Remote datacenters whose summary this agent holds.",
	}, func() float64 {
		if m.n == nil {
			return 0
		}
		m.n.mu.Lock()
		defer m.n.mu.Unlock()
		return float64(len(m.n.held))
	})
	if reg != nil {
		reg.MustRegister(m.summaries, m.speaker, m.held)
	}
	return m
}

// New returns a Node that hands remote summaries to store. After calling
// New, cfg must not be modified by the caller.
func New(cfg Config, store *catalog.Store, logger *slog.Logger, m *Metrics) *Node {
	cfg.defaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	n := &Node{
		cfg: cfg, store: store, logger: logger.With("component", "wan"), seal: sealer{sealing.Sealer{Keyring: cfg.Keyring}},
		metrics: m, now: time.Now, held: map[string]*held{}, pulling: map[string]bool{},
		rebuild: make(chan struct{}, 1), active: make(chan struct{}, 1),
	}
	m.n = n
	return n
}

// SetLAN sets the LAN plane. It must be called before Run.
func (n *Node) SetLAN(p Plane) {
	n.mu.Lock()
	n.lan = p
	n.mu.Unlock()
}

// SetWAN makes this agent a speaker on plane p, or (nil) stops it being
// one. speakers are the WAN addresses of this datacenter's speakers,
// carried in the summary.
func (n *Node) SetWAN(p Plane) {
	n.mu.Lock()
	was := n.wan != nil
	n.wan = p
	if p == nil {
		n.own, n.ownHash = nil, 0
		n.metrics.speaker.Set(0)
	} else {
		n.metrics.speaker.Set(1)
	}
	n.mu.Unlock()
	if p != nil && !was {
		n.wakeTicker()
		n.kickRebuild()
	}
}

// SetSpeakers records the WAN addresses of this datacenter's speakers.
func (n *Node) SetSpeakers(addrs []string) {
	n.mu.Lock()
	changed := strings.Join(addrs, ",") != strings.Join(n.speakers, ",")
	n.speakers = addrs
	n.mu.Unlock()
	if changed {
		n.kickRebuild()
	}
}

// SetView records what a speaker sees of the remote datacenters in the
// WAN pool: their RTT. (A datacenter is confirmed only by what arrives
// from it, its speakers' announcements: Serf's WAN failure detection
// takes minutes to declare a cut-off datacenter's members dead.)
func (n *Node) SetView(view map[string]DCView) {
	n.mu.Lock()
	for dc, v := range view {
		h := n.held[strings.ToLower(dc)]
		if h == nil || !v.Alive {
			continue
		}
		if v.RTT > 0 {
			h.e.R = v.RTT.Microseconds()
		}
	}
	n.mu.Unlock()
	n.publish()
}

// RemoteSpeakers returns the WAN addresses of the remote datacenters'
// speakers as their summaries name them: where a new speaker joins the
// WAN pool.
func (n *Node) RemoteSpeakers() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, h := range n.held {
		out = append(out, h.sum.Speakers...)
	}
	return out
}

// Own returns this datacenter's summary while this agent speaks, else nil.
func (n *Node) Own() *Summary {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.own == nil {
		return nil
	}
	return n.own.sum
}

// Versions returns the summary version held for each remote datacenter.
func (n *Node) Versions() map[string]uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]uint64, len(n.held))
	for _, h := range n.held {
		out[h.sum.Datacenter] = h.e.V
	}
	return out
}

// wakeTicker restarts Run's ticker if it sleeps.
func (n *Node) wakeTicker() {
	select {
	case n.active <- struct{}{}:
	default:
	}
}

// idle reports whether the node neither holds a summary nor speaks: its
// periodic work (aging, digests, announcements) has nothing to do.
func (n *Node) idle() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.held) == 0 && n.wan == nil
}

func (n *Node) kickRebuild() {
	select {
	case n.rebuild <- struct{}{}:
	default:
	}
}

// Run builds this datacenter's summary while speaking (on every catalog
// change), sends the periodic digests and ages the replica, until ctx
// ends.
func (n *Node) Run(ctx context.Context) {
	n.mu.Lock()
	n.ctx = ctx
	n.mu.Unlock()
	defer n.wg.Wait()
	period := n.cfg.DigestInterval / 4
	tick := time.NewTicker(period)
	defer tick.Stop()
	ticking := true
	nextDigest := n.now()
	snap := n.store.Snapshot()
	// A summary costs O(catalog) to build: changes that arrive within
	// buildDelay of each other are summarised once.
	build := time.NewTimer(time.Hour)
	build.Stop()
	defer build.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-snap.Changed():
			snap = n.store.Snapshot()
			if !pending && n.speaking() {
				pending = true
				build.Reset(buildDelay)
			}
		case <-build.C:
			pending = false
			snap = n.store.Snapshot()
			n.buildOwn(snap)
		case <-n.rebuild:
			snap = n.store.Snapshot()
			n.buildOwn(snap)
		case <-n.active:
			if !ticking {
				tick.Reset(period)
				ticking = true
			}
		case <-tick.C:
			n.age()
			if now := n.now(); !now.Before(nextDigest) {
				d := n.cfg.DigestInterval
				nextDigest = now.Add(d*3/4 + rand.N(d/2+1))
				n.digestLAN()
				n.announceWAN(false)
			}
			if n.idle() {
				// Every agent of a datacenter alone would wake here
				// several times a second for nothing.
				tick.Stop()
				ticking = false
			}
		}
	}
}

// buildDelay is how long a speaker waits after a catalog change before
// it summarises, so that a burst of changes costs one summary.
const buildDelay = 20 * time.Millisecond

func (n *Node) speaking() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.wan != nil
}

// buildOwn rebuilds this datacenter's summary from snap while speaking
// and announces it to every remote speaker when its content changed.
func (n *Node) buildOwn(snap *catalog.Snapshot) {
	n.mu.Lock()
	if n.wan == nil {
		n.mu.Unlock()
		return
	}
	speakers := n.speakers
	prev, prevHash := n.own, n.ownHash
	n.mu.Unlock()
	s := BuildSummary(n.cfg.Datacenter, snap)
	s.Speakers = speakers
	h := s.ContentHash()
	if prev != nil && h == prevHash && strings.Join(prev.sum.Speakers, ",") == strings.Join(speakers, ",") {
		return
	}
	s.Version = uint64(n.now().UnixMilli())
	if prev != nil && s.Version <= prev.e.V {
		s.Version = prev.e.V + 1
	}
	n.mu.Lock()
	if s.Version <= n.floor {
		s.Version = n.floor + 1
	}
	n.mu.Unlock()
	enc, err := s.Encode()
	if err != nil {
		n.logger.Error("encode this datacenter's summary", "err", err)
		return
	}
	n.mu.Lock()
	if n.wan == nil {
		n.mu.Unlock()
		return
	}
	n.own = &held{e: entry{DC: s.Datacenter, V: s.Version, C: n.now().UnixMilli()}, enc: enc, sum: s}
	n.ownHash = h
	n.mu.Unlock()
	n.logger.Debug("summary of this datacenter", "version", s.Version, "nodes", len(s.Nodes), "bytes", len(enc))
	n.announceWAN(true)
}

// announceWAN sends this datacenter's summary entry to remote speakers:
// to every one (all, after a change; inline when small) or to one random
// speaker of each remote datacenter (the periodic repair).
func (n *Node) announceWAN(all bool) {
	n.mu.Lock()
	p, own := n.wan, n.own
	n.mu.Unlock()
	if p == nil || own == nil {
		return
	}
	m := message{E: []entry{own.e}}
	if all && len(own.enc) <= maxInline {
		m.S = own.enc
	}
	n.mu.Lock()
	for _, h := range n.held {
		m.H = append(m.H, entry{DC: h.sum.Datacenter, V: h.e.V, X: h.hash})
	}
	n.mu.Unlock()
	pkt, err := n.packet(kindNotice, m)
	if err != nil {
		return
	}
	byDC := map[string][]Peer{}
	for _, peer := range p.Peers() {
		if !strings.EqualFold(peer.DC, n.cfg.Datacenter) {
			byDC[strings.ToLower(peer.DC)] = append(byDC[strings.ToLower(peer.DC)], peer)
		}
	}
	for _, peers := range byDC {
		if all {
			for _, peer := range peers {
				p.Send(peer.Addr, pkt)
			}
			continue
		}
		p.Send(peers[rand.N(len(peers))].Addr, pkt)
	}
}

// digestLAN sends every held entry to one random LAN member.
func (n *Node) digestLAN() {
	n.mu.Lock()
	p := n.lan
	m := message{E: make([]entry, 0, len(n.held))}
	for _, h := range n.held {
		m.E = append(m.E, h.e)
	}
	n.mu.Unlock()
	if p == nil || len(m.E) == 0 {
		return
	}
	peers := p.Peers()
	if len(peers) == 0 {
		return
	}
	if pkt, err := n.packet(kindDigest, m); err == nil {
		p.Send(peers[rand.N(len(peers))].Addr, pkt)
	}
}

func (n *Node) packet(kind byte, m message) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return n.seal.packet(kind, b)
}

// HandleLANPacket takes a packet of this package from the LAN gossip
// port. It runs on the transport's read loop and does not block: pulls
// go to goroutines of their own.
func (n *Node) HandleLANPacket(p *memberlist.Packet) { n.handlePacket(p, false) }

// HandleWANPacket takes a packet of this package from the WAN port.
func (n *Node) HandleWANPacket(p *memberlist.Packet) { n.handlePacket(p, true) }

// IsPacket reports whether b is one of this package's packets or
// streams (after the transport's Chorus byte).
func IsPacket(b []byte) bool { return len(b) >= 2 && b[0] == chorusMagic && b[1] == typeWAN }

func (n *Node) handlePacket(p *memberlist.Packet, wan bool) {
	if len(p.Buf) < 3 || !IsPacket(p.Buf) {
		return
	}
	kind := p.Buf[2]
	body, err := n.seal.Open(p.Buf[3:], p.Buf[:3])
	if err != nil {
		n.logger.Debug("dropping a packet that does not open", "from", p.From.String(), "err", err)
		return
	}
	m, err := decodeMessage(body)
	if err != nil {
		n.logger.Debug("dropping a malformed packet", "from", p.From.String(), "err", err)
		return
	}
	from := p.From.String()
	switch {
	case wan && kind == kindNotice:
		n.onWANNotice(m, from)
	case !wan && (kind == kindNotice || kind == kindDigest):
		n.onLANMessage(m, from, kind == kindDigest)
	}
}

// onWANNotice takes a remote speaker's announcement of its own
// datacenter's summary. Only a WAN member of that datacenter may announce
// it.
func (n *Node) onWANNotice(m message, from string) {
	n.mu.Lock()
	p := n.wan
	n.mu.Unlock()
	if p == nil || len(m.E) != 1 {
		return
	}
	e := m.E[0]
	if strings.EqualFold(e.DC, n.cfg.Datacenter) {
		return
	}
	known := false
	for _, peer := range p.Peers() {
		if peer.Addr == from && strings.EqualFold(peer.DC, e.DC) {
			known = true
			break
		}
	}
	if !known {
		n.logger.Debug("dropping a summary notice from an address that is not a speaker of its datacenter", "from", from, "dc", e.DC)
		return
	}
	for _, h := range m.H {
		if strings.EqualFold(h.DC, n.cfg.Datacenter) {
			n.raiseFloor(h.V, h.X)
		}
	}
	e.C = n.now().UnixMilli() // heard from it just now
	if !n.newer(e) {
		n.confirm(e)
		return
	}
	if len(m.S) > 0 && n.acceptEncoded(e, m.S, "wan") {
		return
	}
	n.startPull(p, from, e, "wan", 0)
}

// onLANMessage takes a LAN member's notice or digest: it pulls what is
// newer from the sender, and, for a digest, sends back what the sender
// lacks.
func (n *Node) onLANMessage(m message, from string, digest bool) {
	n.mu.Lock()
	p := n.lan
	n.mu.Unlock()
	if p == nil {
		return
	}
	// Only members send: an address the LAN pool does not list is
	// neither pulled from nor answered. (Source addresses can be forged;
	// with encryption on, only key holders can seal a packet.)
	member := false
	for _, peer := range p.Peers() {
		if peer.Addr == from {
			member = true
			break
		}
	}
	if !member {
		n.logger.Debug("dropping a summary message from an address that is no LAN member's", "from", from)
		return
	}
	listed := map[string]bool{}
	for i, e := range m.E {
		if strings.EqualFold(e.DC, n.cfg.Datacenter) {
			continue
		}
		listed[strings.ToLower(e.DC)] = true
		if !n.newer(e) {
			n.confirm(e)
			continue
		}
		if i == 0 && len(m.S) > 0 && n.acceptEncoded(e, m.S, "lan") {
			continue
		}
		jitter := time.Duration(0)
		if !digest {
			// A speaker's notice reaches every member at once: spread
			// their pulls.
			jitter = rand.N(min(300*time.Millisecond, 2*time.Millisecond*time.Duration(len(p.Peers())+1)) + 1)
		}
		n.startPull(p, from, e, "lan", jitter)
	}
	if !digest {
		return
	}
	var back message
	n.mu.Lock()
	for k, h := range n.held {
		if !listed[k] {
			back.E = append(back.E, h.e)
			continue
		}
		for _, e := range m.E {
			if strings.EqualFold(e.DC, k) && (e.V < h.e.V || e.C < h.e.C) {
				back.E = append(back.E, h.e)
			}
		}
	}
	if len(back.E) == 1 {
		if h := n.held[strings.ToLower(back.E[0].DC)]; h != nil && len(h.enc) <= maxInline {
			back.S = h.enc
		}
	}
	n.mu.Unlock()
	if len(back.E) > 0 {
		if pkt, err := n.packet(kindNotice, back); err == nil {
			p.Send(from, pkt)
		}
	}
}

// maxAhead bounds how far beyond this agent's clock (in version
// milliseconds) a floor may be raised: a hostile or broken peer must not
// push versions to the end of their range.
const maxAhead = 10 * time.Minute

// raiseFloor notes that another datacenter holds this datacenter's
// summary at version v with content hash x. Later summaries are numbered
// above v; when v is above the summary this agent speaks with and its
// content differs, the next one is built at once.
func (n *Node) raiseFloor(v, x uint64) {
	if limit := uint64(n.now().Add(maxAhead).UnixMilli()); v > limit {
		n.logger.Warn("ignoring a version of this datacenter's summary far ahead of this clock", "version", v, "max_ahead", maxAhead.String())
		return
	}
	n.mu.Lock()
	if v > n.floor {
		n.floor = v
	}
	stale := n.own != nil && n.own.e.V < v && x != n.ownHash
	if stale {
		n.ownHash = 0 // rebuild even if the content is the same
	}
	n.mu.Unlock()
	if stale {
		n.kickRebuild()
	}
}

// newer reports whether e is newer than the summary held for its
// datacenter.
func (n *Node) newer(e entry) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := n.held[strings.ToLower(e.DC)]
	return h == nil || e.V > h.e.V
}

// confirm takes the freshness of an entry whose version is held.
func (n *Node) confirm(e entry) {
	n.mu.Lock()
	h := n.held[strings.ToLower(e.DC)]
	if h == nil || e.V != h.e.V || e.C <= h.e.C {
		n.mu.Unlock()
		return
	}
	h.e.C = e.C
	if e.R > 0 {
		h.e.R = e.R
	}
	n.mu.Unlock()
	n.publish()
}

// acceptEncoded decodes enc and keeps it if it is e's summary and newer
// than the held one; it reports whether enc was e's summary.
func (n *Node) acceptEncoded(e entry, enc []byte, via string) bool {
	s, err := DecodeSummary(enc)
	if err != nil {
		n.metrics.summaries.WithLabelValues(via, "rejected").Inc()
		n.logger.Debug("dropping a summary that does not decode", "dc", e.DC, "err", err)
		return false
	}
	if !strings.EqualFold(s.Datacenter, e.DC) || s.Version != e.V {
		n.metrics.summaries.WithLabelValues(via, "rejected").Inc()
		return false
	}
	if strings.EqualFold(s.Datacenter, n.cfg.Datacenter) {
		return true
	}
	n.keep(e, enc, s, via)
	return true
}

// keep stores a decoded summary if it is newer than the held one; a
// summary received over the WAN is then sent to every LAN member.
func (n *Node) keep(e entry, enc []byte, s *Summary, via string) {
	k := strings.ToLower(s.Datacenter)
	n.mu.Lock()
	if h := n.held[k]; h != nil && h.e.V >= e.V {
		n.mu.Unlock()
		n.metrics.summaries.WithLabelValues(via, "old").Inc()
		return
	} else if h != nil && e.R == 0 {
		e.R = h.e.R // a new version does not make the RTT unknown
	}
	e.DC = s.Datacenter
	n.held[k] = &held{e: e, enc: enc, sum: s, hash: s.ContentHash()}
	lan := n.lan
	n.mu.Unlock()
	n.wakeTicker()
	n.metrics.summaries.WithLabelValues(via, "applied").Inc()
	n.logger.Debug("summary applied", "dc", s.Datacenter, "version", e.V, "via", via, "nodes", len(s.Nodes))
	n.publish()
	if via == "wan" && lan != nil {
		m := message{E: []entry{e}}
		if len(enc) <= maxInline {
			m.S = enc
		}
		if pkt, err := n.packet(kindNotice, m); err == nil {
			for _, peer := range lan.Peers() {
				lan.Send(peer.Addr, pkt)
			}
		}
	}
}

// startPull fetches e's summary from addr on plane p after delay, unless
// a pull of that datacenter is already running.
func (n *Node) startPull(p Plane, addr string, e entry, via string, delay time.Duration) {
	key := via + "/" + strings.ToLower(e.DC)
	n.mu.Lock()
	ctx := n.ctx
	if ctx == nil || ctx.Err() != nil || n.pulling[key] {
		n.mu.Unlock()
		return
	}
	n.pulling[key] = true
	n.wg.Add(1)
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		defer func() {
			n.mu.Lock()
			delete(n.pulling, key)
			n.mu.Unlock()
		}()
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if !n.newer(e) {
			n.confirm(e)
			return
		}
		if err := n.pull(ctx, p, addr, e, via); err != nil {
			n.logger.Debug("summary pull failed", "dc", e.DC, "from", addr, "err", err)
		}
	}()
}

func (n *Node) pull(ctx context.Context, p Plane, addr string, want entry, via string) error {
	c, err := p.Dial(addr, n.cfg.PullTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetDeadline(n.now().Add(n.cfg.PullTimeout))
	req, _ := json.Marshal(map[string]string{"d": want.DC})
	bw := bufio.NewWriter(c)
	bw.Write([]byte{chorusMagic, typeWAN, kindPull})
	if err := n.seal.writeFrame(bw, kindPull, req); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	body, err := n.seal.readFrame(bufio.NewReader(c), kindPull, maxFrame)
	if err != nil {
		return err
	}
	e, enc, err := decodePullResponse(body)
	if err != nil {
		return err
	}
	if e.DC == "" {
		return nil // the peer no longer holds it
	}
	if via == "wan" {
		e.C = n.now().UnixMilli()
		e.R = 0
		n.mu.Lock()
		if h := n.held[strings.ToLower(e.DC)]; h != nil {
			e.R = h.e.R
		}
		n.mu.Unlock()
	}
	if !strings.EqualFold(e.DC, want.DC) {
		return errMessage
	}
	if !n.acceptEncoded(e, enc, via) {
		return ErrSummary
	}
	return nil
}

// HandleLANStream serves a pull from a LAN member: any held summary.
func (n *Node) HandleLANStream(c net.Conn) { n.serveStream(c, false) }

// HandleWANStream serves a pull from a remote speaker: this datacenter's
// own summary, while speaking.
func (n *Node) HandleWANStream(c net.Conn) { n.serveStream(c, true) }

func (n *Node) serveStream(c net.Conn, wan bool) {
	defer c.Close()
	c.SetDeadline(n.now().Add(n.cfg.PullTimeout))
	r := bufio.NewReader(c)
	var hdr [3]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil || hdr[0] != chorusMagic || hdr[1] != typeWAN || hdr[2] != kindPull {
		return
	}
	body, err := n.seal.readFrame(r, kindPull, 1024)
	if err != nil {
		n.logger.Debug("dropping a pull that does not open", "from", c.RemoteAddr().String(), "err", err)
		return
	}
	var req struct {
		D string `json:"d"`
	}
	if json.Unmarshal(body, &req) != nil {
		return
	}
	var resp []byte
	n.mu.Lock()
	switch {
	case wan && n.own != nil && strings.EqualFold(req.D, n.cfg.Datacenter):
		resp = encodePullResponse(n.own.e, n.own.enc)
	case !wan && n.held[strings.ToLower(req.D)] != nil:
		h := n.held[strings.ToLower(req.D)]
		resp = encodePullResponse(h.e, h.enc)
	default:
		resp = encodePullResponse(entry{}, nil)
	}
	n.mu.Unlock()
	n.seal.writeFrame(c, kindPull, resp)
}

// age drops summaries not confirmed for ReconnectTimeout and republishes
// those whose staleness changed.
func (n *Node) age() {
	now := n.now().UnixMilli()
	n.mu.Lock()
	for k, h := range n.held {
		if now-h.e.C > n.cfg.ReconnectTimeout.Milliseconds() {
			n.logger.Info("dropping the summary of a datacenter not heard from", "dc", h.sum.Datacenter, "after", n.cfg.ReconnectTimeout.String())
			delete(n.held, k)
		}
	}
	n.mu.Unlock()
	n.publish()
}

// publish hands the held summaries to the catalog, rebuilding the entry
// of those whose version, staleness or RTT (by more than 20%) changed.
func (n *Node) publish() {
	now := n.now()
	n.mu.Lock()
	out := make([]*catalog.RemoteDatacenter, 0, len(n.held))
	for _, h := range n.held {
		stale := now.UnixMilli()-h.e.C > n.cfg.StaleAfter.Milliseconds()
		rtt := time.Duration(h.e.R) * time.Microsecond
		r := h.remote
		if r == nil || r.Version != h.e.V || r.Stale != stale || rttMoved(r.RTT, rtt) {
			var snap *catalog.Snapshot
			if r != nil && r.Version == h.e.V {
				snap = r.Snapshot
			} else {
				snap = h.sum.snapshot()
			}
			r = &catalog.RemoteDatacenter{
				Name: h.sum.Datacenter, Version: h.e.V, Confirmed: time.UnixMilli(h.e.C),
				RTT: rtt, Stale: stale, Snapshot: snap,
			}
			if stale && (h.remote == nil || !h.remote.Stale) {
				n.logger.Warn("remote datacenter summary is stale", "dc", r.Name, "confirmed", r.Confirmed)
			}
			h.remote = r
		}
		out = append(out, r)
	}
	n.mu.Unlock()
	n.store.SetRemotes(out)
}

func rttMoved(a, b time.Duration) bool {
	if (a == 0) != (b == 0) {
		return true // known now, or no longer
	}
	d := a - b
	if d < 0 {
		d = -d
	}
	return d > time.Millisecond && d*5 > max(a, b)
}
