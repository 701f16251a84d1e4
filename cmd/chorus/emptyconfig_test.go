package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/agent"
)

// An empty config file (or one of white space only) is an empty config
// in every format, as Consul takes it: the agent starts with defaults.
func TestEmptyConfigFile(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"empty.json", "blank.json", "empty.yaml", "empty.hcl"} {
		body := ""
		if name == "blank.json" {
			body = " \n\t\n"
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(nil, sources{files: []string{p}}, true)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name != "empty.json" {
			continue
		}
		// The config it gives runs an agent the Consul client talks to.
		cfg.NodeName, cfg.DataDir = "alpha", t.TempDir()
		cfg.Bind, cfg.Client = "127.0.0.1", "127.0.0.1"
		cfg.HTTPPort, cfg.DNSPort, cfg.SerfPort = 0, 0, 0
		a, err := agent.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewPedanticRegistry())
		if err != nil {
			t.Fatalf("agent from an empty config: %v", err)
		}
		if err := a.Start(); err != nil {
			t.Fatalf("start: %v", err)
		}
		t.Cleanup(a.Kill)
		self, err := apiClient(t, a.HTTPAddr()).Agent().Self()
		if err != nil || self["Config"]["Datacenter"] != agent.DefaultConfig().Datacenter {
			t.Fatalf("self: %v %v", self["Config"], err)
		}
	}
}
