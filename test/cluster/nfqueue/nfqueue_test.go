package nfqueue

import (
	"encoding/binary"
	"syscall"
	"testing"
)

func TestMessages(t *testing.T) {
	m := verdict(7, 3, 0x01020304, verdictAccept)
	if got := binary.NativeEndian.Uint32(m[0:4]); int(got) != len(m) || len(m) != 16+4+12 {
		t.Fatalf("length field %d, message %d bytes", got, len(m))
	}
	if typ := binary.NativeEndian.Uint16(m[4:6]); typ != subsysQueue<<8|msgVerdict {
		t.Errorf("type %#x", typ)
	}
	if q := binary.BigEndian.Uint16(m[18:20]); q != 3 {
		t.Errorf("queue %d, want 3 (big-endian res_id)", q)
	}
	if v, id := binary.BigEndian.Uint32(m[24:28]), binary.BigEndian.Uint32(m[28:32]); v != verdictAccept || id != 0x01020304 {
		t.Errorf("verdict %d id %#x", v, id)
	}

	c := configParams(2, 0, 4096)
	// header 16 + nfgen 4 + params attr (4+5 → 12) + maxlen attr 8
	if len(c) != 40 {
		t.Fatalf("config params message is %d bytes, want 40", len(c))
	}
	if l := binary.NativeEndian.Uint16(c[20:22]); l != 9 {
		t.Errorf("params attribute length %d, want 9 (unpadded)", l)
	}
	if mode := c[28]; mode != copyMeta {
		t.Errorf("copy mode %d", mode)
	}
	if flags := binary.NativeEndian.Uint16(c[6:8]); flags != flagRequest|flagAck {
		t.Errorf("flags %#x", flags)
	}
	if cmd := configCmd(1, 0, cmdBind); cmd[24] != cmdBind || cmd[27] != syscall.AF_INET {
		t.Errorf("bind command payload % x", cmd[24:28])
	}
}

func TestSplitMessages(t *testing.T) {
	// A packet notice: header, nfgen, a hwaddr-ish attribute to skip, then
	// NFQA_PACKET_HDR with ID 42; followed by an error (ack) message.
	pkt := build(0, msgPacket, 0, 0, attr(9, []byte{1, 2, 3}), attr(attrPacketHdr, []byte{0, 0, 0, 42, 8, 0, 3}))
	ack := make([]byte, 16+4+16)
	binary.NativeEndian.PutUint32(ack[0:4], uint32(len(ack)))
	binary.NativeEndian.PutUint16(ack[4:6], nlmsgError)
	binary.NativeEndian.PutUint32(ack[8:12], 5)
	nack := append([]byte(nil), ack...)
	code := -int32(syscall.EBUSY)
	binary.NativeEndian.PutUint32(nack[16:20], uint32(code))
	msgs := splitMessages(append(append(pkt, ack...), nack...))
	if len(msgs) != 3 {
		t.Fatalf("got %d messages, want 3", len(msgs))
	}
	if !msgs[0].hasID || msgs[0].id != 42 {
		t.Errorf("packet id %d (found %v), want 42", msgs[0].id, msgs[0].hasID)
	}
	if msgs[1].typ != nlmsgError || msgs[1].seq != 5 || msgs[1].err != nil {
		t.Errorf("ack: %+v", msgs[1])
	}
	if msgs[2].err != syscall.EBUSY {
		t.Errorf("nack error %v, want EBUSY", msgs[2].err)
	}
	// Truncated input never panics.
	for i := range len(pkt) {
		splitMessages(pkt[:i])
	}
}
