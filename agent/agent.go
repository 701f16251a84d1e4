package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/agent/gossip"
	"github.com/chorusdns/chorus/agent/hooks"
	"github.com/chorusdns/chorus/agent/httpapi"
	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/agent/replication"
	"github.com/chorusdns/chorus/catalog"
	dnssrv "github.com/chorusdns/chorus/dns"
)

// Version is the agent's build version, set at link time with
// -ldflags "-X github.com/chorusdns/chorus/agent.Version=…".
var Version = "0.1.0-dev"

// Agent is one running Chorus agent. Create it with New, then Start it;
// Shutdown (graceful, leaves the cluster) or Kill (as a crash would) stop it.
type Agent struct {
	cfg    atomic.Pointer[Config]
	logger *slog.Logger // component=agent
	root   *slog.Logger // as given; other components add their own name
	reg    *prometheus.Registry
	// logs passes the agent's log records to /v1/agent/monitor.
	logs *httpapi.LogTap
	// reloadSource reloads the configuration for PUT /v1/agent/reload
	// (SetReloadSource).
	reloadSource atomic.Pointer[func() error]

	store  *catalog.Store
	local  *local.State
	dns    *dnssrv.Server
	gossip *gossip.Pool
	sync   *replication.Syncer
	api    *httpapi.Server
	// key signs this node's records (identity.go); set by Start.
	key ed25519.PrivateKey

	httpLn   net.Listener
	httpSrv  *http.Server
	httpsLn  net.Listener
	httpsSrv *http.Server
	dataDir  string
	tmpDir   string // dev-mode data dir, removed on shutdown

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once

	hooks    *hooks.Runner // event handlers and watches
	fatalErr atomic.Pointer[error]
	done     chan struct{}
}

// New validates cfg and prepares an agent. It binds nothing and starts no
// goroutine. reg receives every metric of the agent and its parts, and
// /metrics serves it.
func New(cfg Config, logger *slog.Logger, reg *prometheus.Registry) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logs := httpapi.NewLogTap()
	logger = slog.New(logs.Handler(logger.Handler()))
	a := &Agent{
		logs:    logs,
		root:    logger,
		logger:  logger.With("component", "agent"),
		reg:     reg,
		store:   catalog.NewStore(),
		dataDir: cfg.DataDir,
		done:    make(chan struct{}),
	}
	a.cfg.Store(&cfg)
	a.hooks = hooks.New(a.logger, func() []hooks.EventHandler { return a.cfg.Load().EventHandlers })
	registerMetrics(reg, a.store)
	return a, nil
}

// Config returns the configuration in force. It must not be modified.
func (a *Agent) Config() *Config { return a.cfg.Load() }

// Store returns the agent's catalog store.
func (a *Agent) Store() *catalog.Store { return a.store }

// HTTPAddr returns the bound HTTP address ("ip:port"), after Start.
func (a *Agent) HTTPAddr() string { return a.httpLn.Addr().String() }

// HTTPSAddr returns the bound HTTPS address, or "" when TLS is off.
func (a *Agent) HTTPSAddr() string {
	if a.httpsLn == nil {
		return ""
	}
	return a.httpsLn.Addr().String()
}

// DNSAddr returns the bound DNS address (UDP and TCP), after Start.
func (a *Agent) DNSAddr() string { return a.dns.Addr() }

// SerfAddr returns the gossip address peers join ("ip:port"), after Start.
func (a *Agent) SerfAddr() string { return a.gossip.Addr() }

// Gossip returns the agent's gossip layer (its LAN and WAN pools). Valid
// after Start.
func (a *Agent) Gossip() *gossip.Pool { return a.gossip }

// Join asks the gossip layer to join the members at addrs ("host" or
// "host:port", the default port being the serf_port). It returns how
// many it reached.
func (a *Agent) Join(addrs []string) (int, error) { return a.gossip.Join(addrs) }

// GossipBytes returns the UDP payload bytes this agent has sent and
// received on its gossip port since it started (Serf's traffic and
// Chorus's notices and digests; TCP pulls and push-pulls excluded).
func (a *Agent) GossipBytes() (sent, received uint64) {
	if a.gossip == nil {
		return 0, 0
	}
	return a.gossip.Transport().Bytes()
}

// Local returns the agent's own services and checks. Valid after Start.
func (a *Agent) Local() *local.State { return a.local }

// NodeName returns this agent's node name.
func (a *Agent) NodeName() string { return a.cfg.Load().NodeName }

