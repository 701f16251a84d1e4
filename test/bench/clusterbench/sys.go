package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Environment variables that tell a re-executed copy of this program what
// it is: the benchmark inside its own network namespace, or a CPU burner.
const (
	envNetns = "CLUSTERBENCH_NETNS"
	envBurn  = "CLUSTERBENCH_BURN"
)

// cpuTime returns the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// netCounters are the loopback and protocol counters of the network
// namespace. Inside the benchmark's own namespace only its agents use it,
// so they count exactly the cluster's traffic.
type netCounters struct {
	loBytes, loPackets uint64 // transmitted on lo (every packet once)
	udpOut, tcpOutSegs uint64
	tcpOpens           uint64 // connections opened (push-pulls, pulls, vector exchanges)
}

func readNet() (netCounters, error) {
	var c netCounters
	dev, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		return c, err
	}
	found := false
	for _, line := range strings.Split(string(dev), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 10 {
			return c, fmt.Errorf("/proc/net/dev: short lo line")
		}
		c.loBytes, _ = strconv.ParseUint(f[8], 10, 64)
		c.loPackets, _ = strconv.ParseUint(f[9], 10, 64)
		found = true
	}
	if !found {
		return c, fmt.Errorf("/proc/net/dev: no lo interface")
	}
	snmp, err := snmpCounters()
	if err != nil {
		return c, err
	}
	c.udpOut, c.tcpOutSegs, c.tcpOpens = snmp["Udp.OutDatagrams"], snmp["Tcp.OutSegs"], snmp["Tcp.ActiveOpens"]
	return c, nil
}

// snmpCounters parses /proc/net/snmp into "Proto.Name" → value.
func snmpCounters() (map[string]uint64, error) {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	var header []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		if header == nil || header[0] != f[0] {
			header = f
			continue
		}
		proto := strings.TrimSuffix(f[0], ":")
		for i := 1; i < len(f) && i < len(header); i++ {
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err == nil {
				out[proto+"."+header[i]] = v
			}
		}
		header = nil
	}
	return out, sc.Err()
}

// reexecInNetns runs this program again inside a new network namespace
// (unshare -n) and returns its exit code.
func reexecInNetns(unshare string) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "clusterbench:", err)
		return 1
	}
	cmd := exec.Command(unshare, append([]string{"-n", "--", exe}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envNetns+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "clusterbench:", err)
		return 1
	}
	return 0
}

// loopbackUp brings lo up in a fresh network namespace.
func loopbackUp() error {
	out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip link set lo up: %v: %s", err, out)
	}
	return nil
}

// burner is a child process that keeps one core busy.
type burner struct{ cmd *exec.Cmd }

func startBurners(n int) ([]*burner, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var bs []*burner
	for range n {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), envBurn+"=1", "GOMAXPROCS=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			stopBurners(bs)
			return nil, err
		}
		bs = append(bs, &burner{cmd: cmd})
	}
	return bs, nil
}

func stopBurners(bs []*burner) {
	for _, b := range bs {
		b.cmd.Process.Kill()
		b.cmd.Wait()
	}
}

// burn spins forever: the body of a burner process.
func burn() {
	x := 1.0
	for {
		x = x*1.0000001 + 1e-9
		if x > 1e300 {
			x = 1
		}
	}
}

// loadMeter measures how much CPU other processes used over a span, from
// the machine's busy time (/proc/stat) less this process's own CPU time.
type loadMeter struct {
	at   time.Time
	busy float64 // seconds of busy CPU, all cores
	own  time.Duration
}

func startMeter() loadMeter {
	return loadMeter{at: time.Now(), busy: machineBusy(), own: cpuTime()}
}

// others returns the cores other processes kept busy on average since m.
func (m loadMeter) others() float64 {
	el := time.Since(m.at).Seconds()
	if el <= 0 || m.busy < 0 {
		return 0
	}
	b := machineBusy()
	if b < 0 {
		return 0
	}
	return max(0, (b-m.busy)-(cpuTime()-m.own).Seconds()) / el
}

// machineBusy returns the non-idle CPU seconds of all cores since boot, or
// -1 when /proc/stat cannot be read.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return -1
	}
	var total, idle float64
	for i, s := range f[1:] {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return -1
		}
		if i >= 8 { // guest time is already counted in user time
			break
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return (total - idle) / 100 // USER_HZ
}

// waitQuiet waits up to longest until other processes have used under
// limit cores for a whole second, and returns what they used last.
func waitQuiet(limit float64, longest time.Duration) float64 {
	deadline := time.Now().Add(longest)
	for {
		m := startMeter()
		time.Sleep(time.Second)
		o := m.others()
		if o < limit || time.Now().After(deadline) {
			return o
		}
	}
}
