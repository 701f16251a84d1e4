package checks

import (
	"net"
	"testing"
	"time"
)

// TestUDPCheck follows Consul's UDP semantics: a closed port's ICMP port
// unreachable is critical; silence until the Timeout, or a reply, passes.
func TestUDPCheck(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() { // reads and never answers
		buf := make([]byte, 64)
		for {
			if _, _, err := silent.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = echo.WriteTo(append(buf[:n], "pong"...), from)
		}
	}()
	closed, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.LocalAddr().String()
	closed.Close()

	m, _ := startManager(t, Config{})
	tick, wait := 100*time.Millisecond, 300*time.Millisecond
	mustAdd(t, m, Definition{ID: "silent", UDP: silent.LocalAddr().String(), Interval: tick, Timeout: wait})
	mustAdd(t, m, Definition{ID: "echo", UDP: echo.LocalAddr().String(), Interval: tick, Timeout: wait})
	mustAdd(t, m, Definition{ID: "closed", UDP: closedAddr, Interval: tick, Timeout: wait, Status: StatusPassing})

	res := waitStatus(t, m, "silent", StatusPassing, 5*time.Second)
	if want := "UDP connect " + silent.LocalAddr().String() + ": Success"; res.Output != want {
		t.Errorf("output %q, want %q", res.Output, want)
	}
	waitStatus(t, m, "echo", StatusPassing, 5*time.Second)
	waitOutput(t, m, "closed", StatusCritical, "connection refused", 5*time.Second)

	// The silent listener goes away: its port now refuses.
	silent.Close()
	waitOutput(t, m, "silent", StatusCritical, "connection refused", 5*time.Second)
}
