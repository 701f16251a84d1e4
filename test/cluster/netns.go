package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// nsPrefix starts the name of every namespace the harness creates, so a
// later run can find what a killed run left behind.
const nsPrefix = "chs-"

// stateDir records which harness process owns which run ID.
const stateDir = "/run/chorus-chaos"

// Network is a private IPv4 network of hosts, each a network namespace
// with one interface (eth0) on a bridge. The bridge lives in a namespace
// of its own ("switch"), so the root namespace's firewall never sees the
// hosts' traffic; one more veth gives the harness (in the root namespace)
// the .1 address on the same network. Faults are iptables rules inside a
// host's namespace and, for delay, a hosttool netem process there.
//
// A Network's methods are safe for concurrent use. Close removes
// everything and may be called more than once.
type Network struct {
	ID      string
	Prefix  netip.Prefix
	Gateway netip.Addr
	Hosts   []*NetHost

	hosttool string
	logDir   string

	mu       sync.Mutex
	blocked  map[int]map[int]bool // host → peers it cannot reach
	impair   map[int]Impairment
	netem    map[int]*Process
	closed   bool
	switchNS string
	rootIf   string
}

// NetHost is one host of a Network.
type NetHost struct {
	Index int    // 0-based
	Name  string // h1, h2, …
	NS    string // namespace name
	Addr  netip.Addr
}

// Impairment degrades a host's outgoing traffic to the other hosts, as
// `tc qdisc add dev eth0 root netem loss <Loss> delay <Delay>` would
// (packets to the harness are spared, so the prober measures the agents).
type Impairment struct {
	Loss  float64 // share of packets dropped, 0–1
	Delay time.Duration
	// To, when not zero, limits the impairment to traffic to the hosts
	// whose bits are set (bit i: host i), e.g. the other datacenter's.
	To uint64
}

// NewNetwork creates n hosts on a free 10.213.X.0/24. hosttool is the
// helper binary run for delays; logDir receives its output.
func NewNetwork(ctx context.Context, id string, n int, hosttool, logDir string) (nw *Network, err error) {
	if n < 2 || n > 16 {
		return nil, fmt.Errorf("hosts: %d; want 2–16", n)
	}
	prefix, err := freePrefix(ctx)
	if err != nil {
		return nil, err
	}
	base := prefix.Addr().As4()
	base[3] = 1
	nw = &Network{
		ID: id, Prefix: prefix, Gateway: netip.AddrFrom4(base),
		hosttool: hosttool, logDir: logDir,
		blocked: map[int]map[int]bool{}, impair: map[int]Impairment{}, netem: map[int]*Process{},
		switchNS: nsPrefix + id + "-sw", rootIf: "chs" + id,
	}
	if err := claimRun(id); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			nw.Close()
			nw = nil
		}
	}()
	sw := nw.switchNS
	steps := [][]string{
		{"ip", "netns", "add", sw},
		{"ip", "-n", sw, "link", "set", "lo", "up"},
		{"ip", "-n", sw, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", sw, "link", "set", "br0", "up"},
		{"ip", "link", "add", nw.rootIf, "type", "veth", "peer", "name", "up0", "netns", sw},
		{"ip", "-n", sw, "link", "set", "up0", "master", "br0", "up"},
		{"ip", "addr", "add", nw.Gateway.String() + "/24", "dev", nw.rootIf},
		{"ip", "link", "set", nw.rootIf, "up"},
	}
	for i := range n {
		a := base
		a[3] = byte(11 + i)
		h := &NetHost{Index: i, Name: "h" + strconv.Itoa(i+1), NS: nsPrefix + id + "-h" + strconv.Itoa(i+1), Addr: netip.AddrFrom4(a)}
		nw.Hosts = append(nw.Hosts, h)
		port := "p" + strconv.Itoa(i+1)
		steps = append(steps,
			[]string{"ip", "netns", "add", h.NS},
			[]string{"ip", "-n", h.NS, "link", "set", "lo", "up"},
			[]string{"ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
			[]string{"ip", "-n", sw, "link", "set", port, "master", "br0", "up"},
			[]string{"ip", "-n", h.NS, "addr", "add", h.Addr.String() + "/24", "dev", "eth0"},
			[]string{"ip", "-n", h.NS, "link", "set", "eth0", "up"},
		)
	}
	for _, s := range steps {
		if err := run(ctx, nil, s...); err != nil {
			return nw, err
		}
	}
	return nw, nil
}

// Host returns host i (0-based).
func (nw *Network) Host(i int) *NetHost { return nw.Hosts[i] }

// Partition cuts the network into groups: hosts in different groups drop
// each other's packets (both directions, nothing answered, like a pulled
// cable). Hosts in no group keep talking to everyone. Heal undoes it.
func (nw *Network) Partition(ctx context.Context, groups ...[]int) error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	group := map[int]int{}
	for g, hs := range groups {
		for _, h := range hs {
			group[h] = g + 1
		}
	}
	nw.blocked = map[int]map[int]bool{}
	for a := range nw.Hosts {
		for b := range nw.Hosts {
			if a != b && group[a] != 0 && group[b] != 0 && group[a] != group[b] {
				if nw.blocked[a] == nil {
					nw.blocked[a] = map[int]bool{}
				}
				nw.blocked[a][b] = true
			}
		}
	}
	return nw.applyAllLocked(ctx)
}

