package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// chorus monitor streams the agent's lines at --log-level, below the
// level the agent itself logs at, until it is interrupted.
func TestMonitorCommand(t *testing.T) {
	addr := startTestAgent(t, "alpha", nil) // the agent logs at info
	for _, format := range []string{"table", "json"} {
		t.Run(format, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pr, pw := io.Pipe()
			root := newRootCmd()
			root.SetArgs([]string{"monitor", "--log-level", "debug", "--format", format, "--http-addr", addr})
			root.SetOut(pw)
			root.SetErr(pw)
			done := make(chan error, 1)
			go func() {
				err := root.ExecuteContext(ctx)
				pw.Close()
				done <- err
			}()
			id := "mon-" + format
			lines := make(chan string, 256)
			go func() {
				sc := bufio.NewScanner(pr)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			// The registration's debug line is logged once the stream is
			// open; register until it shows (the first may precede it).
			c := apiClient(t, addr)
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			deadline := time.After(15 * time.Second)
			for found := false; !found; {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("monitor ended: %v", <-done)
					}
					if strings.Contains(l, "service registered") && strings.Contains(l, id) {
						if format == "json" != strings.HasPrefix(l, "{") {
							t.Fatalf("line in format %s: %s", format, l)
						}
						found = true
					}
				case <-tick.C:
					c.Agent().ServiceDeregister(id) // unknown the first time
					if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: "web", Port: 80}); err != nil {
						t.Fatal(err)
					}
				case <-deadline:
					t.Fatal("no 'service registered' debug line from chorus monitor")
				}
			}
			cancel()
			go func() {
				for range lines {
				}
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("monitor: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("monitor did not stop when interrupted")
			}
		})
	}
	if _, errOut, code := runCLI(context.Background(), "monitor", "--log-level", "loud", "--http-addr", addr); code != exitError || !strings.Contains(errOut, "Unknown log level") {
		t.Fatalf("bad level: exit %d, %s", code, errOut)
	}
}
