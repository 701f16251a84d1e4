package e2e

import (
	"flag"
	"fmt"
	"io"
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

// uiScreenshot, when set, receives TestUI's desktop screenshot as well
// (the one in docs/ui.png): go test ./test/e2e -run 'TestUI$' -ui.screenshot=$PWD/docs/ui.png
var uiScreenshot = flag.String("ui.screenshot", "", "also write TestUI's desktop screenshot to this PNG file")

// request sends one API request with an optional token and returns the
// status and body.
func request(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func mustPut(t *testing.T, url, token, body string) {
	t.Helper()
	if code, out := request(t, "PUT", url, token, body); code != 200 {
		t.Fatalf("PUT %s: %d %s", url, code, out)
	}
}

// JavaScript conditions for page.waitFor: each is "" when the page shows
// what is wanted, else what it shows instead.
const (
	jsCount = `((name, want) => {
		const c = document.querySelector('#services li[data-service="' + name + '"] .count [aria-hidden]');
		return c && c.textContent === want ? "" : name + " count is " + (c ? c.textContent : "missing") + ", want " + want;
	})`
	jsInstance = `((id, want) => {
		const e = document.querySelector('.inst[data-instance="' + id + '"]');
		return e && e.dataset.status === want ? "" : "instance " + id + " is " + (e ? e.dataset.status : "missing") + ", want " + want;
	})`
	jsRecords = `((want) => {
		const got = [...document.querySelectorAll('.dns .records li')].map((li) => li.dataset.instance).join(",");
		return got === want ? "" : "DNS answer lists " + JSON.stringify(got) + ", want " + JSON.stringify(want);
	})`
)

func call(fn string, args ...any) string {
	var b strings.Builder
	b.WriteString(fn + "(")
	for i, a := range args {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(fmt.Sprint(a)))
	}
	return b.String() + ")"
}

// TestUI loads /ui/ in headless Chromium from the real binary, checks that
// it shows the services, their instances, checks, DNS answer and the
// members, then fails a TTL check through the API and waits for the page
// to show it without a reload, and finally kills and restarts the agent
// to see the page reconnect. It saves screenshots (light and dark, desktop
// and phone) in its artifact directory, named in the test's output; run
// with -artifacts to keep them for a person to look at:
//
//	mkdir -p /tmp/ui-shots && go test ./test/e2e -run 'TestUI' -v -artifacts -outputdir /tmp/ui-shots
func TestUI(t *testing.T) {
	b := startBrowser(t)
	a := testutil.StartAgent(t, testutil.AgentOptions{Node: "ui-1", Args: []string{"--zone", "z1"}})
	reg := a.URL("/v1/agent/service/register")
	mustPut(t, reg, "", `{"Name":"web","ID":"web-1","Port":8080,"Tags":["blue","v2"],
		"Meta":{"version":"1.4","chorus-policy":"round-robin"},
		"Check":{"CheckID":"web-1-ttl","Name":"web-1 heartbeat","TTL":"10m"}}`)
	mustPut(t, reg, "", `{"Name":"web","ID":"web-2","Address":"192.0.2.10","Port":8081,"Tags":["blue"],
		"Weights":{"Passing":3,"Warning":1},
		"Check":{"CheckID":"web-2-ttl","Name":"web-2 heartbeat","TTL":"10m"}}`)
	mustPut(t, reg, "", `{"Name":"web","ID":"web-backup","Address":"192.0.2.20","Port":8080,
		"Meta":{"chorus-priority":"2"}}`)
	mustPut(t, reg, "", `{"Name":"web","ID":"web-v6","Address":"2001:db8::5","Port":8443,
		"Meta":{"chorus-priority":"3"}}`)
	mustPut(t, reg, "", `{"Name":"db","ID":"db-1","Port":5432,"Tags":["primary"]}`)
	for _, id := range []string{"web-1-ttl", "web-2-ttl"} {
		mustPut(t, a.URL("/v1/agent/check/pass/"+id+"?note=ok"), "", "")
	}
	// A second agent in another zone, with an instance that ui-1's DNS
	// leaves out (zone rule) and node meta.
	cfg2 := filepath.Join(t.TempDir(), "ui-2.yaml")
	if err := os.WriteFile(cfg2, []byte("node_meta:\n  rack: r2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a2 := testutil.StartAgent(t, testutil.AgentOptions{Node: "ui-2", Args: []string{"--zone", "z2",
		"--config-file", cfg2, "--join", "127.0.0.1:" + strconv.Itoa(a.SerfPort)}})
	mustPut(t, a2.URL("/v1/agent/service/register"), "", `{"Name":"web","ID":"web-3","Port":8082,"Tags":["blue"],
		"Check":{"CheckID":"web-3-ttl","Name":"web-3 heartbeat","TTL":"10m"}}`)
	mustPut(t, a2.URL("/v1/agent/check/pass/web-3-ttl?note=ok"), "", "")

	p := b.newPage(desktop)
	p.navigate(a.URL("/"))
	if path := p.text("location.pathname"); path != "/ui/" {
		t.Fatalf("/ redirects to %q, want /ui/", path)
	}
	p.waitFor(10*time.Second, call(jsCount, "web", "5/5"))
	p.waitFor(5*time.Second, call(jsCount, "db", "1/1"))
	const jsMember = `((name, ...want) => {
		const row = document.querySelector('#members tr[data-member="' + name + '"]');
		const t = row ? row.textContent : "";
		return want.every((w) => t.includes(w)) ? "" : "member row " + name + ": " + t;
	})`
	p.waitFor(5*time.Second, call(jsMember, "ui-1", "alive", "z1", "dc1", "127.0.0.1:"+strconv.Itoa(a.SerfPort)))
	p.waitFor(5*time.Second, call(jsMember, "ui-2", "alive", "z2", "dc1", "rack=r2"))

	// Open the service as a user would, and mark the document: a reload
	// would lose the mark.
	p.run(`window.uiTestMark = 42; document.querySelector('#services a[data-name="web"]').click()`)
	p.waitFor(5*time.Second, call(jsInstance, "web-2", "passing"))
	p.waitFor(5*time.Second, call(jsRecords, "web-1,web-2,web-backup,web-v6"))
	p.waitFor(5*time.Second, `(() => {
		const d = document.getElementById("detail").textContent;
		for (const want of ["192.0.2.10:8081", "version=1.4", "web-2 heartbeat", "Serf Health Status",
			"round-robin", "SRV 1 3 8081 c000020a.addr.chorus.", "SRV 2 1 8080", "SRV 3 1 8443 20010db8000000000000000000000005.addr.chorus.", "A 127.0.0.1",
			"web-3 heartbeat", "zone z2", "Only the instances in zone z1", "Left out: web-3 (zone z2)"]) {
			if (!d.includes(want)) return "detail lacks " + want;
		}
		return "";
	})()`)
	sameAsDNS(t, p, a)
	shots := t.ArtifactDir()
	p.screenshot(filepath.Join(shots, "before.png"))

	// The change: web-2's TTL check fails. The page follows it through
	// its blocking queries (the counts' resync runs only every 30 s).
	mustPut(t, a.URL("/v1/agent/check/fail/web-2-ttl?note=connection+refused+on+8081"), "", "")
	p.waitFor(10*time.Second, call(jsInstance, "web-2", "critical"))
	p.waitFor(5*time.Second, call(jsRecords, "web-1,web-backup,web-v6"))
	p.waitFor(5*time.Second, `document.querySelector(".dns .left").textContent === "Left out: web-2 (critical), web-3 (zone z2)" ? "" :
		document.querySelector(".dns .left").textContent`)
	p.waitFor(10*time.Second, call(jsCount, "web", "4/5"))
	p.waitFor(5*time.Second, `(() => {
		const c = document.querySelector('.inst[data-instance="web-2"] [data-check="web-2-ttl"]');
		return c && c.dataset.status === "critical" && c.textContent.includes("connection refused on 8081") ? "" : "check shows " + (c ? c.textContent : "nothing");
	})()`)
	sameAsDNS(t, p, a)
	if mark := p.text(`String(window.uiTestMark)`); mark != "42" {
		t.Fatalf("the page was reloaded (mark %q)", mark)
	}
	if st := p.text(`document.getElementById("conn").dataset.state`); st != "live" {
		t.Fatalf("connection state %q, want live", st)
	}

	for _, v := range []struct {
		name string
		vp   viewport
	}{
		{"desktop-light", desktop},
		{"desktop-dark", viewport{width: desktop.width, height: desktop.height, dark: true}},
		{"phone-light", phone},
		{"phone-dark", viewport{width: phone.width, height: phone.height, mobile: true, dark: true}},
	} {
		p.setViewport(v.vp)
		p.waitFor(5*time.Second, fmt.Sprintf(`innerWidth === %d ? "" : "width " + innerWidth`, v.vp.width))
		if v.vp.width == phone.width {
			// No horizontal scrolling on a phone.
			p.waitFor(5*time.Second, `document.documentElement.scrollWidth <= innerWidth ? "" : "page is " + document.documentElement.scrollWidth + " px wide"`)
		}
		path := filepath.Join(shots, v.name+".png")
		p.screenshot(path)
		t.Logf("screenshot %s", path)
		if v.name == "desktop-light" && *uiScreenshot != "" {
			p.screenshot(*uiScreenshot)
			t.Logf("screenshot %s", *uiScreenshot)
		}
	}

	// One blocking query per thing watched (members, nodes, the service
	// list, the checks, the open service), and none while the page is
	// hidden: a browser has only six HTTP/1.1 connections per host.
	testutil.WaitBlockingQueries(t, 10*time.Second, a.URL(""), 5)
	setHidden := func(hidden bool) {
		p.run(fmt.Sprintf(`Object.defineProperty(document, "hidden", {value: %t, configurable: true});
			document.dispatchEvent(new Event("visibilitychange"))`, hidden))
	}
	setHidden(true)
	testutil.WaitBlockingQueries(t, 10*time.Second, a.URL(""), 0)
	mustPut(t, reg, "", `{"Name":"queue","ID":"queue-1","Port":5672}`)
	setHidden(false)
	p.waitFor(10*time.Second, call(jsCount, "queue", "1/1"))
	testutil.WaitBlockingQueries(t, 10*time.Second, a.URL(""), 5)

	// The agent dies and comes back on the same ports: the page says it
	// is reconnecting, backs off, and follows the new process.
	a.Signal(t, syscall.SIGKILL)
	a.Wait(t, 10*time.Second)
	p.waitFor(10*time.Second, `(() => {
		const c = document.getElementById("conn");
		return c.dataset.state === "error" && c.textContent.startsWith("Reconnecting") ? "" : "connection: " + c.textContent;
	})()`)
	a = testutil.StartAgent(t, testutil.AgentOptions{Node: "ui-1", DataDir: a.DataDir, Args: []string{"--zone", "z1"},
		HTTPPort: a.HTTPPort, DNSPort: a.DNSPort, SerfPort: a.SerfPort})
	mustPut(t, a.URL("/v1/agent/service/register"), "", `{"Name":"late","ID":"late-1","Port":7000}`)
	p.waitFor(40*time.Second, call(jsCount, "late", "1/1"))
	p.waitFor(5*time.Second, `document.getElementById("conn").dataset.state === "live" ? "" : "not live"`)
	if mark := p.text(`String(window.uiTestMark)`); mark != "42" {
		t.Fatalf("the page was reloaded (mark %q)", mark)
	}
	if errs := p.problems(); len(errs) > 0 {
		t.Fatalf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestUIACL runs the page against an agent whose ACL denies anonymous
// reads: it must ask for a token, say when one is refused, keep the good
// one in sessionStorage only, send it with every request (blocking ones
// too) and forget it on request.
func TestUIACL(t *testing.T) {
	const readToken, writeToken = "read-token-0123456789", "write-token-0123456789"
	b := startBrowser(t)
	a := startACLAgent(t, readToken, fmt.Sprintf(`acl:
  enabled: true
  default_policy: deny
  tokens:
    - {secret: %s, policy: read}
    - {secret: %s, policy: write}
`, readToken, writeToken))
	mustPut(t, a.URL("/v1/agent/service/register"), writeToken,
		`{"Name":"api","ID":"api-1","Port":9000,"Check":{"CheckID":"api-ttl","TTL":"10m"}}`)
	mustPut(t, a.URL("/v1/agent/check/pass/api-ttl"), writeToken, "")

	p := b.newPage(phone)
	p.navigate(a.URL("/ui/"))
	const jsDialog = `((text) => {
		const d = document.getElementById("login");
		const msg = document.getElementById("login-msg").textContent;
		return d.open && msg.includes(text) ? "" : "dialog open=" + d.open + " saying " + JSON.stringify(msg);
	})`
	p.waitFor(10*time.Second, call(jsDialog, "requires an ACL token"))
	p.waitFor(5*time.Second, `document.activeElement && document.activeElement.id === "token" ? "" : "focus is on " + (document.activeElement && document.activeElement.id)`)
	prompt := filepath.Join(t.ArtifactDir(), "token-prompt.png")
	p.screenshot(prompt)
	t.Logf("screenshot %s", prompt)

	enter := func(token string) {
		t.Helper()
		p.run(`document.getElementById("token").focus()`)
		p.do("Input.insertText", map[string]any{"text": token})
		p.run(`document.querySelector("#login-form button[type=submit]").click()`)
	}
	enter("not-a-valid-token-000")
	p.waitFor(10*time.Second, call(jsDialog, "refused this token: Permission denied"))
	enter(readToken)
	p.waitFor(10*time.Second, `document.getElementById("login").open ? "dialog still open" : ""`)
	p.waitFor(10*time.Second, call(jsCount, "api", "1/1"))
	stored := p.text(`JSON.stringify([sessionStorage.getItem("chorus.token"), localStorage.length, document.cookie])`)
	if want := fmt.Sprintf(`["%s",0,""]`, readToken); stored != want {
		t.Fatalf("stored [sessionStorage, localStorage.length, cookie] = %s, want %s", stored, want)
	}

	// Blocking queries carry the token too: a change shows up live.
	mustPut(t, a.URL("/v1/agent/check/fail/api-ttl"), writeToken, "")
	p.waitFor(10*time.Second, call(jsCount, "api", "0/1"))

	p.run(`document.getElementById("forget").click()`)
	p.waitFor(10*time.Second, `document.getElementById("login").open && sessionStorage.getItem("chorus.token") === null ? "" : "token not forgotten"`)
	if errs := p.problems(); len(errs) > 0 {
		t.Fatalf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}

// startACLAgent starts the chorus binary with the YAML config aclYAML on
// free ports and waits until /v1/agent/self answers 200 to token
// (testutil.StartAgent asks without a token, which a deny-by-default ACL
// refuses). The process is killed at cleanup.
func startACLAgent(t *testing.T, token, aclYAML string) *testutil.Agent {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "acl.yaml")
	if err := os.WriteFile(cfg, []byte(aclYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &testutil.Agent{DataDir: filepath.Join(dir, "data"), HTTPPort: testutil.FreePort(t), DNSPort: testutil.FreePort(t),
		SerfPort: testutil.FreePort(t), Output: &testutil.SyncBuffer{}}
	a.Cmd = exec.Command(testutil.Binary(t), "agent", "--node", "ui-acl", "--data-dir", a.DataDir, "--config-file", cfg,
		"--bind", "127.0.0.1", "--client", "127.0.0.1", "--http-port", strconv.Itoa(a.HTTPPort),
		"--dns-port", strconv.Itoa(a.DNSPort), "--serf-port", strconv.Itoa(a.SerfPort))
	a.Cmd.Stdout, a.Cmd.Stderr = a.Output, a.Output
	if err := a.Cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		a.ExitErr = a.Cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		a.Cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("agent output:\n%s", a.Output.String())
		}
	})
	testutil.Eventually(t, 20*time.Second, func() error {
		select {
		case <-exited:
			t.Fatalf("agent exited early: %v\n%s", a.ExitErr, a.Output.String())
		default:
		}
		req, err := http.NewRequest("GET", a.URL("/v1/agent/self"), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Consul-Token", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/v1/agent/self: status %d", resp.StatusCode)
		}
		return nil
	})
	return a
}