// Heal removes every partition.
func (nw *Network) Heal(ctx context.Context) error { return nw.Partition(ctx) }

// Impair degrades host h's outgoing traffic; the zero Impairment restores it.
func (nw *Network) Impair(ctx context.Context, h int, im Impairment) error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	old := nw.impair[h]
	if im == (Impairment{}) {
		delete(nw.impair, h)
	} else {
		nw.impair[h] = im
	}
	// Start the delaying helper before the rule that feeds it (the rule
	// bypasses the queue while nobody listens, so no packet is stuck),
	// and stop it after the rule is gone.
	if im.Delay > 0 && old.Delay != im.Delay {
		if p := nw.netem[h]; p != nil {
			p.Stop(5 * time.Second)
			delete(nw.netem, h)
		}
		p, err := StartProcess(nw.Hosts[h].NS, filepath.Join(nw.logDir, nw.Hosts[h].Name+"-netem.log"),
			nw.hosttool, "netem", "-queue", "0", "-delay", im.Delay.String())
		if err != nil {
			return err
		}
		nw.netem[h] = p
		if err := waitQueueBound(ctx, nw.Hosts[h].NS, p); err != nil {
			return err
		}
	}
	if err := nw.applyLocked(ctx, h); err != nil {
		return err
	}
	if im.Delay == 0 {
		if p := nw.netem[h]; p != nil {
			p.Stop(5 * time.Second)
			delete(nw.netem, h)
		}
	}
	return nil
}

