package dns

import (
	"context"
	"fmt"

	"github.com/miekg/dns"
)

// forward answers a query outside the domains: REFUSED without
// recursors, else the first usable answer of the recursors asked in
// order, each attempt bounded by the recursor timeout. A recursor that
// fails, times out or answers SERVFAIL or REFUSED is skipped; when every
// one does, the client gets SERVFAIL. The query keeps its transport: a
// client that came over TCP (after a truncated UDP answer) is forwarded
// over TCP.
func (s *Server) forward(w dns.ResponseWriter, r *dns.Msg, rt *runtime, ed *edns) int {
	if len(rt.recursors) == 0 {
		return s.fail(w, r, rt, ed, errRefused)
	}
	s.metrics.forwards.Inc()
	network := "udp"
	if isTCP(w) {
		network = "tcp"
	}
	c := &dns.Client{Net: network, UDPSize: dns.MaxMsgSize}
	req := r.Copy()
	base := s.base.Load().ctx
	var lastErr error
	for _, addr := range rt.recursors {
		if base.Err() != nil {
			break
		}
		req.Id = dns.Id() // a fresh ID upstream: the client's is not secret
		ctx, cancel := context.WithTimeout(base, rt.rtimeout)
		resp, _, err := c.ExchangeContext(ctx, req, addr)
		cancel()
		if err == nil && (resp.Rcode == dns.RcodeServerFailure || resp.Rcode == dns.RcodeRefused) {
			err = fmt.Errorf("answered %s", dns.RcodeToString[resp.Rcode])
		}
		if err != nil {
			s.metrics.recursorFailures.WithLabelValues(addr).Inc()
			s.logger.Debug("recursor failed", "recursor", addr, "qname", r.Question[0].Name, "err", err)
			lastErr = err
			continue
		}
		resp.Id = r.Id
		resp.RecursionAvailable = true
		resp.Compress = true
		if err := w.WriteMsg(resp); err != nil {
			s.logger.Debug("write forwarded answer", "err", err)
		}
		return resp.Rcode
	}
	s.logger.Debug("every recursor failed", "qname", r.Question[0].Name, "err", lastErr)
	return s.fail(w, r, rt, ed, errRecursion)
}
