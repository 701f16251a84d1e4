// Package e2e drives the real chorus binary: build it, start it on free
// ports, talk to it over HTTP and DNS, kill it and start it again.
package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/chorusdns/chorus/test/testutil"
)

func put(t *testing.T, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("PUT", url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func ask(t *testing.T, addr, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", network, name, err)
	}
	return r
}

func addrs(r *dns.Msg) string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func TestRegisterKillRestart(t *testing.T) {
	dataDir := t.TempDir()
	a := testutil.StartAgent(t, testutil.AgentOptions{Node: "e2e", DataDir: dataDir})
	for i, body := range []string{
		`{"Name":"web","Port":8080,"Tags":["blue"]}`,
		`{"Name":"web","ID":"web-2","Address":"192.0.2.10","Port":8081,"Weights":{"Passing":3,"Warning":1}}`,
		`{"Name":"db","Port":5432}`,
	} {
		if code, out := put(t, a.URL("/v1/agent/service/register"), body); code != 200 {
			t.Fatalf("register %d: %d %s", i, code, out)
		}
	}
	check := func(a *testutil.Agent) {
		t.Helper()
		for _, network := range []string{"udp", "tcp"} {
			r := ask(t, a.DNSAddr(), network, "web.service.chorus", dns.TypeA)
			if got := addrs(r); got != "127.0.0.1,192.0.2.10" {
				t.Fatalf("%s web A = %q\n%v", network, got, r)
			}
			r = ask(t, a.DNSAddr(), network, "web.service.chorus", dns.TypeSRV)
			if len(r.Answer) != 2 {
				t.Fatalf("%s web SRV: %v", network, r)
			}
			weights := map[uint16]bool{}
			for _, rr := range r.Answer {
				weights[rr.(*dns.SRV).Weight] = true
			}
			if !weights[3] || !weights[1] {
				t.Fatalf("%s SRV weights: %v", network, r)
			}
			r = ask(t, a.DNSAddr(), network, "e2e.node.chorus", dns.TypeA)
			if addrs(r) != "127.0.0.1" {
				t.Fatalf("%s node A: %v", network, r)
			}
			r = ask(t, a.DNSAddr(), network, "missing.service.chorus", dns.TypeA)
			if r.Rcode != dns.RcodeNameError {
				t.Fatalf("%s missing: %v", network, r)
			}
			r = ask(t, a.DNSAddr(), network, "db.service.chorus", dns.TypeAAAA)
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
				t.Fatalf("%s NODATA: %v", network, r)
			}
		}
	}
	check(a)

	// SIGKILL: nothing graceful happens; the registrations are on disk.
	a.Signal(t, syscall.SIGKILL)
	a.Wait(t, 10*time.Second)
	b := testutil.StartAgent(t, testutil.AgentOptions{Node: "e2e", DataDir: dataDir})
	check(b)

	// SIGTERM: leave gracefully and exit 0.
	b.Signal(t, syscall.SIGTERM)
	if code := b.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d\n%s", code, b.Output.String())
	}
}

func TestBadConfigRefusesToStart(t *testing.T) {
	bin := testutil.Binary(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	cases := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"unknown key", []string{"--config-file", write("a.yaml", "node: x\nbogus_key: 1\n")}, nil, "bogus_key"},
		{"wrong type", []string{"--config-file", write("b.json", `{"http_port": "many"}`)}, nil, "http_port"},
		{"wrong type env", nil, []string{"CHORUS_DNS_PORT=abc"}, "dns_port"},
		{"bad nested", []string{"--config-file", write("c.hcl", "dns {\n  policy = \"fastest\"\n}\n")}, nil, "dns.policy"},
		{"bad port flag", []string{"--http-port", "70000"}, nil, "http_port"},
		{"bad service file", []string{"--config-dir", filepath.Dir(write("svc/web.json", ""))}, nil, ""},
	}
	os.MkdirAll(filepath.Join(dir, "svc"), 0o755)
	os.WriteFile(filepath.Join(dir, "svc", "web.json"), []byte(`{"service":{"name":"web","port":99999}}`), 0o644)
	cases[len(cases)-1].want = "port"
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"agent", "--data-dir", t.TempDir(), "--node", "x"}, tc.args...)
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("agent started with a bad config:\n%s", out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("error does not name %q:\n%s", tc.want, out)
			}
		})
	}
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfgFile, []byte("datacenter: fromfile\nzone: filezone\nnode_meta:\n  rack: r1\n"), 0o644)
	svcDir := filepath.Join(dir, "conf.d")
	os.MkdirAll(svcDir, 0o755)
	os.WriteFile(filepath.Join(svcDir, "api.hcl"), []byte("service {\n  name = \"api\"\n  port = 9000\n  tags = [\"v2\"]\n}\n"), 0o644)
	os.WriteFile(filepath.Join(svcDir, "worker.json"), []byte(`{"services":[{"name":"worker","port":7000}]}`), 0o644)
	a := testutil.StartAgent(t, testutil.AgentOptions{
		Node: "prec",
		Args: []string{"--config-file", cfgFile, "--config-dir", svcDir, "--datacenter", "fromflag"},
		Env:  []string{"CHORUS_DATACENTER=fromenv", "CHORUS_ZONE=envzone"},
	})
	resp, err := http.Get(a.URL("/v1/agent/self"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`"Datacenter":"fromflag"`, `"Zone":"envzone"`, `"rack":"r1"`} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("self lacks %s: %s", want, body)
		}
	}
	for _, svc := range []string{"api", "worker"} {
		r := ask(t, a.DNSAddr(), "udp", svc+".service.chorus", dns.TypeSRV)
		if len(r.Answer) != 1 {
			t.Fatalf("%s from the config dir: %v", svc, r)
		}
	}
	// SIGHUP: a removed definition file goes, a new one comes.
	os.Remove(filepath.Join(svcDir, "worker.json"))
	os.WriteFile(filepath.Join(svcDir, "batch.yaml"), []byte("service:\n  name: batch\n  port: 7100\n"), 0o644)
	a.Signal(t, syscall.SIGHUP)
	testutil.Eventually(t, 5*time.Second, func() error {
		if r := ask(t, a.DNSAddr(), "udp", "worker.service.chorus", dns.TypeSRV); r.Rcode != dns.RcodeNameError {
			return fmt.Errorf("worker still answered")
		}
		if r := ask(t, a.DNSAddr(), "udp", "batch.service.chorus", dns.TypeSRV); len(r.Answer) != 1 {
			return fmt.Errorf("batch not answered")
		}
		return nil
	})
}

