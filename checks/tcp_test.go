package checks

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
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

// TestTCPCheckTLS: with TCPUseTLS the check passes only once a TLS
// handshake completes; a plain TCP server fails it.
func TestTCPCheckTLS(t *testing.T) {
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)

	m, _ := startManager(t, Config{})
	tick := 100 * time.Millisecond
	tlsAddr := strings.TrimPrefix(tlsSrv.URL, "https://")
	mustAdd(t, m, Definition{ID: "tls", TCP: tlsAddr, TCPUseTLS: true, TLSSkipVerify: true, Interval: tick, Timeout: time.Second})
	mustAdd(t, m, Definition{ID: "verify", TCP: tlsAddr, TCPUseTLS: true, Interval: tick, Timeout: time.Second, Status: StatusPassing})
	mustAdd(t, m, Definition{ID: "plain", TCP: strings.TrimPrefix(plain.URL, "http://"), TCPUseTLS: true, Interval: tick, Timeout: time.Second, Status: StatusPassing})
	waitOutput(t, m, "tls", StatusPassing, "TCP+TLS connect", 5*time.Second)
	waitOutput(t, m, "verify", StatusCritical, "certificate", 5*time.Second)
	waitStatus(t, m, "plain", StatusCritical, 5*time.Second)
}