// sameAsDNS checks that the DNS answer the page shows for the open service
// (web) holds the records the agent's DNS server answers: the same SRV
// records (priority, weight, port, target) and A records. Their order is
// the policy's, per query, so sets are compared.
func sameAsDNS(t *testing.T, p *page, a *testutil.Agent) {
	t.Helper()
	var want []string
	// Over TCP: over UDP without EDNS0, 512 bytes hold only part of it.
	for _, rr := range ask(t, a.DNSAddr(), "tcp", "web.service.chorus", dns.TypeSRV).Answer {
		srv := rr.(*dns.SRV)
		want = append(want, fmt.Sprintf("SRV %d %d %d %s", srv.Priority, srv.Weight, srv.Port, srv.Target))
	}
	for _, rr := range ask(t, a.DNSAddr(), "tcp", "web.service.chorus", dns.TypeA).Answer {
		want = append(want, "A "+rr.(*dns.A).A.String())
	}
	sort.Strings(want)
	got := p.text(`[...document.querySelectorAll(".dns .records code, .dns .addrs code")].map((c) => c.textContent).sort().join("\n")`)
	if got != strings.Join(want, "\n") {
		t.Fatalf("the page's DNS answer:\n%s\nthe agent's DNS server:\n%s", got, strings.Join(want, "\n"))
	}
}

