package agent

import (
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chorusdns/chorus/catalog"
)

// TestForgedNoticeRejected sends a notice for node1, carrying a forged
// record, from an address that is not node1's: it must be rejected and
// counted, and the catalog must keep node1's real record.
func TestForgedNoticeRejected(t *testing.T) {
	agents := startCluster(t, 2, nil)
	mustDo(t, agents[1], "PUT", "/v1/agent/service/register", `{"Name":"real","Port":1}`)
	waitDNS(t, agents, "real", 1, 5*time.Second)
	before := agents[0].Store().Version("node1")

	forged := &catalog.NodeRecord{Node: catalog.Node{Name: "node1", Address: "203.0.113.66"}, Version: before + 1000,
		Services: []catalog.Service{{ID: "evil", Name: "evil", Port: 6666, Weights: catalog.DefaultWeights}}}
	enc, err := catalog.EncodeRecord(forged)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte{byte(len("node1"))}
	body = append(body, "node1"...)
	body = binary.BigEndian.AppendUint64(body, forged.Version)
	body = append(body, enc...)
	pkt, err := agents[0].sync.packet(pktNotice, body)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", agents[0].SerfAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		c.Write(pkt)
	}
	// A corrupt record through the same path is rejected too.
	c.Write(append([]byte{chorusMagic, pktNotice}, []byte("\x05node1garbage-garbage")...))

	deadline := time.Now().Add(3 * time.Second)
	for counterValue(t, agents[0], "rejected") == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if counterValue(t, agents[0], "rejected") == 0 {
		t.Fatal("forged notice not counted as rejected")
	}
	if v := agents[0].Store().Version("node1"); v != before {
		t.Fatalf("forged record applied: version %d → %d", before, v)
	}
	if dnsCount(t, agents[0], "evil") != 0 {
		t.Fatal("forged service answered")
	}
	for _, rec := range []*catalog.NodeRecord{agents[0].Store().Record("node1")} {
		for _, s := range rec.Services {
			if strings.Contains(s.Name, "evil") {
				t.Fatal("forged service in the catalog")
			}
		}
	}
}
