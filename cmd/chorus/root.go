package main

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chorusdns/chorus/agent"
)

// commit is the source revision the binary was built from, set with
// -ldflags '-X main.commit=…' (the Makefile does). When empty, version
// reads the revision Go's build info recorded.
var commit string

// exitCode is an error that carries a process exit code and has already
// been reported.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func asExit(err error, ec *exitCode) bool { return errors.As(err, ec) }

// reported prints msg as cmd's error (with a pointer to the help for
// usage errors) and returns the exit code for main.
func reported(cmd *cobra.Command, code int, msg string) error {
	fmt.Fprintln(cmd.ErrOrStderr(), "error:", msg)
	if code == exitUsage {
		fmt.Fprintf(cmd.ErrOrStderr(), "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return exitCode(code)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "chorus",
		Short: "Chorus: leaderless service discovery with a DNS interface",
		Long: `Chorus runs one agent per host. Agents gossip the service catalog and health
over Serf, and every agent answers DNS and a Consul-compatible HTTP API for the
whole cluster. There are no servers, no quorum and no leader.

'chorus agent' runs an agent; the other commands are clients of an agent's
HTTP API (--http-addr, default 127.0.0.1:8500 or $CHORUS_HTTP_ADDR) and print
a table, or the API's JSON with --format json.

Exit codes:
  0  success
  1  any other error
  2  usage error: unknown command or flag, wrong arguments, unreadable file
  3  the agent could not be reached (connection refused, timeout, bad host)
  4  permission denied: the agent refused the token (HTTP 403)
  5  not found: unknown service, check or node (HTTP 404, or no instance)`,
		Args:          cobra.ArbitraryArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return usagef("%s", msg)
		},
	}
	root.AddCommand(
		newAgentCmd(),
		newVersionCmd(),
		newKeygenCmd(),
	)
	addClientCommands(root)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return reported(cmd, exitUsage, err.Error())
	})
	reportErrors(root)
	return root
}

// reportErrors makes every command of the tree report its own errors and
// return an exitCode: usage errors (bad arguments included) exit 2, errors
// already carrying a code keep it, any other exits 1.
func reportErrors(c *cobra.Command) {
	if args := c.Args; args != nil {
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return reported(cmd, exitUsage, err.Error())
			}
			return nil
		}
	}
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, a []string) error {
			err := run(cmd, a)
			var ec exitCode
			var ue usageError
			switch {
			case err == nil, errors.As(err, &ec):
				return err
			case errors.As(err, &ue):
				return reported(cmd, exitUsage, err.Error())
			}
			return reported(cmd, exitError, err.Error())
		}
	}
	for _, sub := range c.Commands() {
		reportErrors(sub)
	}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and the source revision",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "Chorus v%s\nRevision %s\n", agent.Version, revision())
			return nil
		},
	}
}

// revision returns commit, else the VCS revision in the build info (short,
// marked when the tree had uncommitted changes), else "unknown".
func revision() string {
	if commit != "" {
		return commit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var rev string
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 7 {
		rev = rev[:7]
	}
	if modified {
		rev += " (modified)"
	}
	return rev
}
