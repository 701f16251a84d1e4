package replication

import (
	"net"
	"time"
)

// Stream deadlines. A Chorus stream may carry records up to
// catalog.MaxRecordSize (16 MiB), which take longer than pullTimeout to
// produce, send and read on a busy host, so a stream's deadline follows
// its progress: every read or write may take a step (pullTimeout when
// serving; responseTimeout when asking, as the peer may first have to
// encode a record of up to 16 MiB), and the stream as a whole at most
// maxStreamLife. A peer that stops sending or reading is dropped after
// one step; one that trickles bytes holds a stream (of the bounded
// maxStreams) for at most maxStreamLife.
const (
	responseTimeout = 3 * pullTimeout
	maxStreamLife   = 60 * time.Second
)

// progressConn is a net.Conn whose deadline moves with each read and
// write, capped at the end of its life.
type progressConn struct {
	net.Conn
	step time.Duration
	end  time.Time
}

// withProgressDeadline wraps c with deadlines that follow its progress,
// one step per read or write, starting now.
func withProgressDeadline(c net.Conn, step time.Duration) *progressConn {
	p := &progressConn{Conn: c, step: step, end: time.Now().Add(maxStreamLife)}
	p.extend()
	return p
}

func (p *progressConn) extend() {
	d := time.Now().Add(p.step)
	if d.After(p.end) {
		d = p.end
	}
	p.Conn.SetDeadline(d)
}

func (p *progressConn) Read(b []byte) (int, error) {
	p.extend()
	return p.Conn.Read(b)
}

// writeChunk is how much of a write one step covers: a 16 MiB frame is
// written in pieces, each with its own step.
const writeChunk = 64 << 10

func (p *progressConn) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		p.extend()
		m, err := p.Conn.Write(b[n:min(len(b), n+writeChunk)])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
