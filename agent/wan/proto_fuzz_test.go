package wan

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/hashicorp/memberlist"

	"github.com/chorusdns/chorus/agent/sealing"
)

// FuzzDecodePullResponse: a pull's answer (from the speaker or LAN peer
// pulled) never panics, and what decodes encodes back to the same bytes
// but for the JSON's spelling.
func FuzzDecodePullResponse(f *testing.F) {
	f.Add(encodePullResponse(entry{DC: "dc2", V: 7, C: 5}, []byte{1, 2, 3}))
	f.Add(encodePullResponse(entry{}, nil))
	f.Add([]byte{0xff, 0xff, '{'})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, enc, err := decodePullResponse(b)
		if err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(b))
		if !bytes.Equal(enc, b[2+n:]) {
			t.Fatalf("summary bytes %x are not what follows the entry", enc)
		}
		again, enc2, err := decodePullResponse(encodePullResponse(e, enc))
		if err != nil || again != e || !bytes.Equal(enc2, enc) {
			t.Fatalf("pull response does not round-trip: %+v %v", again, err)
		}
	})
}

// FuzzReadFrame: a stream's frames, sealed or not, never panic, never
// allocate more than the limit, and only what was sealed with the key
// opens.
func FuzzReadFrame(f *testing.F) {
	kr, _ := memberlist.NewKeyring(nil, bytes.Repeat([]byte{7}, 32))
	sealed := sealer{sealing.Sealer{Keyring: kr}}
	plain := sealer{}
	var good bytes.Buffer
	sealed.writeFrame(&good, kindPull, []byte(`{"d":"dc2"}`))
	f.Add(good.Bytes())
	var p bytes.Buffer
	plain.writeFrame(&p, kindPull, []byte(`{"d":"dc2"}`))
	f.Add(p.Bytes())
	f.Add(binary.BigEndian.AppendUint32(nil, 64<<20))
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 256
		for _, s := range []sealer{plain, sealed} {
			r := bytes.NewReader(b)
			for range 4 {
				body, err := s.readFrame(r, kindPull, limit)
				if err != nil {
					break
				}
				if len(body) > limit {
					t.Fatalf("body of %d bytes over the limit of %d", len(body), limit)
				}
			}
		}
	})
}
