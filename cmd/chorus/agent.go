package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chorusdns/chorus/agent"
	"github.com/chorusdns/chorus/agent/httpapi"
)

func newAgentCmd() *cobra.Command {
	var src sources
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a Chorus agent",
		Long: `Run a Chorus agent: gossip membership on --serf-port, the HTTP API on
--http-port and DNS (UDP and TCP) on --dns-port.

Every flag is also a config-file key (dashes become underscores) and a
CHORUS_* environment variable (e.g. --http-port, http_port, CHORUS_HTTP_PORT).
Precedence: flag > environment > config file > default.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if env := os.Getenv("CHORUS_CONFIG_FILE"); env != "" && len(src.files) == 0 {
				src.files = strings.Split(env, ",")
			}
			if env := os.Getenv("CHORUS_CONFIG_DIR"); env != "" && src.dir == "" {
				src.dir = env
			}
			dev, _ := cmd.Flags().GetBool("dev")
			if !cmd.Flags().Changed("dev") && os.Getenv("CHORUS_DEV") != "" {
				dev = os.Getenv("CHORUS_DEV") == "true" || os.Getenv("CHORUS_DEV") == "1"
			}
			cfg, err := loadConfig(cmd.Flags(), src, dev)
			if err != nil {
				fmt.Fprintln(os.Stderr, "error:", err)
				return exitCode(2)
			}
			return runAgent(cmd.Context(), cfg, cmd.Flags(), src, dev)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&src.files, "config-file", nil, "config file (YAML, JSON or HCL); repeatable, later files win")
	f.StringVar(&src.dir, "config-dir", "", "directory of config files and service definitions (*.yaml, *.json, *.hcl)")
	def := agent.DefaultConfig()
	f.String("data-dir", "", "directory for persistent state (registrations, gossip snapshot, keyring)")
	f.String("node", def.NodeName, fmt.Sprintf("node name, unique in the cluster (default: the host name, %q)", def.NodeName))
	f.Lookup("node").DefValue = "" // said once, in the usage
	f.String("bind", def.Bind, "gossip bind address")
	f.String("advertise", "", "address peers use to reach this agent (default: bind, or the first private address)")
	f.String("client", def.Client, "address for the HTTP API and DNS")
	f.Int("http-port", def.HTTPPort, "HTTP API port")
	f.Int("https-port", 0, "HTTPS API port (needs tls.cert_file and tls.key_file in the config); 0 = off")
	f.Int("dns-port", def.DNSPort, "DNS port (UDP and TCP)")
	f.Int("serf-port", def.SerfPort, "gossip port (UDP and TCP)")
	f.StringArray("join", nil, "address of an agent to join at start; repeatable")
	f.StringArray("retry-join", nil, "address to join, retried with backoff until it succeeds; repeatable")
	f.StringArray("retry-join-wan", nil, "address (ip or ip:port) of an agent of another datacenter, for the WAN pool; repeatable")
	f.Int("serf-wan-port", def.SerfWANPort, "WAN pool port (UDP and TCP), opened only while this agent is one of its datacenter's speakers")
	f.String("domain", def.Domain, "DNS domain answered")
	f.StringArray("recursor", nil, "upstream DNS server (ip or ip:port) for names outside the domain; repeatable")
	f.String("encrypt", "", "gossip encryption key (base64, 16/24/32 bytes; see 'chorus keygen')")
	f.String("datacenter", def.Datacenter, "datacenter name")
	f.String("zone", "", "zone of this agent (DNS prefers instances in the querying agent's zone)")
	f.String("log-level", def.LogLevel, "log level: debug, info, warn, error")
	f.Bool("dev", false, "development mode: one node, temporary data dir, debug logs, everything on 127.0.0.1")
	return cmd
}

// runAgent runs the agent until SIGINT/SIGTERM (graceful leave, exit 0).
// A second signal forces exit. SIGHUP reloads services, checks, DNS
// settings and the log level from the config files.
func runAgent(parent context.Context, cfg agent.Config, flags *pflag.FlagSet, src sources, dev bool) error {
	level := new(slog.LevelVar)
	level.Set(levelOf(cfg.LogLevel))
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	reg := prometheus.NewRegistry()
	a, err := agent.New(cfg, logger, reg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error: config:", err)
		return exitCode(2)
	}
	if err := a.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return exitCode(1)
	}

	// reload reads the configuration again and applies it: on SIGHUP and
	// for PUT /v1/agent/reload (consul reload), one at a time.
	var reloadMu sync.Mutex
	reload := func() error {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		next, err := loadConfig(flags, src, dev)
		if err != nil {
			return fmt.Errorf("reload failed; keeping the running configuration: %w", err)
		}
		level.Set(levelOf(next.LogLevel))
		if err := a.Reload(next); err != nil {
			return err
		}
		logger.Info("configuration reloaded", "services", len(next.Services))
		return nil
	}
	a.SetReloadSource(reload)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for {
		select {
		case <-a.Done():
			if err := a.Err(); err != nil {
				fmt.Fprintln(os.Stderr, "error:", err)
				return exitCode(1)
			}
			return nil
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if err := reload(); err != nil {
					logger.Error("reload failed", "err", err)
				}
				continue
			}
			logger.Info("shutting down: leaving the cluster", "signal", sig.String())
			ctx, cancel := context.WithTimeout(parent, 15*time.Second)
			done := make(chan error, 1)
			go func() { done <- a.Shutdown(ctx) }()
			select {
			case err := <-done:
				cancel()
				if err != nil {
					logger.Error("shutdown", "err", err)
					return exitCode(1)
				}
				return nil
			case <-sigs:
				cancel()
				logger.Error("second signal: exiting at once")
				return exitCode(1)
			}
		}
	}
}

// levelOf is the slog level of a validated log_level.
func levelOf(s string) slog.Level {
	l, _ := httpapi.ParseLogLevel(s) // Config.Validate has accepted s
	return l
}
