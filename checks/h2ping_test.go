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

	"golang.org/x/net/http2"
)

// TestH2PingCheck pings a cleartext HTTP/2 server (prior knowledge) and an
// HTTP/2 server over TLS; an HTTP/1.1-only server and a closed port fail.
func TestH2PingCheck(t *testing.T) {
	h2c, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h2c.Close() })
	go func() {
		srv := &http2.Server{}
		for {
			c, err := h2c.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(c, &http2.ServeConnOpts{Handler: http.NotFoundHandler()})
		}
	}()

	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.EnableHTTP2 = true
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the verifying check's refusals
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	tlsAddr := strings.TrimPrefix(tlsSrv.URL, "https://")

	h1 := httptest.NewServer(http.NotFoundHandler()) // HTTP/1.1 only
	t.Cleanup(h1.Close)
	h1Addr := strings.TrimPrefix(h1.URL, "http://")

	m, _ := startManager(t, Config{})
	tick := 100 * time.Millisecond
	mustAdd(t, m, Definition{ID: "h2c", H2PING: h2c.Addr().String(), Interval: tick, Timeout: time.Second})
	mustAdd(t, m, Definition{ID: "tls", H2PING: tlsAddr, H2PingUseTLS: true, TLSSkipVerify: true, Interval: tick, Timeout: time.Second})
	mustAdd(t, m, Definition{ID: "tls-verify", H2PING: tlsAddr, H2PingUseTLS: true, Interval: tick, Timeout: time.Second, Status: StatusPassing})
	mustAdd(t, m, Definition{ID: "h1", H2PING: h1Addr, Interval: tick, Timeout: time.Second, Status: StatusPassing})

	res := waitStatus(t, m, "h2c", StatusPassing, 5*time.Second)
	if res.Output != "HTTP2 ping was successful" {
		t.Errorf("output %q", res.Output)
	}
	waitStatus(t, m, "tls", StatusPassing, 5*time.Second)
	waitOutput(t, m, "tls-verify", StatusCritical, "certificate", 5*time.Second)
	waitOutput(t, m, "h1", StatusCritical, "HTTP2 ping failed", 5*time.Second)

	h2c.Close()
	waitOutput(t, m, "h2c", StatusCritical, "HTTP2 ping failed", 5*time.Second)
}
