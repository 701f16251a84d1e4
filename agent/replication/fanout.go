package replication

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/chorusdns/chorus/catalog"
)

// Paced fan-out of notices. The owner of a change sends its notice to
// every other alive member, in random order: the first fanoutBurst at
// once (so the first peers learn within one network round trip), then
// one batch every fanoutTick, the batch sized so that the whole fan-out
// takes at most fanoutSpread. Up to fanoutBurst members (64) nothing
// waits; at 300 members the last notice leaves after 4 ticks (40 ms); at
// 10,000 the owner sends 200 datagrams every 10 ms for half a second
// (about 8 MB/s of ~400-byte notices) instead of 10,000 at once, which
// would overrun socket buffers and the peers' receive queues on the way.
// A newer version announced meanwhile ends the round: the next round
// carries the newer notice to every member.
const (
	fanoutBurst  = 64
	fanoutTick   = 10 * time.Millisecond
	fanoutSpread = 500 * time.Millisecond
)

// fanoutBatch is the number of notices sent per tick to reach peers
// members within fanoutSpread.
func fanoutBatch(peers int) int {
	ticks := int(fanoutSpread / fanoutTick)
	return max(fanoutBurst, (peers+ticks-1)/ticks)
}

// sendNotices sends one datagram to every other alive member, paced (see
// above). It returns early when ctx ends or a newer version is announced.
func (s *Syncer) sendNotices(ctx context.Context, rec *catalog.NodeRecord, enc []byte) {
	inline := enc
	if len(enc) > MaxInlineRecord {
		inline = nil
	}
	pkt, err := s.packet(pktNotice, noticeBody(rec.Node.Name, rec.Version, inline))
	if err != nil {
		s.logger.Error("seal notice", "err", err)
		return
	}
	self := s.self
	var peers []Member
	for _, m := range s.members.Members() {
		if m.Name != self && m.Status == catalog.MemberAlive {
			peers = append(peers, m)
		}
	}
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	s.metrics.events.WithLabelValues("notice_sent").Inc()
	batch := fanoutBatch(len(peers))
	var tick *time.Ticker
	for i := 0; i < len(peers); i += batch {
		if i > 0 {
			if tick == nil {
				tick = time.NewTicker(fanoutTick)
				defer tick.Stop()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if l := s.latest.Load(); l != nil && l.Version > rec.Version {
				return // the newer version's round reaches everyone
			}
		}
		for _, m := range peers[i:min(i+batch, len(peers))] {
			if _, err := s.net.WriteTo(pkt, m.Addr); err != nil {
				s.logger.Debug("notice", "to", m.Name, "err", err)
				continue
			}
			s.metrics.count(kindNotice, dirSent, len(pkt))
		}
	}
}
