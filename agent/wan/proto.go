package wan

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/chorusdns/chorus/agent/sealing"
)

// Wire format. Packets and streams start with chorusMagic, the byte the
// gossip transport routes to Chorus rather than to memberlist, then
// typeWAN (which the record replication never uses), then a kind byte.
const (
	chorusMagic byte = 0xC5
	typeWAN     byte = 'W'

	kindNotice byte = 'n' // UDP: entries the sender holds, maybe one inline; no reply
	kindDigest byte = 'd' // UDP: every entry the sender holds; the receiver replies with what the sender lacks
	kindPull   byte = 'p' // TCP: a request for one datacenter's summary
)

// maxPacketBody bounds a notice or digest body; maxInline bounds an
// encoded summary sent inline in a notice, so that the datagram stays
// within one Ethernet frame after base64 and sealing.
const (
	maxPacketBody = 64 << 10
	maxInline     = 800
	maxEntries    = 1024
	maxFrame      = MaxSummarySize + 1024
)

// entry is a summary's identity and freshness as notices, digests and
// pulls carry it.
type entry struct {
	DC string `json:"d"`
	// V is the summary version.
	V uint64 `json:"v"`
	// C is when a speaker last saw the datacenter reachable (unix ms).
	C int64 `json:"c"`
	// R is the WAN round-trip time a speaker estimated (microseconds).
	R int64 `json:"r,omitempty"`
	// X is the summary's content hash, in the versions a speaker's
	// announcement lists (message.H).
	X uint64 `json:"x,omitempty"`
}

// message is the body of a notice or a digest.
type message struct {
	E []entry `json:"e"`
	// S is the encoded summary of E[0], inline, when it is small.
	S []byte `json:"s,omitempty"`
	// H lists, in a speaker's WAN announcement, the versions (and content
	// hashes) it holds of the other datacenters' summaries: a speaker
	// that finds its own datacenter's summary held at a higher version
	// with other content numbers its next one above it (a new speaker
	// whose clock runs behind). Several speakers of one datacenter build
	// summaries of the same content under their own versions; the hash
	// keeps them from outbidding each other.
	H []entry `json:"h,omitempty"`
}

var errMessage = errors.New("malformed wan message")

func decodeMessage(b []byte) (message, error) {
	var m message
	if len(b) > maxPacketBody {
		return m, fmt.Errorf("%w: %d bytes", errMessage, len(b))
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: %v", errMessage, err)
	}
	if len(m.E) > maxEntries || len(m.H) > maxEntries {
		return m, fmt.Errorf("%w: %d entries", errMessage, len(m.E)+len(m.H))
	}
	for _, e := range append(m.E, m.H...) {
		if e.V == 0 || len(e.DC) == 0 || len(e.DC) > 63 || e.C < 0 || e.R < 0 {
			return m, fmt.Errorf("%w: entry %+v", errMessage, e)
		}
	}
	if len(m.S) > 0 && len(m.E) == 0 {
		return m, fmt.Errorf("%w: inline summary without entry", errMessage)
	}
	return m, nil
}

// sealer frames the package's datagrams and streams, sealed with the
// gossip keyring (package sealing).
type sealer struct{ sealing.Sealer }

// packet returns a sealed datagram of kind.
func (s sealer) packet(kind byte, body []byte) ([]byte, error) {
	hdr := []byte{chorusMagic, typeWAN, kind}
	sealed, err := s.Seal(body, hdr)
	if err != nil {
		return nil, err
	}
	return append(hdr, sealed...), nil
}

// writeFrame writes a 4-byte length and the sealed body.
func (s sealer) writeFrame(w io.Writer, kind byte, body []byte) error {
	sealed, err := s.Seal(body, []byte{chorusMagic, typeWAN, kind, 'f'})
	if err != nil {
		return err
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(sealed)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	_, err = w.Write(sealed)
	return err
}

// readFrame reads one frame of at most limit bytes and opens it.
func (s sealer) readFrame(r io.Reader, kind byte, limit int) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := int(binary.BigEndian.Uint32(n[:]))
	if size > limit {
		return nil, fmt.Errorf("%w: frame of %d bytes, over %d", errMessage, size, limit)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return s.Open(buf, []byte{chorusMagic, typeWAN, kind, 'f'})
}

// pullResponse is a pull's answer: the entry (JSON, length-prefixed) and
// the encoded summary; an empty entry DC means "not held".
func encodePullResponse(e entry, enc []byte) []byte {
	j, _ := json.Marshal(e)
	out := binary.BigEndian.AppendUint16(nil, uint16(len(j)))
	out = append(out, j...)
	return append(out, enc...)
}

func decodePullResponse(b []byte) (entry, []byte, error) {
	var e entry
	if len(b) < 2 {
		return e, nil, fmt.Errorf("%w: short pull response", errMessage)
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return e, nil, fmt.Errorf("%w: short pull response", errMessage)
	}
	if err := json.Unmarshal(b[2:2+n], &e); err != nil {
		return e, nil, fmt.Errorf("%w: %v", errMessage, err)
	}
	return e, b[2+n:], nil
}
