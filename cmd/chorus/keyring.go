package main

import (
	"fmt"
	"maps"
	"slices"
	"text/tabwriter"

	"github.com/hashicorp/consul/api"
	"github.com/spf13/cobra"
)

func keyringCmd(cf *clientFlags) *cobra.Command {
	var list bool
	var install, use, remove string
	cmd := &cobra.Command{
		Use:   "keyring (--list | --install KEY | --use KEY | --remove KEY)",
		Short: "Manage the gossip encryption keyring across the whole cluster",
		Long: `Rotate gossip keys with no downtime:
  chorus keyring --install NEWKEY   # every agent learns the new key
  chorus keyring --use NEWKEY       # every agent encrypts with it
  chorus keyring --remove OLDKEY    # every agent forgets the old one
  chorus keyring --list             # which keys, on how many agents

--format json prints the agent's /v1/operator/keyring answer for --list, and
the operation with its key otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n := 0
			for _, set := range []bool{list, install != "", use != "", remove != ""} {
				if set {
					n++
				}
			}
			if n != 1 {
				return usagef("give exactly one of --list, --install, --use or --remove")
			}
			c, err := cf.client(requestTimeout)
			if err != nil {
				return err
			}
			op := c.Operator()
			out := cmd.OutOrStdout()
			if list {
				resp, err := op.KeyringList(nil)
				if err != nil {
					return err
				}
				return cf.print(out, resp, func(tw *tabwriter.Writer) { printKeyring(tw, resp) })
			}
			var key, verb, msg string
			switch {
			case install != "":
				key, verb, msg = install, "install", "Installed key"
				err = op.KeyringInstall(key, nil)
			case use != "":
				key, verb, msg = use, "use", "Changed primary key to"
				err = op.KeyringUse(key, nil)
			default:
				key, verb, msg = remove, "remove", "Removed key"
				err = op.KeyringRemove(key, nil)
			}
			if err != nil {
				return err
			}
			res := struct{ Operation, Key string }{verb, key}
			return cf.print(out, res, func(tw *tabwriter.Writer) { fmt.Fprintf(tw, "%s %s\n", msg, key) })
		},
	}
	f := cmd.Flags()
	f.BoolVar(&list, "list", false, "list installed keys")
	f.StringVar(&install, "install", "", "install a new key on every agent")
	f.StringVar(&use, "use", "", "make an installed key the primary on every agent")
	f.StringVar(&remove, "remove", "", "remove a key from every agent")
	return cmd
}

// printKeyring writes the keys of each keyring answer with the number of
// nodes holding them and using them as primary.
func printKeyring(tw *tabwriter.Writer, resp []*api.KeyringResponse) {
	for _, r := range resp {
		keys := slices.Sorted(maps.Keys(r.Keys))
		fmt.Fprintf(tw, "Keys on %d nodes:\n", r.NumNodes)
		fmt.Fprintln(tw, "  Key\tInstalled\tPrimary")
		for _, k := range keys {
			fmt.Fprintf(tw, "  %s\t%d/%d\t%d/%d\n", k, r.Keys[k], r.NumNodes, r.PrimaryKeys[k], r.NumNodes)
		}
	}
}
