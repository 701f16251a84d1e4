package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Ports the agents and demo services use inside every host.
const (
	HTTPPort = 8500
	DNSPort  = 8600
	DemoPort = 8080
)

// ClusterConfig says what to bring up.
type ClusterConfig struct {
	Hosts    int    // number of hosts, each with an agent and a demo service
	RepoRoot string // the module root, where the binaries are built from
	WorkDir  string // binaries, data dirs and logs go here
	// GossipProfile is the agents' gossip_profile ("lan" by default).
	GossipProfile string
	// Gossip holds gossip.* knobs (key → YAML value) on top of the profile.
	Gossip map[string]string
	// Datacenters splits the hosts into this many datacenters of equal
	// size, in host order (dc1 first); 0 or 1 is one datacenter. Each
	// host retry-joins its own datacenter's hosts and lists the others in
	// retry_join_wan.
	Datacenters int
	// WANSpeakers is wan_speakers for every agent (0: the default).
	WANSpeakers int
	// Failover is the agents' failover key (e.g. "nearest:1").
	Failover string
	// Encrypt is the agents' gossip key (base64; "" = no encryption): the
	// LAN pools, the WAN pool and the summaries are sealed with it.
	Encrypt string
	Logger  *slog.Logger
}

// Cluster is N hosts, each a network namespace running a chorus agent and
// a demo HTTP service registered with an HTTP check. Its fault methods
// act from outside the agents: signals, iptables, NFQUEUE.
//
// Methods are safe for concurrent use. Close stops everything and may be
// called more than once.
type Cluster struct {
	cfg    ClusterConfig
	net    *Network
	hosts  []*Host
	epoch  time.Time
	client *http.Client
	log    *slog.Logger
	chorus string // binary paths
	tool   string

	closeOnce sync.Once
}

// Host is one host of the cluster.
type Host struct {
	*NetHost
	DataDir string
	LogDir  string
	config  string

	mu    sync.Mutex
	agent *Process
	demo  *Process
}

// NewCluster builds the binaries, creates the network, starts every demo
// service and agent, registers the demo services and waits until every
// agent answers every instance. On error everything is torn down.
func NewCluster(ctx context.Context, cfg ClusterConfig) (c *Cluster, err error) {
	if cfg.Hosts == 0 {
		cfg.Hosts = 5
	}
	if cfg.GossipProfile == "" {
		cfg.GossipProfile = "lan"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c = &Cluster{
		cfg: cfg, epoch: time.Now(), log: cfg.Logger,
		client: &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     10 * time.Second,
		}},
	}
	binDir := filepath.Join(cfg.WorkDir, "bin")
	c.chorus, c.tool = filepath.Join(binDir, "chorus"), filepath.Join(binDir, "hosttool")
	if err := build(ctx, cfg.RepoRoot, c.chorus, "./cmd/chorus"); err != nil {
		return nil, err
	}
	if err := build(ctx, cfg.RepoRoot, c.tool, "./test/cluster/cmd/hosttool"); err != nil {
		return nil, err
	}
	if removed := CleanStale(ctx); len(removed) > 0 {
		c.log.Info("removed namespaces left by earlier runs", "runs", removed)
	}
	id := randomID()
	logDir := filepath.Join(cfg.WorkDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	c.net, err = NewNetwork(ctx, id, cfg.Hosts, c.tool, logDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Close()
			c = nil
		}
	}()
	c.log.Info("network up", "run", id, "prefix", c.net.Prefix, "harness", c.net.Gateway)
	for _, nh := range c.net.Hosts {
		h := &Host{NetHost: nh, DataDir: filepath.Join(cfg.WorkDir, nh.Name, "data"), LogDir: logDir}
		if err := os.MkdirAll(h.DataDir, 0o700); err != nil {
			return nil, err
		}
		h.config = filepath.Join(cfg.WorkDir, nh.Name, "agent.yaml")
		if err := os.WriteFile(h.config, c.agentConfig(nh), 0o644); err != nil {
			return nil, err
		}
		c.hosts = append(c.hosts, h)
	}
	for i := range c.hosts {
		if err := c.StartDemo(i); err != nil {
			return nil, err
		}
		if err := c.StartAgent(i); err != nil {
			return nil, err
		}
	}
	for i := range c.hosts {
		if err := c.waitHTTP(ctx, i, 20*time.Second); err != nil {
			return nil, err
		}
	}
	for i := range c.hosts {
		body := fmt.Sprintf(`{"Name":"demo","ID":"demo","Port":%d,"Check":{"HTTP":"http://127.0.0.1:%d/","Interval":"1s","Timeout":"500ms"}}`, DemoPort, DemoPort)
		if code, err := c.Put(ctx, i, "/v1/agent/service/register", body, 5*time.Second); err != nil || code != 200 {
			return nil, fmt.Errorf("register demo on %s: %d %v", c.hosts[i].Name, code, err)
		}
	}
	return c, nil
}

