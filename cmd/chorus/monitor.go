package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// monitorCmd streams the agent's log lines (GET /v1/agent/monitor) until
// the command is interrupted or the agent stops.
func monitorCmd(cf *clientFlags) *cobra.Command {
	var level string
	c := &cobra.Command{
		Use:   "monitor",
		Short: "Stream the local agent's log lines",
		Long: "Stream the agent's log lines at --log-level and above (trace, debug, info, warn, error),\n" +
			"including levels below the agent's own log_level, until interrupted or the agent stops.\n" +
			"--format json streams them as JSON lines.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(0) // a stream: no request timeout
			if err != nil {
				return err
			}
			stop := make(chan struct{})
			defer close(stop)
			monitor := c.Agent().Monitor
			if cf.format == "json" {
				monitor = c.Agent().MonitorJSON
			}
			lines, err := monitor(level, stop, nil)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			ctx := cmd.Context()
			for {
				select {
				case <-ctx.Done():
					return nil
				case line := <-lines:
					if line == "" { // the stream ended: the agent stopped
						return nil
					}
					fmt.Fprintln(out, line)
				}
			}
		},
	}
	c.Flags().StringVar(&level, "log-level", "info", "lowest level of the lines to stream: trace, debug, info, warn or error")
	return c
}
