package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chorusdns/chorus/agent"
)

// exitCode is an error that carries a process exit code and has already
// been reported.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func asExit(err error, ec *exitCode) bool { return errors.As(err, ec) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "chorus",
		Short: "Chorus: leaderless service discovery with a DNS interface",
		Long: `Chorus runs one agent per host. Agents gossip the service catalog and health
over Serf, and every agent answers DNS and a Consul-compatible HTTP API for the
whole cluster. There are no servers, no quorum and no leader.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newAgentCmd(),
		newVersionCmd(),
		newKeygenCmd(),
	)
	addClientCommands(root)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "Chorus v%s\n", agent.Version)
			return nil
		},
	}
}
