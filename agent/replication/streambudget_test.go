package replication

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

// TestStreamBudget: streams beyond the count are refused; a stream whose
// reads take its address's or the total share past the bound fails and
// stays failed; closing gives the share back.
func TestStreamBudget(t *testing.T) {
	b := newStreamBudget()
	b.maxOpen, b.maxOpenIP, b.maxBytes, b.maxBytesIP = 3, 2, 300, 200
	pipe := func(payload []byte) net.Conn {
		client, server := net.Pipe()
		go func() {
			client.Write(payload)
			client.Close()
		}()
		return server
	}
	a1 := b.wrap(pipe(bytes.Repeat([]byte{1}, 150)), "10.0.0.1")
	a2 := b.wrap(pipe(bytes.Repeat([]byte{2}, 150)), "10.0.0.1")
	if a1 == nil || a2 == nil {
		t.Fatal("streams within the limits refused")
	}
	if c := b.wrap(pipe(nil), "10.0.0.1"); c != nil {
		t.Fatal("a third stream from one address accepted (limit 2)")
	}
	c1 := b.wrap(pipe(bytes.Repeat([]byte{3}, 150)), "10.0.0.2")
	if c1 == nil {
		t.Fatal("a stream from another address refused")
	}
	if c := b.wrap(pipe(nil), "10.0.0.3"); c != nil {
		t.Fatal("a fourth stream accepted (limit 3)")
	}
	if _, err := io.ReadAll(a1); err != nil {
		t.Fatalf("150 bytes of 200 from the address: %v", err)
	}
	// 300 bytes from 10.0.0.1 > 200.
	if _, err := io.ReadAll(a2); !errors.Is(err, errStreamBudget) {
		t.Fatalf("reading past the address's share: %v, want errStreamBudget", err)
	}
	if _, err := a2.Read(make([]byte, 1)); !errors.Is(err, errStreamBudget) {
		t.Fatalf("a stream past its share read again: %v", err)
	}
	// Past the total (450 > 300) though within 10.0.0.2's share.
	if _, err := io.ReadAll(c1); !errors.Is(err, errStreamBudget) {
		t.Fatalf("reading past the total: %v, want errStreamBudget", err)
	}
	for _, c := range []net.Conn{a1, a2, c1} {
		c.Close()
		c.Close() // gives back once
	}
	if b.open != 0 || b.bytes != 0 || len(b.perIP) != 0 {
		t.Fatalf("after closing every stream: %d open, %d bytes, %d addresses", b.open, b.bytes, len(b.perIP))
	}
}

// TestStreamBudgetClaims: an encrypted memberlist message's claimed length
// counts whole when its header arrives, so a claim past what is left
// fails before any of its body is read; a claim within it is read
// without being counted twice, and bytes past the claim count as read.
func TestStreamBudgetClaims(t *testing.T) {
	b := newStreamBudget()
	b.maxOpen, b.maxOpenIP, b.maxBytes, b.maxBytesIP = 8, 8, 1000, 300
	header := func(claim uint32) []byte {
		return []byte{memberlistEncrypt, byte(claim >> 24), byte(claim >> 16), byte(claim >> 8), byte(claim)}
	}
	stream := func(payload []byte) net.Conn {
		client, server := net.Pipe()
		go func() {
			client.Write(payload)
			client.Close()
		}()
		return b.wrap(server, "10.0.0.1")
	}
	// A 20 MiB claim, sent one byte at a time after its header.
	huge := stream(append(header(20<<20), bytes.Repeat([]byte{0xA5}, 64)...))
	got, err := io.ReadAll(huge)
	if !errors.Is(err, errStreamBudget) {
		t.Fatalf("a claim past the share: %v, want errStreamBudget", err)
	}
	if len(got) > memberlistHeader {
		t.Fatalf("%d bytes of a refused claim handed on, want the header at most", len(got))
	}
	huge.Close()
	// A 200-byte claim and its body: 205 counted, not 405.
	ok := stream(append(header(200), bytes.Repeat([]byte{1}, 200)...))
	buf := make([]byte, 64)
	n := 0
	for {
		k, err := ok.Read(buf)
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("a claim within the share: %v after %d bytes", err, n)
		}
		b.mu.Lock()
		counted := b.bytes
		b.mu.Unlock()
		if n >= memberlistHeader && counted != 205 {
			t.Fatalf("after %d bytes %d counted, want the claim and its header (205)", n, counted)
		}
	}
	// Bytes past a claim count as they come (95 of the share are left
	// while the stream above is open: 55 for this claim, then too few).
	over := stream(append(append(header(50), bytes.Repeat([]byte{2}, 50)...), bytes.Repeat([]byte{3}, 200)...))
	if _, err := io.ReadAll(over); !errors.Is(err, errStreamBudget) {
		t.Fatalf("reading past the claim and the share: %v, want errStreamBudget", err)
	}
	ok.Close()
	over.Close()
	if b.open != 0 || b.bytes != 0 {
		t.Fatalf("after closing: %d open, %d bytes", b.open, b.bytes)
	}
}
