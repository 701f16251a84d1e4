package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/viper"
)

func TestLoadConfigErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, file, body, want string
	}{
		{"unknown key", "a.yaml", "bogus: 1\n", "bogus"},
		{"near miss", "a2.json", `{"http_prot": 1}`, `unknown key "http_prot" (did you mean "http_port"?)`},
		{"near miss nested", "a3.hcl", "dns {\n  polcy = \"random\"\n}\n", `"dns.polcy" (did you mean "dns.policy"?)`},
		{"file named", "a4.yaml", "bogus: 1\n", "a4.yaml"},
		{"unknown nested key", "b.yaml", "dns:\n  polcy: random\n", "polcy"},
		{"wrong type", "c.json", `{"serf_port": [1]}`, "serf_port"},
		{"bad duration", "d.yaml", "dns:\n  node_ttl: soon\n", "node_ttl"},
		{"bad policy", "e.hcl", "dns {\n  policy = \"x\"\n}\n", "dns.policy"},
		{"bad service", "f.json", `{"services":[{"name":"bad name"}]}`, "services[0]"},
		{"unknown service key", "g.yaml", "service:\n  name: web\n  colour: blue\n", "colour"},
		{"bad yaml", "h.yaml", "a: [\n", "invalid YAML"},
		{"bad log level", "i.yaml", "log_level: loud\n", "log_level"},
		{"bad encrypt", "j.yaml", "encrypt: abc\n", "encrypt"},
		{"negative gossip knob", "k.yaml", "gossip:\n  retransmit_mult: -1\n", "gossip.retransmit_mult"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.file)
			os.WriteFile(p, []byte(tc.body), 0o644)
			_, err := loadConfig(nil, sources{files: []string{p}}, true)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to name %q", err, tc.want)
			}
		})
	}
}

func TestLoadConfigFormatsAgree(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a.yaml": "datacenter: east\nrecursors: [1.1.1.1]\ndns:\n  only_passing: true\n  service_ttl: 5s\nservice:\n  name: web\n  port: 80\n",
		"a.json": `{"datacenter":"east","recursors":["1.1.1.1"],"dns":{"only_passing":true,"service_ttl":"5s"},"service":{"name":"web","port":80}}`,
		"a.hcl":  "datacenter = \"east\"\nrecursors = [\"1.1.1.1\"]\ndns {\n  only_passing = true\n  service_ttl = \"5s\"\n}\nservice {\n  name = \"web\"\n  port = 80\n}\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		cfg, err := loadConfig(nil, sources{files: []string{p}}, true)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.Datacenter != "east" || !cfg.OnlyPassing || cfg.ServiceTTL.Seconds() != 5 ||
			len(cfg.Recursors) != 1 || len(cfg.Services) != 1 || cfg.Services[0].Port != 80 {
			t.Fatalf("%s: %+v", name, cfg)
		}
	}
}

// FuzzDecodeConfig feeds arbitrary bytes through the config decoders and
// the strict unmarshal: errors are fine, panics are not.
func FuzzDecodeConfig(f *testing.F) {
	f.Add("yaml", []byte("node: a\ndns:\n  policy: hash\n"))
	f.Add("json", []byte(`{"services":[{"name":"web","check":{"ttl":"1s"}}]}`))
	f.Add("hcl", []byte("service {\n name = \"x\"\n}\n"))
	f.Add("yaml", []byte("service: [1, {a: b}]\n"))
	f.Fuzz(func(t *testing.T, format string, b []byte) {
		m, err := decodeConfig(format, b)
		if err != nil {
			return
		}
		if _, err := extractServices(m); err != nil {
			return
		}
		v := viper.New()
		if err := v.MergeConfigMap(m); err != nil {
			return
		}
	})
}
