package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/agent"
	"github.com/chorusdns/chorus/test/testutil"
)

// startTestAgent starts an in-process agent on 127.0.0.1 with free ports
// and returns its HTTP address; it is killed at cleanup.
func startTestAgent(t *testing.T, name string, mutate func(*agent.Config)) string {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.NodeName = name
	cfg.DataDir = t.TempDir()
	cfg.Bind, cfg.Client = "127.0.0.1", "127.0.0.1"
	cfg.HTTPPort, cfg.DNSPort, cfg.SerfPort = 0, 0, 0
	cfg.GossipProfile = "local"
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := agent.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewPedanticRegistry())
	if err != nil {
		t.Fatalf("new agent: %v", err)
	}
	if err := a.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	t.Cleanup(a.Kill)
	return a.HTTPAddr()
}

// runCLI runs the chorus command line in-process as main does and returns
// its stdout, stderr and exit code.
func runCLI(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	if err := root.ExecuteContext(ctx); err != nil {
		var ec exitCode
		if asExit(err, &ec) {
			code = int(ec)
		} else {
			fmt.Fprintln(&errb, "error:", err)
			code = 1
		}
	}
	return out.String(), errb.String(), code
}

// cli runs a client command against addr and fails the test unless it
// exits with want.
func cli(t *testing.T, addr string, want int, args ...string) string {
	t.Helper()
	out, errOut, code := runCLI(context.Background(), append(args, "--http-addr", addr)...)
	if code != want {
		t.Fatalf("chorus %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out + errOut
}

// cliJSON runs a client command with --format json and decodes its output.
func cliJSON(t *testing.T, addr string, v any, args ...string) {
	t.Helper()
	out := cli(t, addr, 0, append(args, "--format", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("chorus %s --format json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func apiClient(t *testing.T, addr string) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantLines fails unless every line of want appears in out, in order, each
// as a line whose fields equal the wanted line's fields.
func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	i := 0
	for _, w := range want {
		for ; i < len(lines); i++ {
			if strings.Join(strings.Fields(lines[i]), " ") == w {
				break
			}
		}
		if i == len(lines) {
			t.Fatalf("output lacks line %q (in order):\n%s", w, out)
		}
	}
}

func TestClientCommands(t *testing.T) {
	addr := startTestAgent(t, "alpha", func(c *agent.Config) { c.Zone = "z1" })

	t.Run("members", func(t *testing.T) {
		out := cli(t, addr, 0, "members")
		wantLines(t, out, "Node Address Status Zone Build")
		if !strings.Contains(out, "alpha") || !strings.Contains(out, " alive ") || !strings.Contains(out, "z1") {
			t.Fatalf("members table:\n%s", out)
		}
		var ms []api.AgentMember
		cliJSON(t, addr, &ms, "members")
		if len(ms) != 1 || ms[0].Name != "alpha" || ms[0].Status != 1 || ms[0].Tags["zone"] != "z1" {
			t.Fatalf("members json: %+v", ms)
		}
	})

	t.Run("nodes", func(t *testing.T) {
		out := cli(t, addr, 0, "nodes")
		wantLines(t, out, "Node Address Status Datacenter Zone", "alpha 127.0.0.1 passing dc1 z1")
		var nodes []struct {
			api.Node
			Status string
			Checks api.HealthChecks
		}
		cliJSON(t, addr, &nodes, "nodes")
		if len(nodes) != 1 || nodes[0].Node.Node != "alpha" || nodes[0].Datacenter != "dc1" || nodes[0].Meta["zone"] != "z1" ||
			nodes[0].Status != "passing" || len(nodes[0].Checks) != 1 || nodes[0].Checks[0].CheckID != "serfHealth" {
			t.Fatalf("nodes json: %+v", nodes)
		}
		// Node maintenance is a critical node check.
		cli(t, addr, 0, "maint", "--enable", "--reason", "disk swap")
		wantLines(t, cli(t, addr, 0, "nodes"), "alpha 127.0.0.1 critical dc1 z1")
		var m map[string]any
		cliJSON(t, addr, &m, "maint", "--disable")
		if m["Maintenance"] != false || m["Node"] != true {
			t.Fatalf("maint json: %v", m)
		}
		wantLines(t, cli(t, addr, 0, "nodes"), "alpha 127.0.0.1 passing dc1 z1")
	})

	t.Run("services", func(t *testing.T) {
		cli(t, addr, 0, "register", "--name", "web", "--id", "web-1", "--port", "8080", "--tag", "v1", "--tag", "blue", "--check-ttl", "1m")
		cli(t, addr, 0, "register", "--name", "web", "--id", "web-2", "--address", "10.0.0.2", "--port", "8081")
		var set map[string]string
		cliJSON(t, addr, &set, "check", "warn", "service:web-1", "--note", "line one\nline two")
		if set["Status"] != "warning" {
			t.Fatalf("check json: %v", set)
		}
		out := cli(t, addr, 0, "services")
		wantLines(t, out, "Service Instances Passing Warning Critical Tags", "web 2 1 1 0 blue,v1")

		out = cli(t, addr, 0, "services", "web")
		wantLines(t, out,
			"Instance Node Address Tags Status",
			"web-1 alpha 127.0.0.1:8080 v1,blue warning",
			"Check Name Status Output",
			"serfHealth Serf Health Status passing Agent alive and reachable",
			"service:web-1 Service 'web' check warning line one",
			"Instance Node Address Tags Status",
			"web-2 alpha 10.0.0.2:8081 - passing",
		)
		if strings.Contains(out, "line two") {
			t.Fatalf("services web shows more than the output's first line:\n%s", out)
		}
		var entries []api.ServiceEntry
		cliJSON(t, addr, &entries, "services", "web")
		if len(entries) != 2 || entries[0].Service.ID != "web-1" || len(entries[0].Checks) != 2 || entries[0].Checks[1].Output != "line one\nline two" {
			t.Fatalf("services web json: %+v", entries)
		}
		var all map[string][]api.ServiceEntry
		cliJSON(t, addr, &all, "services")
		if len(all["web"]) != 2 {
			t.Fatalf("services json: %+v", all)
		}

		cli(t, addr, 0, "maint", "--enable", "--service", "web-2")
		wantLines(t, cli(t, addr, 0, "services", "web"), "web-2 alpha 10.0.0.2:8081 - critical")
		cli(t, addr, 0, "maint", "--disable", "--service", "web-2")

		var dereg map[string]string
		cliJSON(t, addr, &dereg, "deregister", "web-2")
		if dereg["Deregistered"] != "web-2" {
			t.Fatalf("deregister json: %v", dereg)
		}
		wantLines(t, cli(t, addr, 0, "deregister", "web-1"), "Deregistered service: web-1")
		cli(t, addr, exitNotFound, "services", "web")
	})

	t.Run("join and force-leave", func(t *testing.T) {
		other := startTestAgent(t, "beta", nil)
		self, err := apiClient(t, other).Agent().Self()
		if err != nil {
			t.Fatal(err)
		}
		member := self["Member"]
		serf := net.JoinHostPort(fmt.Sprint(member["Addr"]), fmt.Sprint(member["Port"]))
		var res struct {
			Joined []string
			Failed map[string]string
		}
		cliJSON(t, addr, &res, "join", serf, "127.0.0.1:1")
		if len(res.Joined) != 1 || res.Joined[0] != serf || len(res.Failed) != 1 {
			t.Fatalf("join json: %+v", res)
		}
		testutil.Eventually(t, 10*time.Second, func() error {
			if out := cli(t, addr, 0, "members"); !strings.Contains(out, "beta") {
				return fmt.Errorf("beta not a member yet:\n%s", out)
			}
			return nil
		})
		out := cli(t, addr, exitError, "join", "127.0.0.1:1")
		if !strings.Contains(out, "could not join any address") {
			t.Fatalf("join of a dead address: %s", out)
		}
		wantLines(t, cli(t, addr, 0, "force-leave", "beta"), "Force-left node: beta")
	})

	t.Run("keyring without encryption", func(t *testing.T) {
		out := cli(t, addr, exitError, "keyring", "--list")
		if !strings.Contains(out, "HTTP 400") {
			t.Fatalf("keyring on an agent without --encrypt: %s", out)
		}
	})
}

func TestKeyring(t *testing.T) {
	const k1, k2 = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=", "ZWTL+bgjHyQPhJRKcFe3ccirc2SFHmc/Nw67l8NQfdk="
	addr := startTestAgent(t, "alpha", func(c *agent.Config) { c.Encrypt = k1 })
	out := cli(t, addr, 0, "keyring", "--list")
	wantLines(t, out, "Keys on 1 nodes:", "Key Installed Primary", k1+" 1/1 1/1")
	wantLines(t, cli(t, addr, 0, "keyring", "--install", k2), "Installed key "+k2)
	var op map[string]string
	cliJSON(t, addr, &op, "keyring", "--use", k2)
	if op["Operation"] != "use" || op["Key"] != k2 {
		t.Fatalf("keyring --use json: %v", op)
	}
	wantLines(t, cli(t, addr, 0, "keyring", "--remove", k1), "Removed key "+k1)
	var list []api.KeyringResponse
	cliJSON(t, addr, &list, "keyring", "--list")
	if len(list) != 1 || list[0].NumNodes != 1 || len(list[0].Keys) != 1 || list[0].PrimaryKeys[k2] != 1 {
		t.Fatalf("keyring json: %+v", list)
	}
	cli(t, addr, exitUsage, "keyring", "--list", "--use", k2)
}

func TestExitCodes(t *testing.T) {
	addr := startTestAgent(t, "alpha", nil)
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := l.Addr().String()
		l.Close()
		return a
	}()
	cases := []struct {
		name string
		addr string
		args []string
		want int
	}{
		{"ok", addr, []string{"members"}, 0},
		{"unreachable members", closed, []string{"members"}, exitUnreachable},
		{"unreachable register", closed, []string{"register", "--name", "web"}, exitUnreachable},
		{"unreachable watch", closed, []string{"watch", "--type", "nodes"}, exitUnreachable},
		{"unresolvable host", "no-such-host.invalid:8500", []string{"services"}, exitUnreachable},
		{"unknown service", addr, []string{"services", "nope"}, exitNotFound},
		{"deregister unknown", addr, []string{"deregister", "nope"}, exitNotFound},
		{"maint unknown service", addr, []string{"maint", "--enable", "--service", "nope"}, exitNotFound},
		{"unknown check", addr, []string{"check", "pass", "service:nope"}, exitNotFound},
		{"check bad verb", addr, []string{"check", "ok", "service:web"}, exitUsage},
		{"watch bad state", addr, []string{"watch", "--type", "checks", "--state", "bogus"}, exitUsage},
		{"unknown command", addr, []string{"membres"}, exitUsage},
		{"unknown flag", addr, []string{"members", "--nope"}, exitUsage},
		{"extra argument", addr, []string{"members", "x"}, exitUsage},
		{"bad format", addr, []string{"members", "--format", "yaml"}, exitUsage},
		{"maint without enable", addr, []string{"maint"}, exitUsage},
		{"register nothing", addr, []string{"register"}, exitUsage},
		{"register missing file", addr, []string{"register", "/nonexistent/web.json"}, exitUsage},
		{"register file and flags", addr, []string{"register", "x.json", "--name", "web"}, exitUsage},
		{"register two checks", addr, []string{"register", "--name", "web", "--check-ttl", "1m", "--check-tcp", "127.0.0.1:1"}, exitUsage},
		{"watch without type", addr, []string{"watch"}, exitUsage},
		{"watch handler without --", addr, []string{"watch", "--type", "nodes", "cat"}, exitUsage},
		{"refused by the agent", addr, []string{"register", "--name", "web", "--check-http", "not a url"}, exitError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := cli(t, tc.addr, tc.want, tc.args...)
			if tc.want != 0 && !strings.HasPrefix(out, "error: ") && !strings.Contains(out, "\nerror: ") {
				t.Fatalf("no error message:\n%s", out)
			}
			if tc.want == exitUnreachable && !strings.Contains(out, "cannot reach the agent") {
				t.Fatalf("unreachable message: %s", out)
			}
		})
	}
}

// TestBinary runs the built binary: main's exit codes, the ACL refusal of
// a read-only token's writes (exit 4) and version's revision line.
func TestBinary(t *testing.T) {
	const readTok, writeTok = "read-token-0123456789", "write-token-0123456789"
	dir := t.TempDir()
	conf := filepath.Join(dir, "acl.json")
	os.WriteFile(conf, []byte(`{"acl": {"enabled": true, "default_policy": "allow", "tokens": [
		{"secret": "`+readTok+`", "policy": "read"}, {"secret": "`+writeTok+`", "policy": "write"}]}}`), 0o644)
	a := testutil.StartAgent(t, testutil.AgentOptions{Node: "acl", Args: []string{"--config-file", conf}})
	bin := testutil.Binary(t)
	run := func(env []string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), append([]string{"CHORUS_HTTP_ADDR=127.0.0.1:" + fmt.Sprint(a.HTTPPort)}, env...)...)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	cases := []struct {
		env  []string
		args []string
		want int
		text string
	}{
		{nil, []string{"services"}, 0, "Service"},
		{[]string{"CHORUS_HTTP_TOKEN=" + readTok}, []string{"register", "--name", "web"}, exitDenied, "permission denied"},
		{nil, []string{"register", "--name", "web", "--token", "nope-nope-nope-nope"}, 0, "Registered service: web"},
		{nil, []string{"deregister", "web", "--token", readTok}, exitDenied, "HTTP 403"},
		{nil, []string{"maint", "--enable", "--token", readTok}, exitDenied, "HTTP 403"},
		{nil, []string{"register", "--name", "api", "--token", writeTok}, 0, "Registered service: api"},
		{[]string{"CHORUS_HTTP_TOKEN=" + readTok}, []string{"services", "nope"}, exitNotFound, `service "nope" not found`},
		{[]string{"CHORUS_HTTP_ADDR=127.0.0.1:1"}, []string{"members"}, exitUnreachable, "cannot reach the agent at 127.0.0.1:1"},
		{nil, []string{"nosuchcommand"}, exitUsage, "unknown command"},
		{nil, []string{"--help"}, 0, "4  permission denied"},
	}
	for _, tc := range cases {
		out, code := run(tc.env, tc.args...)
		if code != tc.want || !strings.Contains(out, tc.text) {
			t.Errorf("chorus %s (env %v): exit %d, want %d with %q:\n%s", strings.Join(tc.args, " "), tc.env, code, tc.want, tc.text, out)
		}
	}
	// The revision comes from the build info, which carries none when the
	// build ran with -buildvcs=false (GOFLAGS); the ldflags path is
	// TestVersion's.
	out, code := run(nil, "version")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "Chorus v") || !strings.HasPrefix(lines[1], "Revision ") {
		t.Fatalf("version: exit %d\n%s", code, out)
	}
	head, err := exec.Command("git", "-C", testutil.RepoRoot(t), "rev-parse", "--short=7", "HEAD").Output()
	if err == nil && lines[1] != "Revision unknown" && !strings.HasPrefix(lines[1], "Revision "+strings.TrimSpace(string(head))) {
		t.Fatalf("version revision %q, want HEAD %s", lines[1], head)
	}
}

func TestVersion(t *testing.T) {
	defer func(c string) { commit = c }(commit)
	commit = "862eb1a"
	out, _, code := runCLI(context.Background(), "version")
	if want := "Chorus v" + agent.Version + "\nRevision 862eb1a\n"; code != 0 || out != want {
		t.Fatalf("version = %q (exit %d), want %q", out, code, want)
	}
}
