package gossip

import (
	"bufio"
	"os"
	"slices"
	"strings"
)

// snapshotPeers returns the gossip addresses of the alive members other
// than self that the Serf snapshot at path lists, the members a restarted
// agent rejoins even without join addresses. It reads the snapshot's line
// format ("alive: <name> <addr>", "not-alive: <name>", "leave") the way
// Serf replays it with RejoinAfterLeave off; a missing or unreadable file
// means none.
func snapshotPeers(path, self string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	alive := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "alive: "):
			name, addr, _ := strings.Cut(strings.TrimPrefix(line, "alive: "), " ")
			alive[name] = addr
		case strings.HasPrefix(line, "not-alive: "):
			delete(alive, strings.TrimPrefix(line, "not-alive: "))
		case line == "leave":
			clear(alive)
		}
	}
	delete(alive, self)
	addrs := make([]string, 0, len(alive))
	for _, addr := range alive {
		if addr != "" {
			addrs = append(addrs, addr)
		}
	}
	slices.Sort(addrs)
	return addrs
}