// waitQueueBound waits until NFQUEUE 0 has a listener in namespace ns
// (the kernel lists bound queues in /proc/net/netfilter/nfnetlink_queue).
func waitQueueBound(ctx context.Context, ns string, p *Process) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "cat", "/proc/net/netfilter/nfnetlink_queue").Output()
		if err == nil {
			for _, line := range strings.Split(string(out), "\n") {
				if f := strings.Fields(line); len(f) > 0 && f[0] == "0" {
					return nil
				}
			}
		}
		if p.Exited() {
			return fmt.Errorf("%s: hosttool netem exited; see its log", ns)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: NFQUEUE 0 not bound within 3 s", ns)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

func (nw *Network) applyAllLocked(ctx context.Context) error {
	var errs []error
	for h := range nw.Hosts {
		errs = append(errs, nw.applyLocked(ctx, h))
	}
	return errors.Join(errs...)
}

// applyLocked replaces host h's filter table with the rules its faults
// need, in one iptables-restore (atomic for that host).
func (nw *Network) applyLocked(ctx context.Context, h int) error {
	var b strings.Builder
	b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	for peer := range nw.Hosts {
		if nw.blocked[h][peer] {
			ip := nw.Hosts[peer].Addr.String()
			fmt.Fprintf(&b, "-A INPUT -s %s -j DROP\n-A OUTPUT -d %s -j DROP\n", ip, ip)
		}
	}
	if im, ok := nw.impair[h]; ok {
		// Traffic to the harness passes untouched; everything else that
		// leaves through eth0 goes to the other hosts.
		fmt.Fprintf(&b, "-A OUTPUT -d %s -j ACCEPT\n", nw.Gateway)
		dests := []string{""}
		if im.To != 0 {
			dests = dests[:0]
			for peer := range nw.Hosts {
				if im.To&(1<<peer) != 0 {
					dests = append(dests, " -d "+nw.Hosts[peer].Addr.String())
				}
			}
		}
		for _, d := range dests {
			if im.Loss > 0 {
				fmt.Fprintf(&b, "-A OUTPUT -o eth0%s -m statistic --mode random --probability %.4f -j DROP\n", d, im.Loss)
			}
			if im.Delay > 0 {
				fmt.Fprintf(&b, "-A OUTPUT -o eth0%s -j NFQUEUE --queue-num 0 --queue-bypass\n", d)
			}
		}
	}
	b.WriteString("COMMIT\n")
	return run(ctx, strings.NewReader(b.String()), "ip", "netns", "exec", nw.Hosts[h].NS, "iptables-restore")
}

// Close stops the helpers and deletes the namespaces (which removes every
// veth and the bridge with them). Processes still inside a namespace keep
// it alive, so callers stop theirs first.
func (nw *Network) Close() {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.closed {
		return
	}
	nw.closed = true
	for h, p := range nw.netem {
		p.Stop(2 * time.Second)
		delete(nw.netem, h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	removeRun(ctx, nw.ID)
}

// removeRun deletes every namespace and the root veth of run id.
func removeRun(ctx context.Context, id string) {
	out, _ := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, nsPrefix+id+"-") {
			_ = run(ctx, nil, "ip", "netns", "del", name)
		}
	}
	_ = exec.CommandContext(ctx, "ip", "link", "del", "chs"+id).Run()
	_ = os.Remove(filepath.Join(stateDir, id+".pid"))
}

// claimRun records this process as the owner of run id.
func claimRun(id string) error {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	return os.WriteFile(filepath.Join(stateDir, id+".pid"), []byte(strconv.Itoa(os.Getpid())), 0o644)
}

// CleanStale removes what earlier runs left behind when their harness
// process died without cleaning up: namespaces of runs whose owner is
// gone, after killing the processes inside them (started by that run).
// It returns the run IDs it removed.
func CleanStale(ctx context.Context) []string {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	runs := map[string][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !strings.HasPrefix(name, nsPrefix) {
			continue
		}
		id, _, ok := strings.Cut(strings.TrimPrefix(name, nsPrefix), "-")
		if ok {
			runs[id] = append(runs[id], name)
		}
	}
	var removed []string
	for id, names := range runs {
		if ownerAlive(id) {
			continue
		}
		for _, ns := range names {
			pids, _ := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
			for _, f := range strings.Fields(string(pids)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					_ = syscall.Kill(pid, syscall.SIGCONT)
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
		removeRun(ctx, id)
		removed = append(removed, id)
	}
	return removed
}

func ownerAlive(id string) bool {
	b, err := os.ReadFile(filepath.Join(stateDir, id+".pid"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return true
	}
	return syscall.Kill(pid, 0) == nil
}

// freePrefix picks a 10.213.X.0/24 that no route on this machine overlaps.
func freePrefix(ctx context.Context) (netip.Prefix, error) {
	out, err := exec.CommandContext(ctx, "ip", "-4", "-o", "route", "show", "table", "all").Output()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("ip route: %w", err)
	}
	var used []netip.Prefix
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dst := f[0]
		if dst == "local" || dst == "broadcast" || dst == "unicast" {
			if len(f) < 2 {
				continue
			}
			dst = f[1]
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		if p, err := netip.ParsePrefix(dst); err == nil && p.Bits() > 0 {
			used = append(used, p.Masked())
		}
	}
	for x := 0; x < 256; x++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte(x), 0}), 24)
		free := true
		for _, u := range used {
			if u.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("no free 10.213.X.0/24 network")
}

// run runs a command, with stdin when not nil, and returns its output in
// the error when it fails.
func run(ctx context.Context, stdin *strings.Reader, args ...string) error {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
