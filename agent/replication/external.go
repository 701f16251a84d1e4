package replication

import "github.com/chorusdns/chorus/catalog"

// External nodes' records (catalog/external.go) replicate like agents'
// records, with three differences: they are signed by their owner (the
// agent named in Owner), not by a member of their own name; their
// notices come from the owner's gossip address; and they have no version
// tag, so a lost notice is repaired by anti-entropy alone.

// recordSigner is the member whose key must have signed rec: its owner
// for an external node's record, else the node itself.
func recordSigner(rec *catalog.NodeRecord) string {
	if rec.Owner != "" {
		return rec.Owner
	}
	return rec.Node.Name
}

// NotifyRecord sends the fast-path notice of an external node's record
// this agent owns (and has applied to its catalog) to every other alive
// member: one datagram each, the record inline when it fits (unpaced:
// external nodes change rarely). It does not
// touch this agent's own record or its version tag. It is safe for
// concurrent use.
func (s *Syncer) NotifyRecord(rec *catalog.NodeRecord) {
	if !s.ready.Load() || s.closed.Load() {
		return
	}
	b, err := catalog.EncodeRecord(rec)
	if err != nil {
		s.logger.Error("encode external node record", "node", rec.Node.Name, "err", err)
		return
	}
	inline := b
	if len(b) > MaxInlineRecord {
		inline = nil
	}
	pkt, err := s.packet(pktNotice, noticeBody(rec.Node.Name, rec.Version, inline))
	if err != nil {
		s.logger.Error("seal notice", "err", err)
		return
	}
	for _, m := range s.members.Members() {
		if m.Name == s.self || m.Status != catalog.MemberAlive {
			continue
		}
		if _, err := s.net.WriteTo(pkt, m.Addr); err != nil {
			s.logger.Debug("notice", "to", m.Name, "err", err)
		}
	}
	s.metrics.events.WithLabelValues("notice_sent").Inc()
}
