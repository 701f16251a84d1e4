package agent

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/chorusdns/chorus/agent/httpapi"
)

// TestEnableDebug: /debug/pprof/ answers 404 unless enable_debug is on or
// ACLs are enabled (as Consul's agent); with ACLs it needs a read token,
// and the command line (which may hold the gossip key) a write token; a
// reload turns the profiles on and off.
func TestEnableDebug(t *testing.T) {
	const readTok, writeTok = "read-token-0123456789", "write-token-0123456789"
	get := func(t *testing.T, a *Agent, path, token string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+a.HTTPAddr()+path, nil)
		if token != "" {
			req.Header.Set("X-Consul-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes()
	}
	type probe struct {
		path, token string
		want        int
	}
	cases := []struct {
		name   string
		debug  bool
		acl    bool
		probes []probe
	}{
		{"off", false, false, []probe{
			{"/debug/pprof/", "", 404}, {"/debug/pprof/heap", "", 404}, {"/debug/pprof/profile?seconds=1", "", 404},
		}},
		{"on", true, false, []probe{
			{"/debug/pprof/", "", 200}, {"/debug/pprof/heap", "", 200}, {"/debug/pprof/profile?seconds=1", "", 200},
			{"/debug/pprof/cmdline", "", 200},
		}},
		{"off, ACLs on", false, true, []probe{
			{"/debug/pprof/", "", 403}, {"/debug/pprof/", readTok, 200}, {"/debug/pprof/heap", readTok, 200},
			{"/debug/pprof/cmdline", readTok, 403}, {"/debug/pprof/cmdline", writeTok, 200},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, "alpha")
			cfg.EnableDebug = tc.debug
			if tc.acl {
				cfg.ACL = httpapi.ACLConfig{Enabled: true, DefaultPolicy: httpapi.PolicyDeny, Tokens: []httpapi.ACLToken{
					{Secret: readTok, Policy: httpapi.PolicyRead}, {Secret: writeTok, Policy: httpapi.PolicyWrite}}}
			}
			a := startAgent(t, cfg)
			for _, p := range tc.probes {
				code, body := get(t, a, p.path, p.token)
				if code != p.want {
					t.Errorf("GET %s (token %q): %d, want %d: %.200s", p.path, p.token, code, p.want, body)
					continue
				}
				if code != 200 {
					continue
				}
				switch {
				case strings.HasPrefix(p.path, "/debug/pprof/profile"), p.path == "/debug/pprof/heap":
					// A gzipped profile.proto.
					if len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
						t.Errorf("GET %s: not a gzipped profile: %.40q", p.path, body)
					}
				case p.path == "/debug/pprof/":
					if !bytes.Contains(body, []byte("goroutine")) {
						t.Errorf("GET %s: no profile index: %.200s", p.path, body)
					}
				}
			}
		})
	}

	t.Run("reload", func(t *testing.T) {
		cfg := testConfig(t, "alpha")
		a := startAgent(t, cfg)
		if code, _ := get(t, a, "/debug/pprof/", ""); code != 404 {
			t.Fatalf("before the reload: %d, want 404", code)
		}
		next := cfg
		next.EnableDebug = true
		if err := a.Reload(next); err != nil {
			t.Fatal(err)
		}
		if code, _ := get(t, a, "/debug/pprof/", ""); code != 200 {
			t.Fatalf("after enable_debug was turned on: %d, want 200", code)
		}
		if err := a.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		if code, _ := get(t, a, "/debug/pprof/", ""); code != 404 {
			t.Fatalf("after enable_debug was turned off: %d, want 404", code)
		}
	})
}
