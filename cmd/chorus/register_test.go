package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/chorusdns/chorus/test/testutil"
)

func TestRegisterForms(t *testing.T) {
	addr := startTestAgent(t, "alpha", nil)
	c := apiClient(t, addr)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		file string
		want map[string]int // service ID → port
	}{
		{"bare", write("bare.json", `{"name": "bare", "port": 1001, "tags": ["t"]}`), map[string]int{"bare": 1001}},
		{"wrapped", write("wrapped.json", `{"service": {"Name": "wrapped", "ID": "wrapped-1", "Port": 1002}}`), map[string]int{"wrapped-1": 1002}},
		{"list", write("list.json", `{"services": [{"name": "l1", "port": 1003}, {"name": "l2", "port": 1004,
			"checks": [{"ttl": "30s"}, {"tcp": "127.0.0.1:1", "interval": "5s", "timeout": "1s"}]}]}`), map[string]int{"l1": 1003, "l2": 1004}},
		{"configs/web.json", filepath.Join(testutil.RepoRoot(t), "configs", "web.json"), map[string]int{"web": 8080}},
		{"yaml", write("svc.yaml", "service:\n  name: yml\n  port: 1005\n  check:\n    ttl: 1m\n"), map[string]int{"yml": 1005}},
		{"hcl", write("svc.hcl", "service {\n  name = \"hcl\"\n  port = 1006\n}\n"), map[string]int{"hcl": 1006}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := cli(t, addr, 0, "register", tc.file)
			svcs, err := c.Agent().Services()
			if err != nil {
				t.Fatal(err)
			}
			for id, port := range tc.want {
				if !strings.Contains(out, "(ID "+id+")") {
					t.Errorf("output does not name %s:\n%s", id, out)
				}
				if s, ok := svcs[id]; !ok || s.Port != port {
					t.Errorf("service %s: %+v, want port %d", id, s, port)
				}
			}
		})
	}

	// configs/web.json's check and fields arrive whole.
	svcs, _ := c.Agent().Services()
	if w := svcs["web"]; w.Meta["version"] != "1.4.2" || w.Weights.Passing != 10 || len(w.Tags) != 1 {
		t.Fatalf("web from configs/web.json: %+v", w)
	}
	checks, err := c.Agent().Checks()
	if err != nil {
		t.Fatal(err)
	}
	if ch := checks["service:web"]; ch == nil || ch.Type != "http" {
		t.Fatalf("web's http check: %+v", ch)
	}
	if ch1, ch2 := checks["service:l2:1"], checks["service:l2:2"]; ch1 == nil || ch1.Type != "ttl" || ch2 == nil || ch2.Type != "tcp" {
		t.Fatalf("l2's checks: %+v %+v", ch1, ch2)
	}

	t.Run("flags with a check", func(t *testing.T) {
		for _, tc := range []struct {
			args     []string
			id, kind string
			interval string
		}{
			{[]string{"--name", "fh", "--port", "80", "--check-http", "http://127.0.0.1:1/health", "--check-interval", "3s"}, "fh", "http", "3s"},
			{[]string{"--name", "ft", "--id", "ft-1", "--address", "10.1.1.1", "--tag", "a", "--tag", "b", "--check-tcp", "127.0.0.1:1"}, "ft-1", "tcp", "10s"},
			{[]string{"--name", "fl", "--check-ttl", "45s"}, "fl", "ttl", ""},
			{[]string{"--name", "fn", "--port", "81"}, "fn", "", ""},
		} {
			var regs []api.AgentServiceRegistration
			cliJSON(t, addr, &regs, append([]string{"register"}, tc.args...)...)
			if len(regs) != 1 || (tc.kind == "") != (regs[0].Check == nil) {
				t.Fatalf("register %v json: %+v", tc.args, regs)
			}
			if tc.kind != "" && regs[0].Check.Interval != tc.interval {
				t.Fatalf("register %v: interval %q, want %q", tc.args, regs[0].Check.Interval, tc.interval)
			}
			svc, _, err := c.Agent().Service(tc.id, nil)
			if err != nil {
				t.Fatalf("service %s: %v", tc.id, err)
			}
			checks, _ := c.Agent().Checks()
			ch := checks["service:"+tc.id]
			switch {
			case tc.kind == "" && ch != nil:
				t.Fatalf("%s: unexpected check %+v", tc.id, ch)
			case tc.kind != "" && (ch == nil || ch.Type != tc.kind):
				t.Fatalf("%s: check %+v, want type %s", tc.id, ch, tc.kind)
			}
			if tc.id == "ft-1" && (svc.Address != "10.1.1.1" || strings.Join(svc.Tags, ",") != "a,b") {
				t.Fatalf("ft-1: %+v", svc)
			}
		}
	})

	t.Run("bad files", func(t *testing.T) {
		for _, tc := range []struct{ body, msg string }{
			{`{"name": "x", "prot": 1}`, `unknown field "prot"`},
			{`{"service": {"name": "x"}, "datacenter": "dc2"}`, `top-level key "datacenter"`},
			{`{"services": {"name": "x"}}`, "want a list"},
			{`{"services": []}`, "no service definition"},
			{`{"services": [1]}`, "expected an object"},
			{`{"service": {"name": "x"}, "services": [{"name": "y"}]}`, "not both"},
			{`{"port": 80}`, "name"},
			{`{"name": "x", "check": {"interval": "fast", "tcp": "a:1"}}`, "invalid duration"},
			{`[`, "invalid JSON"},
		} {
			out := cli(t, addr, exitUsage, "register", write("bad.json", tc.body))
			if !strings.Contains(out, "bad.json: ") || !strings.Contains(out, tc.msg) {
				t.Errorf("register %s: want %q in:\n%s", tc.body, tc.msg, out)
			}
		}
	})

	help := cli(t, addr, 0, "register", "--help")
	for _, want := range []string{`{"service": {"name": "web"`, `{"services": [`, `"check": {"http"`, "--check-interval duration", "(default 10s)"} {
		if !strings.Contains(help, want) {
			t.Errorf("register --help lacks %q:\n%s", want, help)
		}
	}
}

// FuzzParseServiceFile feeds arbitrary bytes to the definition file parser
// in each format: it must return registrations or an error, never panic,
// and every registration it returns must have a name.
func FuzzParseServiceFile(f *testing.F) {
	for _, s := range []string{
		`{"name": "web", "port": 80}`,
		`{"service": {"name": "web", "check": {"http": "http://x/", "interval": "1s"}}}`,
		`{"services": [{"name": "a"}, {"name": "b", "checks": [{"ttl": "1m"}]}]}`,
		`{"service": [{"name": "a"}]}`,
		"service:\n  name: y\n",
		"service {\n name = \"h\"\n}\n",
		`{"services": null}`,
	} {
		f.Add(s, "f.json")
		f.Add(s, "f.yaml")
		f.Add(s, "f.hcl")
	}
	f.Fuzz(func(t *testing.T, body, name string) {
		regs, err := parseServiceFile(name, []byte(body))
		if err != nil {
			return
		}
		if len(regs) == 0 {
			t.Fatalf("no registration and no error for %q", body)
		}
		for _, r := range regs {
			if r.Name == "" {
				t.Fatalf("registration without a name from %q", body)
			}
		}
	})
}
