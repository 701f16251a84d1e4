package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// udpProber sends one empty datagram and waits for the Timeout, as Consul's
// UDP check does: an error on the socket (the ICMP port unreachable of a
// closed port, reported by the kernel on the connected socket) is
// critical; a reply, or silence until the Timeout, is passing. A passing
// probe therefore always takes the whole Timeout.
type udpProber struct {
	addr   string
	dialer net.Dialer
}

func (p *udpProber) probe(ctx context.Context) (string, string) {
	conn, err := p.dialer.DialContext(ctx, "udp", p.addr)
	if err != nil {
		return StatusCritical, err.Error()
	}
	defer func() { _ = conn.Close() }()
	// Stopping the check unblocks the read at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	if _, err := conn.Write(nil); err != nil {
		return StatusCritical, err.Error()
	}
	_, err = conn.Read(make([]byte, 1))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return StatusPassing, fmt.Sprintf("UDP connect %s: Success", p.addr)
	}
	return StatusCritical, err.Error()
}
