// Command chaos runs Chorus's fault scenarios on a cluster of agents in
// network namespaces and writes report.md and one PNG timeline per
// scenario.
//
//	go run ./test/cluster/cmd/chaos                 # full set → test/cluster/results
//	go run ./test/cluster/cmd/chaos -short -out DIR # the CI set
//	go run ./test/cluster/cmd/chaos -only crash,hang
//
// Exit status: 0 when every assertion held, 1 when one failed, 2 when the
// run could not be made, 0 with a "SKIP:" line when this machine cannot
// run it (not root, no network namespaces) unless -require is set (3).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/chorusdns/chorus/test/cluster"
)

func main() { os.Exit(run()) }

func run() int {
	var (
		hosts   = flag.Int("hosts", 5, "number of hosts (agents)")
		short   = flag.Bool("short", false, "run the short CI set ("+strings.Join(cluster.ShortSet, ", ")+") with short holds")
		only    = flag.String("only", "", "comma-separated scenarios to run (default: the whole set)")
		out     = flag.String("out", "", "output directory for report.md and PNGs (default test/cluster/results)")
		work    = flag.String("work", "", "work directory for binaries, data dirs and logs (default: a new temp dir, kept)")
		rate    = flag.Int("rate", 100, "DNS queries per second per agent")
		require = flag.Bool("require", false, "fail (exit 3) instead of skipping when this machine cannot run the harness")
		quiet   = flag.Bool("quiet", false, "log only warnings and errors (default: progress too)")
		gossip  = flag.String("gossip", "", "gossip.* knobs for every agent, over the lan profile: key=value,… (e.g. suspicion_mult=2)")
	)
	flag.Parse()
	knobs := map[string]string{}
	if *gossip != "" {
		for _, kv := range strings.Split(*gossip, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" || v == "" {
				fmt.Fprintf(os.Stderr, "chaos: -gossip: %q is not key=value\n", kv)
				return 2
			}
			knobs[k] = v
		}
	}
	level := slog.LevelInfo
	if *quiet {
		level = slog.LevelWarn
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := cluster.Preflight(ctx); err != nil {
		fmt.Printf("SKIP: chorus fault tests need network namespaces: %v\n", err)
		if *require {
			return 3
		}
		return 0
	}
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	if *out == "" {
		*out = filepath.Join(root, "test", "cluster", "results")
	}
	var names []string
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	fmt.Printf("chaos: %d hosts, %s set; output in %s\n", *hosts, map[bool]string{true: "short", false: "full"}[*short], *out)
	rep, err := cluster.Run(ctx, cluster.Options{
		Hosts: *hosts, Short: *short, Only: names, RepoRoot: root, OutDir: *out, WorkDir: *work, Rate: *rate, Gossip: knobs, Logger: logger,
	})
	if rep != nil {
		fmt.Println()
		fmt.Print(rep.Table())
		fmt.Printf("\nreport: %s\nagent logs: %s\n", filepath.Join(*out, cluster.ReportFile), filepath.Join(rep.WorkDir, "logs"))
		for _, res := range rep.Results {
			for _, f := range res.Failures {
				fmt.Printf("FAIL %s: %s\n", res.Scenario.Name, f)
			}
		}
		for _, l := range rep.FinalLost {
			fmt.Printf("FAIL final: lost %s\n", l)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	if !rep.Pass() {
		return 1
	}
	fmt.Println("chaos: every assertion held")
	return 0
}

// repoRoot finds the module root from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/chorusdns/chorus\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run from inside the chorus module (no go.mod found)")
		}
		dir = parent
	}
}