// agentConfig is the YAML config file of host h: the lan profile and
// every other host to retry-join.
func (c *Cluster) agentConfig(h *NetHost) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "node: %s\ndata_dir: %s\nbind: %s\nadvertise: %s\nclient: 0.0.0.0\n",
		h.Name, filepath.Join(c.cfg.WorkDir, h.Name, "data"), h.Addr, h.Addr)
	fmt.Fprintf(&b, "http_port: %d\ndns_port: %d\ngossip_profile: %s\nlog_level: info\nretry_interval: 1s\nretry_join:\n",
		HTTPPort, DNSPort, c.cfg.GossipProfile)
	for _, o := range c.net.Hosts {
		if o != h && c.Datacenter(o.Index) == c.Datacenter(h.Index) {
			fmt.Fprintf(&b, "  - %s\n", o.Addr)
		}
	}
	if c.cfg.Datacenters > 1 {
		fmt.Fprintf(&b, "datacenter: %s\nretry_join_wan:\n", c.Datacenter(h.Index))
		for _, o := range c.net.Hosts {
			if c.Datacenter(o.Index) != c.Datacenter(h.Index) {
				fmt.Fprintf(&b, "  - %s\n", o.Addr)
			}
		}
		if c.cfg.WANSpeakers > 0 {
			fmt.Fprintf(&b, "wan_speakers: %d\n", c.cfg.WANSpeakers)
		}
		if c.cfg.Failover != "" {
			fmt.Fprintf(&b, "failover: %q\n", c.cfg.Failover)
		}
	}
	if c.cfg.Encrypt != "" {
		fmt.Fprintf(&b, "encrypt: %q\n", c.cfg.Encrypt)
	}
	if len(c.cfg.Gossip) > 0 {
		b.WriteString("gossip:\n")
		for _, k := range slices.Sorted(maps.Keys(c.cfg.Gossip)) {
			fmt.Fprintf(&b, "  %s: %s\n", k, c.cfg.Gossip[k])
		}
	}
	return []byte(b.String())
}

func build(ctx context.Context, root, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var o bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &o
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, o.String())
	}
	return nil
}

func randomID() string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Close kills every agent and demo service and removes the network.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		for _, h := range c.hosts {
			h.mu.Lock()
			for _, p := range []*Process{h.agent, h.demo} {
				if p != nil {
					p.Kill()
				}
			}
			h.mu.Unlock()
		}
		if c.net != nil {
			c.net.Close()
		}
		c.client.CloseIdleConnections()
	})
}

// N returns the number of hosts.
func (c *Cluster) N() int { return len(c.hosts) }

// Datacenter returns the datacenter of host i: dc1, dc2, … (see
// ClusterConfig.Datacenters).
func (c *Cluster) Datacenter(i int) string {
	n := max(c.cfg.Datacenters, 1)
	per := (c.cfg.Hosts + n - 1) / n
	return fmt.Sprintf("dc%d", i/per+1)
}

// Host returns host i (0-based).
func (c *Cluster) Host(i int) *Host { return c.hosts[i] }

// Net returns the network, for partitions and impairments.
func (c *Cluster) Net() *Network { return c.net }

// Now returns the time since the cluster was created: the clock of every
// record and event.
func (c *Cluster) Now() time.Duration { return time.Since(c.epoch) }

// HostIndex maps an address or node name to a host index, or -1.
func (c *Cluster) HostIndex(s string) int {
	for i, h := range c.hosts {
		if h.Name == s || h.Addr.String() == s {
			return i
		}
	}
	return -1
}

// AddrIndex maps an address to a host index, or -1.
func (c *Cluster) AddrIndex(a netip.Addr) int {
	for i, h := range c.hosts {
		if h.Addr == a {
			return i
		}
	}
	return -1
}