// Done is closed when the agent has stopped (after Shutdown, Kill or a
// leave requested over the API).
func (a *Agent) Done() <-chan struct{} { return a.done }

// Start loads the persisted local state, binds every listener, joins the
// gossip pool and starts serving. On error everything started is stopped.
func (a *Agent) Start() (err error) {
	cfg := a.cfg.Load()
	a.ctx, a.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			a.cancel()
			a.closeAll(false)
		}
	}()
	if cfg.DataDir == "" { // --dev: a temporary data dir, removed on exit
		dir, err := os.MkdirTemp("", "chorus-dev-")
		if err != nil {
			return fmt.Errorf("data_dir: create temporary dir: %w", err)
		}
		c := *cfg
		c.DataDir = dir
		cfg = &c
		a.cfg.Store(cfg)
		a.tmpDir, a.dataDir = dir, dir
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "serf"), 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	if a.key, err = local.LoadIdentity(cfg.DataDir); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	advertise, err := advertiseAddr(cfg)
	if err != nil {
		return err
	}
	node := catalog.Node{
		Name:       cfg.NodeName,
		Address:    advertise,
		Datacenter: cfg.Datacenter,
		Zone:       cfg.Zone,
		Meta:       cfg.NodeMeta,
	}
	a.local = local.New(local.Config{Node: node, DataDir: cfg.DataDir, EnableScriptChecks: cfg.EnableScriptChecks, EnableLocalScriptChecks: cfg.EnableLocalScriptChecks,
		DockerSocket: cfg.DockerSocket, Catalog: local.AliasView{Store: a.store, Self: cfg.NodeName}}, a.root, a.publish)
	if err := a.local.Restore(); err != nil {
		return err
	}
	if err := a.local.LoadConfigServices(cfg.Services); err != nil {
		return err
	}
	if err := a.startExternals(cfg); err != nil {
		return err
	}

	// DNS and HTTP bind first so that a taken port fails fast.
	a.dns, err = dnssrv.New(a.dnsConfig(cfg, advertise), a.store, a.root, a.reg)
	if err != nil {
		return err
	}
	if err := a.dns.Listen(net.JoinHostPort(cfg.Client, strconv.Itoa(cfg.DNSPort))); err != nil {
		return fmt.Errorf("dns_port: %w", err)
	}
	a.httpLn, err = net.Listen("tcp", net.JoinHostPort(cfg.Client, strconv.Itoa(cfg.HTTPPort)))
	if err != nil {
		return fmt.Errorf("http_port: %w", err)
	}
	if cfg.HTTPSPort > 0 {
		tlsCfg, err := cfg.TLS.ServerConfig()
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Client, strconv.Itoa(cfg.HTTPSPort)))
		if err != nil {
			return fmt.Errorf("https_port: %w", err)
		}
		a.httpsLn = tls.NewListener(ln, tlsCfg)
	}
	a.setBuiltin(cfg, a.httpLn.Addr())

	if err := a.startGossip(cfg, advertise); err != nil {
		return err
	}
	a.dns.SetDistances(a.gossip)
	a.local.Publish()

	a.api = httpapi.New(a.apiSettings(cfg), a.store, a.local, a.local.Externals(), a.gossip.API(a.Leave), a.root, a.reg, a.reg)
	a.api.SetLogTap(a.logs)
	a.api.SetReload(a.reloadFromSource)
	handler := a.api.Handler()
	a.httpSrv = a.newHTTPServer(handler)
	if a.httpsLn != nil {
		a.httpsSrv = a.newHTTPServer(handler)
	}

	a.wg.Go(func() { a.api.Run(a.ctx) })
	a.wg.Go(func() { a.serveHTTP(a.httpSrv, a.httpLn) })
	if a.httpsSrv != nil {
		a.wg.Go(func() { a.serveHTTP(a.httpsSrv, a.httpsLn) })
	}
	prevPeers := a.gossip.PreviousPeers()
	expectPeers := len(prevPeers) > 0 || len(cfg.Join) > 0 || len(cfg.RetryJoin) > 0
	a.wg.Go(func() {
		waited, lack := a.waitCatalog(a.ctx, expectPeers)
		switch {
		case expectPeers && lack == "":
			a.logger.Info("dns serving", "waited_ms", waited.Milliseconds(), "catalog_current", true)
		case expectPeers:
			a.logger.Warn("dns serving before the catalog caught up", "waited_ms", waited.Milliseconds(), "catalog_current", false, "lacking", lack)
		}
		if err := a.dns.Run(a.ctx); err != nil {
			a.logger.Error("dns server stopped", "err", err)
		}
	})
	a.wg.Go(func() { a.local.Run(a.ctx) })
	a.wg.Go(func() { a.sync.Run(a.ctx) })
	a.wg.Go(func() { a.local.Externals().Run(a.ctx, a.gossip.Leaving) }) // a leaving agent adopts nothing
	a.wg.Go(func() { a.hooks.Run(a.ctx) })
	a.hooks.SetWatches(a.ctx, a.HTTPAddr(), cfg.Watches)
	if len(cfg.Join) > 0 {
		if _, err := a.gossip.Join(cfg.Join); err != nil {
			a.logger.Warn("join failed", "addrs", cfg.Join, "err", err)
		}
	}
	a.wg.Go(func() { a.gossip.RetryJoin(a.ctx) })
	if len(prevPeers) > 0 {
		a.wg.Go(func() {
			if _, err := a.gossip.Join(prevPeers); err != nil {
				a.logger.Info("rejoin of the members the snapshot lists", "err", err)
			}
		})
	}
	a.logger.Info("agent started", "node", cfg.NodeName, "datacenter", cfg.Datacenter,
		"http", a.HTTPAddr(), "dns", a.DNSAddr(), "serf", a.SerfAddr(), "data_dir", cfg.DataDir)
	return nil
}

