package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/chorusdns/chorus/test/testutil"
)

// composeCommand returns the Compose tool: `docker compose` (the plugin)
// or `docker-compose`, or a reason to skip.
func composeCommand() ([]string, string) {
	if os.Geteuid() != 0 {
		return nil, "not root: the Docker daemon's socket needs root here"
	}
	if _, err := exec.LookPath("docker"); err != nil {
		return nil, "docker is not installed"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := exec.CommandContext(ctx, "docker", "info").Run(); err != nil {
		return nil, "the Docker daemon does not answer (docker info: " + err.Error() + ")"
	}
	if exec.CommandContext(ctx, "docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, ""
	}
	if exec.CommandContext(ctx, "docker-compose", "version").Run() == nil {
		return []string{"docker-compose"}, ""
	}
	return nil, "neither `docker compose` nor `docker-compose` is installed"
}

// TestComposeExample builds configs/docker-compose.yml from the
// repository (static binaries in images FROM scratch), starts it without
// the registry-only "monitoring" profile, and resolves the demo service,
// registered on agent1's host, through agent2's DNS port published on
// 127.0.0.1; then it takes everything down with its volumes.
func TestComposeExample(t *testing.T) {
	compose, reason := composeCommand()
	if compose == nil {
		t.Skip("compose example: " + reason)
	}
	root := testutil.RepoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// The images copy static binaries from bin/, as `make docker` does.
	for _, b := range []struct{ out, pkg string }{{"bin/chorus", "./cmd/chorus"}, {"bin/chorus-demo", "./configs/demo"}} {
		tmp := filepath.Join(root, b.out+".tmp"+strconv.Itoa(os.Getpid()))
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", tmp, b.pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, out)
		}
		if err := os.Rename(tmp, filepath.Join(root, b.out)); err != nil {
			t.Fatal(err)
		}
	}

	httpPort, dnsPort := testutil.FreePort(t), testutil.FreePort(t)
	project := fmt.Sprintf("chorus-e2e-%d", os.Getpid())
	run := func(ctx context.Context, args ...string) (string, error) {
		full := append(append(append([]string(nil), compose[1:]...), "-p", project, "-f", "configs/docker-compose.yml"), args...)
		cmd := exec.CommandContext(ctx, compose[0], full...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(),
			"CHORUS_DEMO_HTTP_PORT="+strconv.Itoa(httpPort), "CHORUS_DEMO_DNS_PORT="+strconv.Itoa(dnsPort))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	t.Cleanup(func() {
		// A context of its own: the test's may have run out.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			logs, _ := run(ctx, "logs", "--no-color", "--tail", "50")
			t.Logf("compose logs:\n%s", logs)
		}
		if out, err := run(ctx, "down", "-v", "--remove-orphans", "--timeout", "5"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	start := time.Now()
	if out, err := run(ctx, "build"); err != nil {
		t.Fatalf("compose build: %v\n%s", err, out)
	}
	if out, err := run(ctx, "up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	t.Logf("built and started in %v", time.Since(start).Round(time.Millisecond))
	up := time.Now()

	dnsAddr := "127.0.0.1:" + strconv.Itoa(dnsPort)
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	testutil.Eventually(t, 90*time.Second, func() error {
		m := new(dns.Msg)
		m.SetQuestion("demo.service.chorus.", dns.TypeSRV)
		r, _, err := c.ExchangeContext(ctx, m, dnsAddr)
		if err != nil {
			return err
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			return fmt.Errorf("demo SRV: %s with %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
		}
		srv, ok := r.Answer[0].(*dns.SRV)
		if !ok || srv.Port != 8080 || srv.Target != "agent1.node.chorus." {
			return fmt.Errorf("demo SRV answer %v, want port 8080 on agent1.node.chorus.", r.Answer[0])
		}
		var glue bool
		for _, rr := range r.Extra {
			if a, ok := rr.(*dns.A); ok && a.Hdr.Name == srv.Target && a.A.IsPrivate() {
				glue = true
			}
		}
		if !glue {
			return fmt.Errorf("no A record of agent1's container address in %v", r.Extra)
		}
		return nil
	})
	t.Logf("demo.service.chorus answered through agent2 %v after up", time.Since(up).Round(time.Millisecond))

	// The same agent's HTTP API, published on 127.0.0.1: all three members.
	var members []struct{ Name string }
	testutil.Eventually(t, 30*time.Second, func() error {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(httpPort) + "/v1/agent/members")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&members); err != nil {
			return err
		}
		if len(members) != 3 {
			return fmt.Errorf("%d members: %v", len(members), members)
		}
		return nil
	})

	// The web page, where README sends a new user: / leads to /ui/.
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(httpPort) + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/ui/" || !bytes.Contains(page, []byte("<title>Chorus</title>")) {
		t.Fatalf("GET / through the published port: %s at %s, %d bytes", resp.Status, resp.Request.URL.Path, len(page))
	}
}