// TestUIDNSSettings: the page's DNS answer follows the agent's own DNS
// settings, not Chorus's defaults: dns.policy least-loaded (ordered by
// the loads the instances report, followed live when one changes),
// dns.only_passing (a warning instance left out) and dns.zone_failover
// off (a tier with no instance in the agent's zone not answered). Each
// time the page's records are those the agent's DNS server answers, in
// its order.
func TestUIDNSSettings(t *testing.T) {
	b := startBrowser(t)
	cfg := filepath.Join(t.TempDir(), "dns.yaml")
	if err := os.WriteFile(cfg, []byte("dns:\n  policy: least-loaded\n  only_passing: true\n  zone_failover: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := testutil.StartAgent(t, testutil.AgentOptions{Node: "dns-1", Args: []string{"--zone", "z1", "--config-file", cfg}})
	a2 := testutil.StartAgent(t, testutil.AgentOptions{Node: "dns-2", Args: []string{"--zone", "z2",
		"--join", "127.0.0.1:" + strconv.Itoa(a.SerfPort)}})
	reg := a.URL("/v1/agent/service/register")
	for i, load := range []int{5, 1, 3} {
		id := fmt.Sprintf("api-%d", i+1)
		mustPut(t, reg, "", fmt.Sprintf(`{"Name":"api","ID":"%s","Port":%d,"Check":{"TTL":"10m","Status":"passing"}}`, id, 9001+i))
		mustPut(t, a.URL("/v1/agent/service/load/"+id), "", fmt.Sprintf(`{"Load":%d}`, load))
	}
	mustPut(t, reg, "", `{"Name":"api","ID":"api-warn","Port":9004,"Check":{"TTL":"10m","Status":"warning"}}`)
	// A backup tier only in zone z2: with zone_failover off, z1's agent
	// never answers it.
	mustPut(t, a2.URL("/v1/agent/service/register"), "", `{"Name":"api","ID":"api-z2","Port":9005,
		"Meta":{"chorus-priority":"2"},"Check":{"TTL":"10m","Status":"passing"}}`)

	p := b.newPage(desktop)
	p.navigate(a.URL("/ui/#/service/api"))
	p.waitFor(15*time.Second, call(jsInstance, "api-z2", "passing"))
	p.waitFor(10*time.Second, call(jsRecords, "api-2,api-3,api-1"))
	p.waitFor(5*time.Second, `(() => {
		const d = document.querySelector(".dns").textContent;
		for (const want of ["policy least-loaded (dns.policy)", "Left out: api-warn (warning, dns.only_passing), api-z2 (zone z2)",
			"dns.zone_failover is off"]) {
			if (!d.includes(want)) return "DNS box lacks " + JSON.stringify(want) + ": " + d;
		}
		const load = document.querySelector('.inst[data-instance="api-2"]').textContent;
		return load.includes("Load1") ? "" : "api-2 does not show its load: " + load;
	})()`)
	sameAsDNSOrder(t, p, a, "api")

	// api-1 reports the lowest load: the page reorders without a reload.
	p.run(`window.uiTestMark = 7`)
	mustPut(t, a.URL("/v1/agent/service/load/api-1"), "", `{"Load":0.5}`)
	p.waitFor(10*time.Second, call(jsRecords, "api-1,api-2,api-3"))
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := firstSRVPort(t, a, "api"); got != 9001 {
			return fmt.Errorf("the agent's DNS answers port %d first, want api-1's 9001", got)
		}
		return nil
	})
	sameAsDNSOrder(t, p, a, "api")
	if mark := p.text(`String(window.uiTestMark)`); mark != "7" {
		t.Fatalf("the page was reloaded (mark %q)", mark)
	}
	p.screenshot(filepath.Join(t.ArtifactDir(), "least-loaded.png"))
	if errs := p.problems(); len(errs) > 0 {
		t.Fatalf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}

// sameAsDNSOrder checks that the page's DNS answer for the open service
// lists the SRV records the agent's DNS server answers, in the same
// order (for policies whose order does not change per query), and the
// same A records.
func sameAsDNSOrder(t *testing.T, p *page, a *testutil.Agent, svc string) {
	t.Helper()
	var want []string
	for _, rr := range ask(t, a.DNSAddr(), "tcp", svc+".service.chorus", dns.TypeSRV).Answer {
		srv := rr.(*dns.SRV)
		want = append(want, fmt.Sprintf("SRV %d %d %d %s", srv.Priority, srv.Weight, srv.Port, srv.Target))
	}
	for _, rr := range ask(t, a.DNSAddr(), "tcp", svc+".service.chorus", dns.TypeA).Answer {
		want = append(want, "A "+rr.(*dns.A).A.String())
	}
	got := p.text(`[...document.querySelectorAll(".dns .records code, .dns .addrs code")].map((c) => c.textContent).join("\n")`)
	if got != strings.Join(want, "\n") {
		t.Fatalf("the page's DNS answer:\n%s\nthe agent's DNS server, in order:\n%s", got, strings.Join(want, "\n"))
	}
}

// firstSRVPort is the port of the first SRV record the agent answers for
// the service.
func firstSRVPort(t *testing.T, a *testutil.Agent, svc string) uint16 {
	t.Helper()
	r := ask(t, a.DNSAddr(), "tcp", svc+".service.chorus", dns.TypeSRV)
	if len(r.Answer) == 0 {
		t.Fatalf("no SRV answer for %s: %v", svc, r)
	}
	return r.Answer[0].(*dns.SRV).Port
}