// newHTTPServer returns an API server with bounded header size and
// read-header and idle timeouts. It sets no ReadTimeout or WriteTimeout:
// blocking queries hold their request for up to ~11 minutes. The API's
// handler bounds the rest per request (the target's length, the body's
// size and its arrival deadline), and net/http's connection errors are
// logged through the API's rate-limited error log.
func (a *Agent) newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          a.api.ErrorLog(),
	}
}

func (a *Agent) serveHTTP(srv *http.Server, ln net.Listener) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.logger.Error("http server stopped", "err", err)
	}
}

// publish signs a new record of this node with the node's key, applies
// it to the catalog and announces it to peers (local.State's publish
// function). Peers apply no record of this node that this key has not
// signed. Records built before the gossip layer exists (config services
// loaded during Start) are dropped: they lack the gossip address, and
// Start publishes the whole state once Serf is up. Were one applied, the
// record Start publishes, of the same version, would be refused by the
// catalog, never announced and never tagged.
func (a *Agent) publish(rec *catalog.NodeRecord) {
	if a.sync == nil {
		return
	}
	if err := rec.Sign(a.key); err != nil {
		a.logger.Error("sign own record", "version", rec.Version, "err", err)
		return
	}
	if a.store.ApplyRecord(rec) {
		a.sync.Announce(rec)
	}
}

// fatal stops the agent because it cannot go on; Err reports why. It is
// called from the agent's own goroutines, which the stop waits for, so
// the stop runs in the background (stopAsync).
func (a *Agent) fatal(err error) {
	a.logger.Error("stopping the agent", "err", err)
	a.fatalErr.Store(&err)
	a.stopAsync(false)
}

// stopAsync stops the agent (leaving the cluster if leave is set, bounded
// by leaveTimeout) on a goroutine of its own, for callers the stop waits
// for: the agent's goroutines and the API's requests. The goroutine is
// owned by the stop itself: its last act is closing Done, and Shutdown
// and Kill called meanwhile wait for it (stopOnce).
func (a *Agent) stopAsync(leave bool) {
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), leaveTimeout)
		defer cancel()
		a.stop(ctx, leave)
	}()
}

// Err returns why the agent stopped by itself, or nil.
func (a *Agent) Err() error {
	if p := a.fatalErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Shutdown stops the agent gracefully: DNS, then checks, then a Serf leave
// (bounded by ctx) so peers remove this node at once, then Serf itself.
// It is safe to call more than once.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.stop(ctx, true)
	return nil
}

// Kill stops the agent without leaving, as a crash would: peers must
// detect the failure. It is safe to call more than once.
func (a *Agent) Kill() {
	a.stop(context.Background(), false)
}

func (a *Agent) stop(ctx context.Context, leave bool) {
	a.stopOnce.Do(func() {
		if a.cancel != nil {
			a.cancel()
		}
		for _, srv := range []*http.Server{a.httpSrv, a.httpsSrv} {
			if srv != nil {
				sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				srv.Shutdown(sctx)
				cancel()
			}
		}
		if a.gossip != nil {
			a.gossip.WAN().Close(ctx, leave)
			if leave {
				a.gossip.Leave(ctx)
			}
		}
		a.wg.Wait()
		a.closeAll(leave)
		close(a.done)
	})
}