func TestDevModeAndVersion(t *testing.T) {
	bin := testutil.Binary(t)
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "Chorus v") {
		t.Fatalf("version: %v %s", err, out)
	}
	a := testutil.StartAgent(t, testutil.AgentOptions{Node: "devnode", Dev: true})
	if code, out := put(t, a.URL("/v1/agent/service/register"), `{"Name":"web","Port":80}`); code != 200 {
		t.Fatalf("register in dev mode: %d %s", code, out)
	}
	if r := ask(t, a.DNSAddr(), "udp", "web.service.chorus", dns.TypeA); addrs(r) != "127.0.0.1" {
		t.Fatalf("dev mode answer: %v", r)
	}
	// The registration logs at debug; the agent's output reaches the
	// test through a pipe, so wait for it.
	testutil.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(a.Output.String(), "level=DEBUG") {
			return fmt.Errorf("dev mode does not log at debug:\n%s", a.Output.String())
		}
		return nil
	})
	// A new user reads every line of --dev: none may say something "may not work".
	if strings.Contains(a.Output.String(), "may not work") {
		t.Fatalf("dev mode warns about the transport:\n%s", a.Output.String())
	}
	a.Signal(t, syscall.SIGINT)
	if code := a.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code after SIGINT = %d", code)
	}
}

// runAgentOnce runs `chorus agent` expecting it to exit by itself (e.g. on
// a bad config or state) and returns its output.
func runAgentOnce(t *testing.T, dataDir, node string) (string, error) {
	t.Helper()
	cmd := exec.Command(testutil.Binary(t), "agent", "--node", node, "--data-dir", dataDir,
		"--bind", "127.0.0.1", "--http-port", "0", "--dns-port", "0", "--serf-port", "0")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		return string(out), nil
	}
	return string(out), err
}

// TestBusyPortReportedOnce: a DNS or HTTP port another process holds
// stops the agent with one message that names the setting and the
// address, the cause said once (not "listen udp …: listen udp …").
func TestBusyPortReportedOnce(t *testing.T) {
	bin := testutil.Binary(t)
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	dnsPort := strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port)
	httpPort := strconv.Itoa(tcp.Addr().(*net.TCPAddr).Port)
	for _, tc := range []struct {
		name, flag, port, key, listen string
	}{
		{"dns", "--dns-port", dnsPort, "dns_port", "listen udp 127.0.0.1:" + dnsPort},
		{"http", "--http-port", httpPort, "http_port", "listen tcp 127.0.0.1:" + httpPort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"agent", "--data-dir", t.TempDir(), "--node", "busy", "--bind", "127.0.0.1", "--client", "127.0.0.1",
				"--serf-port", strconv.Itoa(testutil.FreePort(t)), "--http-port", strconv.Itoa(testutil.FreePort(t)),
				"--dns-port", strconv.Itoa(testutil.FreePort(t)), tc.flag, tc.port}
			out, err := exec.Command(bin, args...).CombinedOutput()
			if err == nil {
				t.Fatalf("agent started on a busy port:\n%s", out)
			}
			var msg string
			for line := range strings.Lines(string(out)) {
				if strings.HasPrefix(line, "error:") {
					msg = line
				}
			}
			if !strings.Contains(msg, tc.key) || !strings.Contains(msg, tc.listen) || !strings.Contains(msg, "address already in use") ||
				strings.Count(msg, "listen ") != 1 {
				t.Fatalf("want one error line naming %s and %q once, with the cause:\n%s", tc.key, tc.listen, out)
			}
		})
	}
}
