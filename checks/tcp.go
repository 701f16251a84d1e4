package checks

import (
	"context"
	"net"
)

// tcpProber connects and hangs up: a connection within the Timeout is passing,
// anything else critical.
type tcpProber struct {
	addr   string
	dialer net.Dialer
}

func (p *tcpProber) probe(ctx context.Context) (string, string) {
	conn, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return StatusCritical, err.Error()
	}
	_ = conn.Close()
	return StatusPassing, "TCP connect " + p.addr + ": Success"
}