// closeAll releases what Start acquired, in reverse order.
func (a *Agent) closeAll(left bool) {
	if a.gossip != nil {
		if err := a.gossip.Shutdown(); err != nil {
			a.logger.Warn("serf shutdown", "err", err)
		}
	}
	if a.sync != nil {
		a.sync.Close()
	}
	if a.httpLn != nil {
		a.httpLn.Close()
	}
	if a.httpsLn != nil {
		a.httpsLn.Close()
	}
	if a.local != nil {
		if err := a.local.Flush(); err != nil {
			a.logger.Error("final persist failed", "err", err)
		}
		if x := a.local.Externals(); x != nil {
			if err := x.Close(); err != nil {
				a.logger.Error("close the external nodes journal", "err", err)
			}
		}
	}
	if a.tmpDir != "" {
		os.RemoveAll(a.tmpDir)
	}
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
	a.gossip.Leave(lctx)
	cancel()
	a.stopAsync(true)
}

// startGossip creates the gossip layer (Serf's LAN pool on the gossip
// port, the WAN side) and the replication that shares its port and
// keyring, and starts the member-event loop and the WAN's loops.
func (a *Agent) startGossip(cfg *Config, advertise string) error {
	keyring, err := gossip.LoadKeyring(cfg.DataDir, cfg.Encrypt)
	if err != nil {
		return err
	}
	a.sync = replication.New(cfg.NodeName, a.store, keyring, a.root, replication.NewMetrics(a.reg))
	a.gossip, err = gossip.New(gossip.Config{
		NodeName: cfg.NodeName, Datacenter: cfg.Datacenter, Zone: cfg.Zone,
		Bind: cfg.Bind, Advertise: advertise, Port: cfg.SerfPort, WANPort: cfg.SerfWANPort,
		DataDir: cfg.DataDir, Encrypt: cfg.Encrypt, Profile: cfg.GossipProfile, Tuning: cfg.Gossip,
		Build: Version, KeyTag: local.PublicKeyTag(a.key),
		RetryJoin: cfg.RetryJoin, RetryInterval: cfg.RetryInterval, RetryMax: cfg.RetryMax,
		ExpectPeers:         len(cfg.Join) > 0 || len(cfg.RetryJoin) > 0,
		WANReconnectTimeout: cfg.WANReconnectTimeout, WAN: cfg.wanConfig(),
	}, gossip.Deps{
		Logger: a.logger, Root: a.root, Registerer: a.reg, Store: a.store, Sync: a.sync, Keyring: keyring,
		SetGossipAddr: a.local.SetGossip, OnEvent: a.hooks.OnEvent,
	})
	if err != nil {
		return err
	}
	a.wg.Go(func() {
		if err := a.gossip.Run(a.ctx); err != nil {
			a.fatal(err)
		}
	})
	a.wg.Go(func() { a.gossip.WAN().Run(a.ctx) })
	return nil
}

// advertiseAddr picks the address peers and the catalog use for this node.
func advertiseAddr(cfg *Config) (string, error) {
	if cfg.Advertise != "" {
		return cfg.Advertise, nil
	}
	if ip := net.ParseIP(cfg.Bind); ip != nil && !ip.IsUnspecified() {
		return cfg.Bind, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("advertise: cannot list interfaces (%v); set advertise", err)
	}
	var fallback string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() == nil || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		if ipn.IP.IsPrivate() {
			return ipn.IP.String(), nil
		}
		if fallback == "" {
			fallback = ipn.IP.String()
		}
	}
	if fallback != "" {
		return fallback, nil
	}
	return "127.0.0.1", nil
}

// apiSettings are the settings the HTTP API reports and obeys.
func (a *Agent) apiSettings(cfg *Config) httpapi.Settings {
	return httpapi.Settings{
		Datacenter: cfg.Datacenter, NodeName: cfg.NodeName, Zone: cfg.Zone, Domain: cfg.Domain,
		NodeMeta: cfg.NodeMeta, Version: Version, ACL: cfg.ACL, Failover: cfg.Failover, DebugConfig: a.debugConfig,
		EnableDebug: cfg.EnableDebug,
	}
}

func (a *Agent) dnsConfig(cfg *Config, advertise string) dnssrv.Config {
	d := cfg.dnsConfig()
	d.NodeAddress = advertise
	return d
}
