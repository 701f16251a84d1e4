package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/hashicorp/consul/api"
	"github.com/spf13/cobra"
)

// checkStatuses maps the check command's verbs onto check statuses.
var checkStatuses = map[string]string{"pass": api.HealthPassing, "warn": api.HealthWarning, "fail": api.HealthCritical}

func checkCmd(cf *clientFlags) *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:   "check (pass | warn | fail) CHECK_ID [--note TEXT]",
		Short: "Set the status of a TTL check of the local agent",
		Long: `Set the status of one of the local agent's TTL checks (and restart its TTL),
with --note as its output. A check attached with 'chorus register --check-ttl'
has the ID service:<service ID>. Exit code 5 when the agent has no such check.

  chorus check pass service:web --note "deploy 42 healthy"`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			status, ok := checkStatuses[args[0]]
			if !ok {
				return usagef("%q: want pass, warn or fail", args[0])
			}
			c, err := cf.client(requestTimeout)
			if err != nil {
				return err
			}
			if err := c.Agent().UpdateTTL(args[1], note, status); err != nil {
				return err
			}
			res := struct{ CheckID, Status, Output string }{args[1], status, note}
			return cf.print(cmd.OutOrStdout(), res, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "Check %s is %s\n", args[1], status)
			})
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "the check's output")
	return cmd
}
