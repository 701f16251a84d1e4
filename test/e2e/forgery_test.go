package e2e

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/chorusdns/chorus/test/testutil"
)

// forgedRecordBytes encodes, as Chorus's wire format 3 does (a format
// byte, then DEFLATE of the record's JSON), a well-formed record of node
// at version with a service "evil", signed with a key no agent knows.
func forgedRecordBytes(t *testing.T, node string, version uint64) []byte {
	t.Helper()
	sig := make([]byte, 64)
	rand.Read(sig)
	j := fmt.Sprintf(`{"Node":{"Name":%q,"Address":"203.0.113.66"},"Version":%d,"Services":[{"ID":"evil","Name":"evil","Port":6666,"Weights":{"Passing":1,"Warning":1}}],"Sig":%q}`,
		node, version, base64.StdEncoding.EncodeToString(sig))
	var buf bytes.Buffer
	buf.WriteByte(3)
	zw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	zw.Write([]byte(j))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// forgedNotice is Chorus's notice datagram (magic 0xC5, type 1, the node
// name, the version) for node at version with rec inline.
func forgedNotice(node string, version uint64, rec []byte) []byte {
	b := []byte{0xC5, 1, byte(len(node))}
	b = append(b, node...)
	b = binary.BigEndian.AppendUint64(b, version)
	return append(b, rec...)
}

// TestForgeryAgainstRealAgents is finding 1 against two chorus processes:
// a process that is no member speaks the wire protocol to agent a about
// agent b: a notice with a forged record at version 2^64-1; a vector
// exchange claiming b's newest record is at its own address; and, once b
// has been killed, notices sent from b's own gossip address (which Serf
// still lists). Agent a never serves the forged service, counts the
// refusals, and applies b's next real change after b restarts.
func TestForgeryAgainstRealAgents(t *testing.T) {
	a := testutil.StartAgent(t, testutil.AgentOptions{Node: "a"})
	bDir := t.TempDir()
	bOpts := testutil.AgentOptions{Node: "b", DataDir: bDir, Args: []string{"--join", "127.0.0.1:" + strconv.Itoa(a.SerfPort)}}
	b := testutil.StartAgent(t, bOpts)
	if code, out := put(t, b.URL("/v1/agent/service/register"), `{"Name":"web","Port":80}`); code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	testutil.Eventually(t, 15*time.Second, func() error {
		if r := ask(t, a.DNSAddr(), "udp", "web.service.chorus", dns.TypeSRV); len(r.Answer) != 1 {
			return fmt.Errorf("a does not serve b's web yet")
		}
		return nil
	})
	gossipA := "127.0.0.1:" + strconv.Itoa(a.SerfPort)
	ua, _ := net.ResolveUDPAddr("udp", gossipA)

	// A notice from a socket that is no member.
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c.WriteToUDP(forgedNotice("b", ^uint64(0), forgedRecordBytes(t, "b", ^uint64(0))), ua)
	c.Close()

	// A vector exchange naming b, pointing at the attacker's listener.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pulled := make(chan struct{}, 8)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			pulled <- struct{}{}
			conn.Close()
		}
	}()
	vec := fmt.Sprintf(`{"Addr":%q,"Name":"b","Vector":{"b":%d}}`, ln.Addr().String(), ^uint64(0))
	var z bytes.Buffer
	zw, _ := flate.NewWriter(&z, flate.BestSpeed)
	zw.Write([]byte(vec))
	zw.Close()
	if conn, err := net.Dial("tcp", gossipA); err == nil {
		frame := binary.BigEndian.AppendUint32([]byte{0xC5, 4}, uint32(z.Len()))
		conn.Write(append(frame, z.Bytes()...))
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		io.Copy(io.Discard, conn)
		conn.Close()
	}

	// b crashes; the attacker takes its gossip address.
	b.Signal(t, syscall.SIGKILL)
	b.Wait(t, 10*time.Second)
	spoof, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: b.SerfPort})
	if err != nil {
		t.Fatal(err)
	}
	soon := uint64(time.Now().Add(time.Second).UnixMilli())
	spoof.WriteToUDP(forgedNotice("b", soon, forgedRecordBytes(t, "b", soon)), ua)
	spoof.WriteToUDP(forgedNotice("b", ^uint64(0), forgedRecordBytes(t, "b", ^uint64(0))), ua)
	spoof.Close()

	// For 3 s (what sufficed before signatures) a serves no forged service.
	testutil.Consistently(t, 3*time.Second, func() error {
		resp, err := http.Get(a.URL("/v1/catalog/service/evil"))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(body), "evil") {
			return fmt.Errorf("a serves the forged service: %s", body)
		}
		return nil
	})
	if n := len(pulled); n > 0 {
		t.Fatalf("a pulled %d times from the address a vector message claimed", n)
	}
	for _, reason := range []string{"not_member", "bad_signature", "future_version"} {
		if v, err := testutil.Metric(a.URL(""), `chorus_sync_rejected_total{reason="`+reason+`"}`); err != nil || v == 0 {
			t.Errorf("a counted no %s rejection (%g, %v)", reason, v, err)
		}
	}

	// b comes back; its next change reaches a.
	bOpts.SerfPort, bOpts.HTTPPort, bOpts.DNSPort = b.SerfPort, b.HTTPPort, b.DNSPort
	b2 := testutil.StartAgent(t, bOpts)
	if code, out := put(t, b2.URL("/v1/agent/service/register"), `{"Name":"after","Port":81}`); code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	testutil.Eventually(t, 15*time.Second, func() error {
		if r := ask(t, a.DNSAddr(), "udp", "after.service.chorus", dns.TypeSRV); len(r.Answer) != 1 {
			return fmt.Errorf("a does not serve b's change after the forgeries")
		}
		return nil
	})
}
