package replication

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"

	"github.com/chorusdns/chorus/agent/sealing"
	"github.com/chorusdns/chorus/catalog"
)

// Bounds of what a peer may send on a Chorus stream or in a packet. No
// buffer larger than the frame limit of its stream type is allocated, and
// with encryption on none before the frame's header has been opened with
// a gossip key.
const (
	// maxPullNames bounds the names of one pull request; a pull of more
	// nodes asks for the first ones and the next anti-entropy round asks
	// for the rest.
	maxPullNames = 4000
	// maxPullRequest bounds a pull request frame: maxPullNames names of
	// at most 253 bytes, quoted (JSON escapes none of a valid name's
	// characters), with commas.
	maxPullRequest = maxPullNames*(253+3) + 2
	// maxRecordFrame bounds a pulled record's frame.
	maxRecordFrame = catalog.MaxRecordSize
	// maxVectorEntries bounds the nodes of a version vector, and
	// maxVectorBytes its JSON, compressed (the frame) and decompressed:
	// maxVectorEntries entries of a 253-byte name and a 20-digit version
	// need 4.5 MB.
	maxVectorEntries = 1 << 14
	maxVectorBytes   = 8 << 20
)

// Frames on a Chorus stream. In plain text a frame is a 4-byte big-endian
// length and the body. Sealed, it is a header of fixed size (the body's
// sealed length, sealed on its own) and the sealed body, whose additional
// data includes the header's nonce, so a body cannot be moved under
// another header. The receiver opens the header before it allocates
// anything for the body.
const (
	plainHeader  = 4
	sealedHeader = sealing.NonceSize + 4 + sealing.TagSize
)

// writeFrame writes one frame of stream type typ.
func (s *Syncer) writeFrame(w io.Writer, typ byte, body []byte) error {
	if s.seal.Keyring == nil {
		var hdr [plainHeader]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
		if _, err := w.Write(hdr[:]); err != nil {
			return err
		}
		_, err := w.Write(body)
		if err == nil {
			s.metrics.count(packetKind(typ), dirSent, plainHeader+len(body))
		}
		return err
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(sealing.NonceSize+len(body)+sealing.TagSize))
	hdr, err := s.seal.Seal(n[:], []byte{chorusMagic, typ, 'h'})
	if err != nil {
		return err
	}
	sealed, err := s.seal.Seal(body, append([]byte{chorusMagic, typ, 'b'}, hdr[:sealing.NonceSize]...))
	if err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err = w.Write(sealed)
	if err == nil {
		s.metrics.count(packetKind(typ), dirSent, len(hdr)+len(sealed))
	}
	return err
}

