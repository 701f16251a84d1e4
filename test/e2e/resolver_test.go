package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/chorusdns/chorus/test/testutil"
)

// debianTool returns the path of bin, installing Debian's package pkg with
// apt-get when bin is missing and the test runs as root; otherwise the
// test is skipped with the reason.
func debianTool(t *testing.T, bin, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(bin); err == nil {
		return p
	}
	if os.Geteuid() != 0 {
		t.Skipf("%s is not installed and the test is not root: apt-get install %s to run it", bin, pkg)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skipf("%s is not installed and there is no apt-get to install it", bin)
	}
	for _, args := range [][]string{{"update"}, {"install", "-y", pkg}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Skipf("%s is not installed and apt-get %s failed: %v\n%s", bin, args[0], err, tail(out, 2000))
		}
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Skipf("apt-get installed %s but %s is not on PATH", pkg, bin)
	}
	return p
}

// TestResolverDnsmasq runs README's "Point your resolver at Chorus"
// dnsmasq lines, taken from the README itself (the agent's port
// changed), in a real dnsmasq with DNS-rebinding protection on: a name
// under chorus. resolves through it to a private address, and other names
// do not reach the agent.
func TestResolverDnsmasq(t *testing.T) {
	bin := debianTool(t, "dnsmasq", "dnsmasq-base")
	readme, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, re := range []string{`(?m)^\s*server=/chorus/127\.0\.0\.1#8600\s*$`, `(?m)^\s*rebind-domain-ok=/chorus/\s*$`} {
		l := regexp.MustCompile(re).Find(readme)
		if l == nil {
			t.Fatalf("README.md's dnsmasq lines lack %s", re)
		}
		lines = append(lines, strings.TrimSpace(string(l)))
	}

	a := testutil.StartAgent(t, testutil.AgentOptions{Node: "resolver"})
	mustPut(t, a.URL("/v1/agent/service/register"), "", `{"Name":"web","ID":"web-1","Address":"10.1.2.3","Port":80}`)
	port := testutil.FreePort(t)
	conf := filepath.Join(t.TempDir(), "chorus.conf")
	body := strings.ReplaceAll(strings.Join(lines, "\n"), "#8600", "#"+strconv.Itoa(a.DNSPort)) + fmt.Sprintf(`
# The test's own dnsmasq: its port, no upstream but the agent, and the
# rebinding protection that rebind-domain-ok must let chorus. through.
port=%d
listen-address=127.0.0.1
bind-interfaces
no-resolv
no-hosts
stop-dns-rebind
pid-file=
`, port)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out := &testutil.SyncBuffer{}
	cmd := exec.Command(bin, "--keep-in-foreground", "--conf-file="+conf, "--log-facility=-", "--log-queries")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dnsmasq (%s):\n%s\n%s", conf, body, out.String())
		}
	})

	addr := "127.0.0.1:" + strconv.Itoa(port)
	testutil.Eventually(t, 10*time.Second, func() error {
		m := new(dns.Msg)
		m.SetQuestion("web.service.chorus.", dns.TypeA)
		r, err := dns.Exchange(m, addr)
		if err != nil {
			return err
		}
		if addrs(r) != "10.1.2.3" {
			return fmt.Errorf("web.service.chorus through dnsmasq: %v", r)
		}
		return nil
	})
	// A name outside chorus. goes to dnsmasq's other servers (none here),
	// never to the agent.
	m := new(dns.Msg)
	m.SetQuestion("example.org.", dns.TypeA)
	if r, err := dns.Exchange(m, addr); err == nil && len(r.Answer) > 0 {
		t.Fatalf("example.org answered through dnsmasq with no upstream: %v", r)
	}
}
