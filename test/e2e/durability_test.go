package e2e

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/chorusdns/chorus/test/testutil"
)

// TestAcknowledgedRegistrationsSurviveSIGKILL registers 1,000 services
// concurrently, kills the agent with SIGKILL in the middle, restarts it
// with the same data dir and checks that every registration that got a
// 200 is there and nothing on disk is corrupt.
func TestAcknowledgedRegistrationsSurviveSIGKILL(t *testing.T) {
	dataDir := t.TempDir()
	a := testutil.StartAgent(t, testutil.AgentOptions{Node: "durable", DataDir: dataDir})
	client := &http.Client{Timeout: 10 * time.Second}
	var (
		mu    sync.Mutex
		acked []string
		sent  atomic.Int32
		wg    sync.WaitGroup
	)
	work := make(chan int)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				id := fmt.Sprintf("svc-%04d", i)
				req, _ := http.NewRequest("PUT", a.URL("/v1/agent/service/register"),
					strings.NewReader(fmt.Sprintf(`{"Name":"bulk","ID":%q,"Port":%d}`, id, 1000+i)))
				resp, err := client.Do(req)
				sent.Add(1)
				if err != nil {
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}()
	}
	go func() {
		defer close(work)
		for i := 0; i < 1000; i++ {
			work <- i
		}
	}()
	testutil.Eventually(t, 60*time.Second, func() error {
		if sent.Load() < 500 {
			return fmt.Errorf("%d sent", sent.Load())
		}
		return nil
	})
	a.Signal(t, syscall.SIGKILL)
	wg.Wait()
	a.Wait(t, 10*time.Second)
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n == 0 || n == 1000 {
		t.Logf("warning: the kill landed outside the registrations (%d acknowledged)", n)
	}

	b := testutil.StartAgent(t, testutil.AgentOptions{Node: "durable", DataDir: dataDir})
	resp, err := http.Get(b.URL("/v1/agent/services"))
	if err != nil {
		t.Fatal(err)
	}
	var svcs map[string]json.RawMessage
	json.NewDecoder(resp.Body).Decode(&svcs)
	resp.Body.Close()
	var lost []string
	for _, id := range acked {
		if _, ok := svcs[id]; !ok {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged registrations lost after SIGKILL: %v", len(lost), n, lost)
	}
	t.Logf("%d acknowledged before SIGKILL, %d present after restart", n, len(svcs))
	if strings.Contains(b.Output.String(), "is damaged") {
		t.Fatalf("state file damaged:\n%s", b.Output.String())
	}
}

// TestDamagedJournal damages the local state journal two ways. A log cut
// short inside its last entry looks like a write cut short by a crash
// (never acknowledged), and nothing tells it from damage to the last
// acknowledged write, which it is here ("four" got a 200): the agent
// starts with everything before it, logs an ERROR naming the file and
// reports the bytes dropped in chorus_state_dropped_bytes. A byte flipped
// inside an earlier entry is damage the agent cannot explain: it refuses
// to start, naming the file and the offset.
func TestDamagedJournal(t *testing.T) {
	dataDir := t.TempDir()
	a := testutil.StartAgent(t, testutil.AgentOptions{Node: "damaged", DataDir: dataDir})
	for _, name := range []string{"one", "two", "three", "four"} {
		body := fmt.Sprintf(`{"Name":%q,"Port":1}`, name)
		if code, out := put(t, a.URL("/v1/agent/service/register"), body); code != 200 {
			t.Fatalf("%d %s", code, out)
		}
	}
	a.Signal(t, syscall.SIGKILL)
	a.Wait(t, 10*time.Second)
	path := filepath.Join(dataDir, "local", "log")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// Torn end: the last registration's entry loses its last bytes.
	if err := os.WriteFile(path, b[:len(b)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	c := testutil.StartAgent(t, testutil.AgentOptions{Node: "damaged", DataDir: dataDir})
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, line := range strings.Split(c.Output.String(), "\n") {
			if strings.Contains(line, "torn end") && strings.Contains(line, "level=ERROR") && strings.Contains(line, path) {
				return nil
			}
		}
		return fmt.Errorf("no ERROR about the torn end naming %s:\n%s", path, c.Output.String())
	})
	if v, err := testutil.Metric(c.URL(""), `chorus_state_dropped_bytes{journal="local"}`); err != nil || v <= 0 {
		t.Fatalf("chorus_state_dropped_bytes{journal=\"local\"} = %g (%v), want the bytes dropped", v, err)
	}
	for _, name := range []string{"one", "two", "three"} {
		if r := ask(t, c.DNSAddr(), "udp", name+".service.chorus", dns.TypeSRV); len(r.Answer) != 1 {
			t.Fatalf("%s lost with the torn end: %v", name, r)
		}
	}
	c.Signal(t, syscall.SIGKILL)
	c.Wait(t, 10*time.Second)

	// A flipped byte with intact entries after it: refuse to start.
	b, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x55
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runAgentOnce(t, dataDir, "damaged")
	if err == nil || !strings.Contains(out, path) || !strings.Contains(out, "offset") {
		t.Fatalf("started with a damaged journal or did not name the file and offset (%v):\n%s", err, out)
	}
}

// TestGarbageOnPortsNeverCrashes throws random bytes at the DNS (UDP and
// TCP) and gossip (UDP and TCP) ports and checks the agent still answers.
func TestGarbageOnPortsNeverCrashes(t *testing.T) {
	a := testutil.StartAgent(t, testutil.AgentOptions{Node: "garbage"})
	put(t, a.URL("/v1/agent/service/register"), `{"Name":"web","Port":80}`)
	targets := []string{a.DNSAddr(), fmt.Sprintf("127.0.0.1:%d", a.SerfPort)}
	buf := make([]byte, 2048)
	for i := 0; i < 300; i++ {
		rand.Read(buf)
		n := 1 + i*7%len(buf)
		if i%3 == 0 { // sometimes start with Chorus's own magic byte
			buf[0] = 0xC5
			buf[1] = byte(1 + i%4)
		}
		for _, addr := range targets {
			if c, err := net.Dial("udp", addr); err == nil {
				c.Write(buf[:n])
				c.Close()
			}
			if i%10 == 0 {
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					c.SetDeadline(time.Now().Add(200 * time.Millisecond))
					c.Write(buf[:n])
					c.Read(make([]byte, 64))
					c.Close()
				}
			}
		}
	}
	r := ask(t, a.DNSAddr(), "udp", "web.service.chorus", dns.TypeSRV)
	if len(r.Answer) != 1 {
		t.Fatalf("after garbage: %v", r)
	}
	if strings.Contains(a.Output.String(), "panic") {
		t.Fatalf("panic in output:\n%s", a.Output.String())
	}
}
