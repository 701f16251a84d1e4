package dns

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/chorusdns/chorus/catalog"
	"github.com/miekg/dns"
)

// fuzzSeeds are queries that reach every answer path; the committed
// corpus under testdata/fuzz/FuzzServeRaw holds them packed.
func fuzzSeeds() []*dns.Msg {
	var out []*dns.Msg
	add := func(name string, qt uint16, edns uint16, ecs bool) {
		m := query(name, qt)
		if edns > 0 {
			m.SetEdns0(edns, true)
			if ecs {
				m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(198, 51, 100, 0)})
			}
		}
		out = append(out, m)
	}
	add("web.service.chorus.", dns.TypeA, 0, false)
	add("WEB.service.chorus.", dns.TypeSRV, 1232, false)
	add("big.service.chorus.", dns.TypeSRV, 0, false)
	add("big.service.chorus.", dns.TypeA, 4096, true)
	add("hash.service.chorus.", dns.TypeA, 1232, true)
	add("_web._tcp.chorus.", dns.TypePTR, 0, false)
	add("_services._dns-sd._udp.chorus.", dns.TypePTR, 0, false)
	add("web-n1._web._tcp.chorus.", dns.TypeSRV, 0, false)
	add("n1.node.consul.", dns.TypeTXT, 0, false)
	add("0a000001.addr.chorus.", dns.TypeA, 0, false)
	add("1.0.0.10.in-addr.arpa.", dns.TypePTR, 0, false)
	add("chorus.", dns.TypeNS, 0, false)
	add("chorus.", dns.TypeANY, 512, false)
	add("nope.service.chorus.", dns.TypeAAAA, 0, false)
	add("example.com.", dns.TypeA, 0, false)
	return out
}

// fuzzStore is the fixture plus a large and a hashed service.
func fuzzStore(t testing.TB) *catalog.Store {
	st := fixture(t)
	for i := 0; i < 60; i++ {
		apply(t, st, node{name: "big" + itoa(uint32(i)), addr: "10.1.0." + itoa(uint32(i+1)), zone: "a", services: []svc{
			{name: "big", port: 1000 + i, meta: map[string]string{"k": "v"}},
			{name: "hash", port: 1, meta: map[string]string{MetaPolicy: PolicyHash}},
		}})
	}
	return st
}

// FuzzServeRaw feeds raw packets to the whole handler, as the server would
// after miekg/dns unpacked them (coredns plugin/pkg/fuzz/do.go), and checks
// the reply: at most one, well formed, same ID and question, within the
// size limit of its transport.
func FuzzServeRaw(f *testing.F) {
	for _, m := range fuzzSeeds() {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	cfg := baseConfig()
	cfg.DNSSD = true
	s, err := New(cfg, fuzzStore(f), nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := new(dns.Msg)
		if err := r.Unpack(data); err != nil {
			return // miekg/dns answers FORMERR before the handler
		}
		for _, tcp := range []bool{false, true} {
			w := newRecorder(tcp)
			s.ServeDNS(w, r)
			checkFuzzReply(t, r, w, tcp)
		}
	})
}

func checkFuzzReply(t *testing.T, r *dns.Msg, w *recorder, tcp bool) {
	t.Helper()
	if w.writes > 1 {
		t.Fatalf("%d writes", w.writes)
	}
	if w.writes == 0 {
		if !r.Response {
			t.Fatalf("no reply to a query")
		}
		return
	}
	if w.msg != nil {
		return // forwarded: written by miekg/dns
	}
	m := new(dns.Msg)
	if err := m.Unpack(w.wire); err != nil {
		t.Fatalf("reply does not unpack: %v\n% x", err, w.wire)
	}
	if m.Id != r.Id || !m.Response {
		t.Fatalf("id %d/%d, QR %v", m.Id, r.Id, m.Response)
	}
	if binary.BigEndian.Uint16(w.wire[4:]) == 1 && len(r.Question) == 1 {
		if len(m.Question) != 1 || m.Question[0] != r.Question[0] {
			t.Fatalf("question %v, want %v", m.Question, r.Question)
		}
	}
	limit := dns.MaxMsgSize
	if !tcp {
		limit = dns.MinMsgSize
		if o := r.IsEdns0(); o != nil && int(o.UDPSize()) > limit {
			limit = min(int(o.UDPSize()), DefaultMaxUDPSize)
		}
	}
	if len(w.wire) > limit {
		t.Fatalf("reply of %d bytes over the %d limit", len(w.wire), limit)
	}
	// Packing the parsed reply again must give the same records: no
	// pointer of ours may point outside the question.
	again, err := m.Pack()
	if err != nil {
		t.Fatalf("repack: %v", err)
	}
	m2 := new(dns.Msg)
	if err := m2.Unpack(again); err != nil || m2.String() != m.String() {
		t.Fatalf("reply does not survive a repack: %v", err)
	}
	if !bytes.Equal(w.wire[:2], again[:2]) {
		t.Fatalf("header changed")
	}
}

// TestFuzzSeedsAnswer runs the seeds once as a plain test, so that the
// corpus paths are exercised by every go test run.
func TestFuzzSeedsAnswer(t *testing.T) {
	cfg := baseConfig()
	cfg.DNSSD = true
	s, err := New(cfg, fuzzStore(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range fuzzSeeds() {
		for _, tcp := range []bool{false, true} {
			w := newRecorder(tcp)
			s.ServeDNS(w, m)
			checkFuzzReply(t, m, w, tcp)
			if r := w.reply(t); r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError && r.Rcode != dns.RcodeRefused {
				t.Errorf("%s: %s", m.Question[0].Name, dns.RcodeToString[r.Rcode])
			}
		}
	}
}
