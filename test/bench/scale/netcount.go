package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// The harness's nftables table: per-source-address byte counters of
// what the agents send (UDP and TCP apart), in the private network
// namespace, so a table of this name outside it is never touched.
const nftTable = "chorus_scale"

// setupCounters creates the counters: every packet an agent's address
// sends is counted under that address, in the set of its protocol.
func setupCounters() error {
	script := fmt.Sprintf(`add table ip %[1]s
add set ip %[1]s sent_udp { type ipv4_addr; size 65535; flags dynamic; counter; }
add set ip %[1]s sent_tcp { type ipv4_addr; size 65535; flags dynamic; counter; }
add chain ip %[1]s out { type filter hook output priority 0; }
add rule ip %[1]s out ip saddr 127.1.0.0/16 meta l4proto udp add @sent_udp { ip saddr }
add rule ip %[1]s out ip saddr 127.1.0.0/16 meta l4proto tcp add @sent_tcp { ip saddr }
add set ip %[1]s gossip { type ipv4_addr; size 65535; flags dynamic; counter; }
add rule ip %[1]s out ip saddr 127.1.0.0/16 udp sport %[2]d add @gossip { ip saddr }
add rule ip %[1]s out ip saddr 127.1.0.0/16 tcp sport %[2]d add @gossip { ip saddr }
add rule ip %[1]s out ip saddr 127.1.0.0/16 tcp dport %[2]d add @gossip { ip saddr }
`, nftTable, gossipPort)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, out)
	}
	return nil
}

// addrBytes are IP bytes sent per source address.
type addrBytes map[string]uint64

// readCounters returns the UDP and TCP bytes each agent address has sent.
func readCounters() (udp, tcp addrBytes, err error) {
	udp, err = readSet("sent_udp")
	if err != nil {
		return nil, nil, err
	}
	tcp, err = readSet("sent_tcp")
	return udp, tcp, err
}

// readGossip reads the IP bytes each agent sent from or to a gossip port
// (Serf's and Chorus's traffic, UDP and TCP; not DNS or HTTP).
func readGossip() (addrBytes, error) { return readSet("gossip") }

func readSet(name string) (addrBytes, error) {
	out, err := exec.Command("nft", "-j", "list", "set", "ip", nftTable, name).Output()
	if err != nil {
		return nil, fmt.Errorf("nft list set %s: %w", name, err)
	}
	return parseNftSet(out)
}

// parseNftSet reads the elements of a set with counters from `nft -j
// list set` output.
func parseNftSet(b []byte) (addrBytes, error) {
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []struct {
					Elem struct {
						Val     string `json:"val"`
						Counter struct {
							Bytes uint64 `json:"bytes"`
						} `json:"counter"`
					} `json:"elem"`
				} `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("nft json: %w", err)
	}
	out := addrBytes{}
	for _, o := range doc.Nftables {
		if o.Set == nil {
			continue
		}
		for _, e := range o.Set.Elem {
			out[e.Elem.Val] += e.Elem.Counter.Bytes
		}
	}
	return out, nil
}

// loBytes returns the bytes transmitted on lo (every packet once).
func loBytes() (uint64, error) {
	dev, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(dev), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			break
		}
		return strconv.ParseUint(f[8], 10, 64)
	}
	return 0, fmt.Errorf("/proc/net/dev: no lo line")
}

// loopbackUp brings lo up in a fresh network namespace.
func loopbackUp() error {
	out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip link set lo up: %v: %s", err, out)
	}
	return nil
}
