package checks

import (
	"context"
	"crypto/tls"
	"net"
)

// tcpProber connects and hangs up: a connection within the Timeout is passing,
// anything else critical. With TCPUseTLS it also completes a TLS handshake
// before hanging up, as Consul's tcp_use_tls does.
type tcpProber struct {
	addr   string
	tls    *tls.Config // nil: no handshake
	dialer net.Dialer
}

func newTCPProber(d Definition) *tcpProber {
	p := &tcpProber{addr: d.TCP}
	if d.TCPUseTLS {
		p.tls = &tls.Config{
			InsecureSkipVerify: d.TLSSkipVerify, // the check's explicit choice
			ServerName:         d.TLSServerName,
		}
	}
	return p
}

func (p *tcpProber) probe(ctx context.Context) (string, string) {
	conn, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return StatusCritical, err.Error()
	}
	defer func() { _ = conn.Close() }()
	if p.tls == nil {
		return StatusPassing, "TCP connect " + p.addr + ": Success"
	}
	cfg := p.tls.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(p.addr)
	}
	if err := tls.Client(conn, cfg).HandshakeContext(ctx); err != nil {
		return StatusCritical, "TCP+TLS connect " + p.addr + ": " + err.Error()
	}
	return StatusPassing, "TCP+TLS connect " + p.addr + ": Success"
}
