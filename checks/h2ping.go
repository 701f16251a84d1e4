package checks

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"golang.org/x/net/http2"
)

// h2pingProber opens an HTTP/2 connection and sends one PING frame, as
// Consul's H2PING check does: the PING's acknowledgement within the
// Timeout is passing, anything else critical. With TLS, ALPN offers only
// "h2"; without, the connection speaks HTTP/2 at once (prior knowledge,
// h2c). Each probe opens and closes its own connection.
type h2pingProber struct {
	addr   string
	tls    *tls.Config // nil: cleartext
	dialer net.Dialer
}

func newH2PingProber(d Definition) *h2pingProber {
	p := &h2pingProber{addr: d.H2PING}
	if d.H2PingUseTLS {
		p.tls = &tls.Config{
			InsecureSkipVerify: d.TLSSkipVerify, // the check's explicit choice
			ServerName:         d.TLSServerName,
			NextProtos:         []string{http2.NextProtoTLS},
		}
	}
	return p
}

func (p *h2pingProber) probe(ctx context.Context) (string, string) {
	conn, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return StatusCritical, fmt.Sprintf("HTTP2 ping failed: %v", err)
	}
	if p.tls != nil {
		cfg := p.tls.Clone()
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(p.addr)
			cfg.ServerName = host
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return StatusCritical, fmt.Sprintf("HTTP2 ping failed: %v", err)
		}
		if proto := tc.ConnectionState().NegotiatedProtocol; proto != http2.NextProtoTLS {
			_ = tc.Close()
			return StatusCritical, fmt.Sprintf("HTTP2 ping failed: the server did not agree to HTTP/2 (ALPN %q)", proto)
		}
		conn = tc
	}
	t := &http2.Transport{AllowHTTP: p.tls == nil}
	cc, err := t.NewClientConn(conn)
	if err != nil {
		_ = conn.Close()
		return StatusCritical, fmt.Sprintf("HTTP2 ping failed: %v", err)
	}
	defer func() { _ = cc.Close() }()
	if err := cc.Ping(ctx); err != nil {
		return StatusCritical, fmt.Sprintf("HTTP2 ping failed: %v", err)
	}
	return StatusPassing, "HTTP2 ping was successful"
}
