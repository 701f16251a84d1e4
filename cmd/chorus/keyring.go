package main

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"
)

func keyringCmd(cf *clientFlags) *cobra.Command {
	var list bool
	var install, use, remove string
	cmd := &cobra.Command{
		Use:   "keyring",
		Short: "Manage the gossip encryption keyring across the whole cluster",
		Long: `Rotate gossip keys with no downtime:
  chorus keyring --install NEWKEY   # every agent learns the new key
  chorus keyring --use NEWKEY       # every agent encrypts with it
  chorus keyring --remove OLDKEY    # every agent forgets the old one
  chorus keyring --list             # which keys, on how many agents`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n := 0
			for _, set := range []bool{list, install != "", use != "", remove != ""} {
				if set {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("give exactly one of --list, --install, --use or --remove")
			}
			c := cf.client()
			out := cmd.OutOrStdout()
			switch {
			case list:
				var resp []struct {
					Keys        map[string]int
					PrimaryKeys map[string]int
					NumNodes    int
				}
				if err := c.do("GET", "/v1/operator/keyring", nil, &resp); err != nil {
					return err
				}
				for _, r := range resp {
					keys := make([]string, 0, len(r.Keys))
					for k := range r.Keys {
						keys = append(keys, k)
					}
					sort.Strings(keys)
					fmt.Fprintf(out, "Keys on %d nodes:\n", r.NumNodes)
					for _, k := range keys {
						primary := ""
						if r.PrimaryKeys[k] > 0 {
							primary = fmt.Sprintf(" (primary on %d)", r.PrimaryKeys[k])
						}
						fmt.Fprintf(out, "  %s [%d/%d]%s\n", k, r.Keys[k], r.NumNodes, primary)
					}
				}
				return nil
			case install != "":
				return keyringDo(c, out, "POST", install, "Installed key")
			case use != "":
				return keyringDo(c, out, "PUT", use, "Changed primary key to")
			default:
				return keyringDo(c, out, "DELETE", remove, "Removed key")
			}
		},
	}
	f := cmd.Flags()
	f.BoolVar(&list, "list", false, "list installed keys")
	f.StringVar(&install, "install", "", "install a new key on every agent")
	f.StringVar(&use, "use", "", "make an installed key the primary on every agent")
	f.StringVar(&remove, "remove", "", "remove a key from every agent")
	return cmd
}

func keyringDo(c *client, out interface{ Write([]byte) (int, error) }, method, key, msg string) error {
	if err := c.do(method, "/v1/operator/keyring", map[string]string{"Key": key}, nil); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s %s\n", msg, key)
	return nil
}