// readFrame reads one frame of stream type typ written by writeFrame,
// refusing bodies over max bytes (before sealing). Sealed, nothing is
// allocated for the body before its header opens; in plain text the
// buffer grows with the bytes that actually arrive, up to max.
func (s *Syncer) readFrame(r io.Reader, typ byte, max int) ([]byte, error) {
	if s.seal.Keyring == nil {
		var hdr [plainHeader]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if int64(n) > int64(max) {
			return nil, fmt.Errorf("%w: frame of %d bytes exceeds %d", errFrame, n, max)
		}
		b, err := io.ReadAll(io.LimitReader(r, int64(n)))
		if err != nil {
			return nil, err
		}
		if len(b) != int(n) {
			return nil, io.ErrUnexpectedEOF
		}
		s.metrics.count(packetKind(typ), dirReceived, plainHeader+len(b))
		return b, nil
	}
	var hdr [sealedHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	nb, err := s.seal.Open(hdr[:], []byte{chorusMagic, typ, 'h'})
	if err != nil {
		return nil, err
	}
	if len(nb) != 4 {
		return nil, fmt.Errorf("%w: header of %d bytes", errFrame, len(nb))
	}
	n := binary.BigEndian.Uint32(nb)
	if int64(n) > int64(max)+sealing.NonceSize+sealing.TagSize || n < sealing.NonceSize+sealing.TagSize {
		return nil, fmt.Errorf("%w: sealed frame of %d bytes, limit %d", errFrame, n, max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	s.metrics.count(packetKind(typ), dirReceived, sealedHeader+len(buf))
	return s.seal.Open(buf, append([]byte{chorusMagic, typ, 'b'}, hdr[:sealing.NonceSize]...))
}

// noticeBody is a notice: the node's name (length-prefixed), its version,
// and the encoded record when it is carried inline.
func noticeBody(name string, version uint64, inline []byte) []byte {
	b := make([]byte, 0, 1+len(name)+8+len(inline))
	b = append(b, byte(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint64(b, version)
	return append(b, inline...)
}

// decodeNotice splits a notice body. inline aliases body.
func decodeNotice(body []byte) (name string, version uint64, inline []byte, err error) {
	if len(body) < 1 || len(body) < 1+int(body[0])+8 {
		return "", 0, nil, fmt.Errorf("notice of %d bytes is too short", len(body))
	}
	n := int(body[0])
	name = string(body[1 : 1+n])
	if err := catalog.ValidateNodeName(name); err != nil {
		return "", 0, nil, fmt.Errorf("notice: %w", err)
	}
	return name, binary.BigEndian.Uint64(body[1+n:]), body[1+n+8:], nil
}

// pullRequest encodes the names a pull asks for.
func pullRequest(names []string) []byte {
	b, _ := json.Marshal(names)
	return b
}

// decodePullRequest parses a pull request: at most maxPullNames names.
func decodePullRequest(b []byte) ([]string, error) {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return nil, fmt.Errorf("pull request: %v", err)
	}
	if len(names) > maxPullNames {
		return nil, fmt.Errorf("pull request of %d names, limit %d", len(names), maxPullNames)
	}
	return names, nil
}

// vectorMsg is the body of a vector exchange. Name is the sender's node
// name: the receiver pulls what the sender holds newer from the gossip
// address its member list has for that name, never from an address the
// message could claim.
type vectorMsg struct {
	Name   string
	Vector map[string]uint64
}

func encodeVector(m vectorMsg) []byte {
	var buf bytes.Buffer
	zw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	json.NewEncoder(zw).Encode(m)
	zw.Close()
	return buf.Bytes()
}

// decodeVector parses a vector message: at most maxVectorBytes of JSON
// and maxVectorEntries entries, counted as they are read, so a vector of
// many small entries is refused before it is built.
func decodeVector(b []byte) (*vectorMsg, error) {
	zr := flate.NewReader(bytes.NewReader(b))
	defer zr.Close()
	raw, err := io.ReadAll(io.LimitReader(zr, maxVectorBytes+1))
	if err != nil {
		return nil, fmt.Errorf("decode vector: %v", err)
	}
	if len(raw) > maxVectorBytes {
		return nil, fmt.Errorf("decode vector: more than %d bytes", maxVectorBytes)
	}
	m, err := parseVector(json.NewDecoder(bytes.NewReader(raw)))
	if err != nil {
		return nil, fmt.Errorf("decode vector: %w", err)
	}
	return m, nil
}

// parseVector reads {"Name": "...", "Vector": {"node": version, ...}};
// other keys are skipped.
func parseVector(dec *json.Decoder) (*vectorMsg, error) {
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	m := &vectorMsg{Vector: map[string]uint64{}}
	for dec.More() {
		key, err := stringToken(dec)
		if err != nil {
			return nil, err
		}
		switch key {
		case "Name":
			if err := dec.Decode(&m.Name); err != nil {
				return nil, err
			}
		case "Vector":
			if err := expectDelim(dec, '{'); err != nil {
				return nil, err
			}
			for dec.More() {
				node, err := stringToken(dec)
				if err != nil {
					return nil, err
				}
				var v uint64
				if err := dec.Decode(&v); err != nil {
					return nil, err
				}
				m.Vector[node] = v
				if len(m.Vector) > maxVectorEntries {
					return nil, fmt.Errorf("more than %d entries", maxVectorEntries)
				}
			}
			if err := expectDelim(dec, '}'); err != nil {
				return nil, err
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, err
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	return m, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != d {
		return fmt.Errorf("want %v, got %v", d, t)
	}
	return nil
}

func stringToken(dec *json.Decoder) (string, error) {
	t, err := dec.Token()
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", fmt.Errorf("want a string, got %v", t)
	}
	return s, nil
}
