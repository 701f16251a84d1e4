package checks

import (
	"net"
	"testing"
	"time"
)

func TestTCPCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	closedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closedLn.Addr().String()
	closedLn.Close()

	m, _ := startManager(t, Config{})
	mustAdd(t, m, Definition{ID: "open", TCP: ln.Addr().String(), Interval: 100 * time.Millisecond})
	mustAdd(t, m, Definition{ID: "closed", TCP: closedAddr, Interval: 100 * time.Millisecond, Status: StatusPassing})

	res := waitStatus(t, m, "open", StatusPassing, 5*time.Second)
	if want := "TCP connect " + ln.Addr().String() + ": Success"; res.Output != want {
		t.Errorf("output %q, want %q", res.Output, want)
	}
	waitOutput(t, m, "closed", StatusCritical, "connection refused", 10*time.Second)

	// The listener goes away: the check turns critical.
	ln.Close()
	waitStatus(t, m, "open", StatusCritical, 5*time.Second)
}
