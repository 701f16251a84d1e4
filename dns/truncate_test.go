package dns

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chorusdns/chorus/catalog"
	"github.com/miekg/dns"
)

// bigStore holds service "big" with n instances, each on its own node in
// zone a with meta, so SRV answers carry glue and TXT.
func bigStore(t testing.TB, n int) *catalog.Store {
	t.Helper()
	st := catalog.NewStore()
	var nodes []node
	for i := 0; i < n; i++ {
		nodes = append(nodes, node{
			name: fmt.Sprintf("big%02d", i), addr: fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), zone: "a",
			services: []svc{{name: "big", port: 8000 + i, meta: map[string]string{"i": fmt.Sprint(i)}}},
		})
	}
	apply(t, st, nodes...)
	return st
}

// checkConsistent verifies that the additional section holds exactly the
// glue and TXT of the SRV targets in the answer.
func checkConsistent(t *testing.T, r *dns.Msg) {
	t.Helper()
	targets := map[string]bool{}
	for _, rr := range r.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			targets[strings.ToLower(srv.Target)] = true
		}
	}
	glue := map[string]int{}
	for _, rr := range r.Extra {
		switch rr := rr.(type) {
		case *dns.A:
			glue[strings.ToLower(rr.Hdr.Name)]++
			if !targets[strings.ToLower(rr.Hdr.Name)] {
				t.Errorf("glue %s without its SRV", rr.Hdr.Name)
			}
		case *dns.TXT:
			if !targets[strings.ToLower(rr.Hdr.Name)] {
				t.Errorf("TXT %s without its SRV", rr.Hdr.Name)
			}
		}
	}
	for tg := range targets {
		if glue[tg] != 1 {
			t.Errorf("target %s has %d glue records", tg, glue[tg])
		}
	}
}

func TestTruncation(t *testing.T) {
	st := bigStore(t, 120)
	ts := startServer(t, baseConfig(), st)
	cases := []struct {
		name  string
		qtype uint16
		edns  uint16 // 0: none
		limit int
		want  int // answers expected when not truncated; -1: truncated
	}{
		{"A no EDNS", dns.TypeA, 0, 512, -1},
		{"SRV no EDNS", dns.TypeSRV, 0, 512, -1},
		{"A EDNS 1232", dns.TypeA, 1232, 1232, -1},
		{"SRV EDNS 1232", dns.TypeSRV, 1232, 1232, -1},
		{"SRV EDNS 4096 capped at 1232", dns.TypeSRV, 4096, 1232, -1},
		{"A EDNS below 512 counts as 512", dns.TypeA, 300, 512, -1},
		{"A EDNS 4096 capped at 1232", dns.TypeA, 4096, 1232, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := query("big.service.chorus.", tc.qtype)
			if tc.edns > 0 {
				m.SetEdns0(tc.edns, false)
			}
			wire, r := rawExchange(t, ts.addr, m)
			if len(wire) > tc.limit {
				t.Fatalf("reply is %d bytes, limit %d", len(wire), tc.limit)
			}
			if !r.Truncated {
				t.Errorf("TC not set with %d answers", len(r.Answer))
			}
			if len(r.Answer) == 0 {
				t.Errorf("no answers at all")
			}
			if tc.edns > 0 && r.IsEdns0() == nil {
				t.Errorf("OPT missing from a truncated reply")
			}
			if tc.edns == 0 && r.IsEdns0() != nil {
				t.Errorf("OPT in a reply to a query without one")
			}
			// Whole records only, and the reply was filled: one more
			// answer of the smallest kind would not have fit.
			if slack := tc.limit - len(wire); slack >= 16 && tc.qtype == dns.TypeA {
				t.Errorf("%d bytes left unused under the limit", slack)
			}
			checkConsistent(t, r)
		})
	}
	t.Run("TCP gives the full answer", func(t *testing.T) {
		for _, qt := range []uint16{dns.TypeA, dns.TypeSRV} {
			r := exchange(t, "tcp", ts.addr, query("big.service.chorus.", qt))
			if r.Truncated || len(r.Answer) != 120 {
				t.Errorf("%s over TCP: TC=%v, %d answers", dns.TypeToString[qt], r.Truncated, len(r.Answer))
			}
			checkConsistent(t, r)
		}
	})
	t.Run("small answer is not truncated", func(t *testing.T) {
		st := bigStore(t, 3)
		ts := startServer(t, baseConfig(), st)
		_, r := rawExchange(t, ts.addr, query("big.service.chorus.", dns.TypeSRV))
		if r.Truncated || len(r.Answer) != 3 || len(r.Extra) != 6 {
			t.Errorf("TC=%v answers=%d extra=%d", r.Truncated, len(r.Answer), len(r.Extra))
		}
	})
}

func TestTruncationWithECSCountsTheOption(t *testing.T) {
	st := bigStore(t, 120)
	ts := startServer(t, baseConfig(), st)
	for _, size := range []uint16{512, 700, 1232} {
		m := query("big.service.chorus.", dns.TypeA)
		m.SetEdns0(size, true)
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 56, Address: []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0}})
		wire, r := rawExchange(t, ts.addr, m)
		if len(wire) > int(size) {
			t.Errorf("EDNS %d: reply is %d bytes", size, len(wire))
		}
		if !r.Truncated {
			t.Errorf("EDNS %d: TC not set", size)
		}
		if o := r.IsEdns0(); o == nil || len(o.Option) != 1 {
			t.Errorf("EDNS %d: ECS not echoed: %v", size, o)
		}
	}
}

func TestAnswerLimits(t *testing.T) {
	st := bigStore(t, 10)
	cfg := baseConfig()
	cfg.ARecordLimit = 3
	cfg.UDPAnswerLimit = 5
	ts := startServer(t, cfg, st)
	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, network, ts.addr, query("big.service.chorus.", dns.TypeA))
		if len(r.Answer) != 3 || r.Truncated {
			t.Errorf("%s A: %d answers, TC=%v; want 3 and no TC", network, len(r.Answer), r.Truncated)
		}
	}
	// a_record_limit does not apply to SRV; udp_answer_limit applies to
	// UDP without EDNS only.
	r := exchange(t, "udp", ts.addr, query("big.service.chorus.", dns.TypeSRV))
	if len(r.Answer) != 5 || r.Truncated {
		t.Errorf("UDP SRV: %d answers, TC=%v; want 5", len(r.Answer), r.Truncated)
	}
	checkConsistent(t, r)
	m := query("big.service.chorus.", dns.TypeSRV)
	m.SetEdns0(4096, false)
	if r := exchange(t, "udp", ts.addr, m); len(r.Answer) != 10 {
		t.Errorf("UDP SRV with EDNS: %d answers, want 10", len(r.Answer))
	}
	if r := exchange(t, "tcp", ts.addr, query("big.service.chorus.", dns.TypeSRV)); len(r.Answer) != 10 {
		t.Errorf("TCP SRV: %d answers, want 10", len(r.Answer))
	}
}
