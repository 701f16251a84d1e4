package main

import (
	"fmt"
	"os"
)

func main() { os.Exit(run(os.Args[1:])) }

// run executes the command line and returns the process exit code.
func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		var ec exitCode
		if asExit(err, &ec) {
			return int(ec)
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}