// StartAgent starts host i's agent with its data dir (as left by any
// earlier run of it).
func (c *Cluster) StartAgent(i int) error {
	h := c.hosts[i]
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.agent != nil && !h.agent.Exited() {
		return fmt.Errorf("%s: agent already running", h.Name)
	}
	p, err := StartProcess(h.NS, filepath.Join(h.LogDir, h.Name+"-agent.log"), c.chorus, "agent", "--config-file", h.config)
	if err != nil {
		return err
	}
	h.agent = p
	return nil
}

func (c *Cluster) agentProc(i int) (*Process, error) {
	h := c.hosts[i]
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.agent == nil || h.agent.Exited() {
		return nil, fmt.Errorf("%s: agent not running", h.Name)
	}
	return h.agent, nil
}

// SignalAgent sends sig to host i's agent.
func (c *Cluster) SignalAgent(i int, sig syscall.Signal) error {
	p, err := c.agentProc(i)
	if err != nil {
		return err
	}
	return p.Signal(sig)
}

// KillAgent crashes host i's agent (SIGKILL) and waits for it to die.
func (c *Cluster) KillAgent(i int) error {
	p, err := c.agentProc(i)
	if err != nil {
		return err
	}
	p.Kill()
	return nil
}

// TerminateAgent stops host i's agent gracefully (SIGTERM: it leaves the
// cluster) and waits up to 20 s for it to exit, killing it after that.
func (c *Cluster) TerminateAgent(i int) error {
	p, err := c.agentProc(i)
	if err != nil {
		return err
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	if !p.Wait(20 * time.Second) {
		p.Kill()
		return fmt.Errorf("%s: agent did not exit within 20 s of SIGTERM; killed", c.hosts[i].Name)
	}
	return nil
}

// AgentExit returns how host i's last agent process ended, or "" if it runs.
func (c *Cluster) AgentExit(i int) string {
	h := c.hosts[i]
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.agent == nil || !h.agent.Exited() {
		return ""
	}
	if h.agent.err == nil {
		return "exit 0"
	}
	return h.agent.err.Error()
}

// StartDemo starts host i's demo service.
func (c *Cluster) StartDemo(i int) error {
	h := c.hosts[i]
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.demo != nil && !h.demo.Exited() {
		return fmt.Errorf("%s: demo already running", h.Name)
	}
	p, err := StartProcess(h.NS, filepath.Join(h.LogDir, h.Name+"-demo.log"), c.tool, "demo", "-listen", ":"+strconv.Itoa(DemoPort), "-name", h.Name)
	if err != nil {
		return err
	}
	h.demo = p
	return nil
}

// KillDemo kills host i's demo service (SIGKILL), leaving its agent alone.
func (c *Cluster) KillDemo(i int) error {
	h := c.hosts[i]
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.demo == nil || h.demo.Exited() {
		return fmt.Errorf("%s: demo not running", h.Name)
	}
	h.demo.Kill()
	return nil
}

// URL returns host i's HTTP API URL for path.
func (c *Cluster) URL(i int, path string) string {
	return "http://" + net.JoinHostPort(c.hosts[i].Addr.String(), strconv.Itoa(HTTPPort)) + path
}

// DNSAddr returns host i's DNS address.
func (c *Cluster) DNSAddr(i int) string {
	return net.JoinHostPort(c.hosts[i].Addr.String(), strconv.Itoa(DNSPort))
}

// Get fetches path from host i's API and decodes the JSON into out.
func (c *Cluster) Get(ctx context.Context, i int, path string, out any, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL(i, path), nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s on %s: %d %s", path, c.hosts[i].Name, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// Put sends body to path on host i's API and returns the status code.
func (c *Cluster) Put(ctx context.Context, i int, path, body string, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.URL(i, path), strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// waitHTTP waits until host i's API answers.
func (c *Cluster) waitHTTP(ctx context.Context, i int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := c.Get(ctx, i, "/v1/agent/self", nil, time.Second)
		if err == nil {
			return nil
		}
		if e := c.AgentExit(i); e != "" {
			return fmt.Errorf("%s: agent exited (%s); see %s", c.hosts[i].Name, e, filepath.Join(c.hosts[i].LogDir, c.hosts[i].Name+"-agent.log"))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: API not up within %v: %w", c.hosts[i].Name, timeout, err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// errNotReady is returned by readiness checks that should be polled again.
var errNotReady = errors.New("not ready")
