package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/chorusdns/chorus/watch"
)

func watchCmd(cf *clientFlags) *cobra.Command {
	var p watch.Plan
	cmd := &cobra.Command{
		Use:   "watch --type TYPE [--service NAME] [--passing] [--state STATE] [-- HANDLER [ARGS...]]",
		Short: "Print a catalog view, or run a handler, every time it changes",
		Long: `Watch a view of the catalog with blocking queries, as 'consul watch' does, and
report it every time it changes: print it as JSON, or, with a handler after
'--', run the handler with the JSON on its standard input. A result equal to
the last one reported is never reported, and changes closer together than
100 ms are reported once, with the latest result.

Types:
  service   instances of --service NAME with their checks (--passing: only
            instances whose checks pass)              /v1/health/service/NAME
  services  service names and their tags             /v1/catalog/services
  nodes     catalog nodes                             /v1/catalog/nodes
  checks    checks of --service NAME, or in --state any|passing|warning|critical
            (default any)                              /v1/health/checks/NAME, /v1/health/state/STATE

A failing handler is reported on stderr with its exit status and output, and
the watch goes on. After the first result, a failed query is reported on
stderr and retried with back-off; the first query's failure ends the command
with its exit code (3 unreachable, 4 denied). Ctrl-C stops the watch (exit 0).

  chorus watch --type service --service web
  chorus watch --type checks --state critical -- sh -c 'cat > /tmp/critical.json'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && cmd.ArgsLenAtDash() != 0 {
				return fmt.Errorf("unexpected argument %q: put the handler after '--'", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if cf.format != "json" {
				return usagef("--format %q: watch prints json", cf.format)
			}
			p.Handler = args
			if err := p.Validate(); err != nil {
				return usageError{err}
			}
			c, err := cf.client(0)
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			p.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			return p.Run(ctx, c, func(data []byte) {
				if len(p.Handler) == 0 {
					var b bytes.Buffer
					if json.Indent(&b, data, "", "  ") != nil {
						b.Reset()
						b.Write(data)
					}
					b.WriteByte('\n')
					out.Write(b.Bytes())
					return
				}
				res, err := watch.RunHandler(ctx, p.Handler, data)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					name := strings.Join(p.Handler, " ")
					if res.ExitCode >= 0 {
						fmt.Fprintf(stderr, "watch: handler %q exited with status %d after %.3fs", name, res.ExitCode, res.Duration.Seconds())
					} else {
						fmt.Fprintf(stderr, "watch: handler %q failed after %.3fs: %v", name, res.Duration.Seconds(), err)
					}
					if out := bytes.TrimRight(res.Output, "\n"); len(out) > 0 {
						fmt.Fprintf(stderr, "; output:\n%s", out)
					}
					fmt.Fprintln(stderr)
					return
				}
				out.Write(res.Output)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&p.Type, "type", "", "what to watch: service, services, nodes or checks")
	f.StringVar(&p.Service, "service", "", "service name (type service; type checks: that service's checks)")
	f.BoolVar(&p.Passing, "passing", false, "type service: only instances whose checks pass")
	f.StringVar(&p.State, "state", "", "type checks: any, passing, warning or critical")
	return cmd
}
