package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// syncKinds are the kinds of chorus_sync_messages_total and
// chorus_sync_bytes_total (agent/replication/metrics.go).
var syncKinds = []string{"notice", "digest", "pull", "tree"}

// syncCount is Chorus's own traffic sent (messages and bytes) by kind,
// summed over agents.
type syncCount map[string][2]float64

func (c syncCount) sub(o syncCount) syncCount {
	out := syncCount{}
	for k, v := range c {
		out[k] = [2]float64{v[0] - o[k][0], v[1] - o[k][1]}
	}
	return out
}

func (c syncCount) scale(f float64) syncCount {
	out := syncCount{}
	for k, v := range c {
		out[k] = [2]float64{v[0] * f, v[1] * f}
	}
	return out
}

func (c syncCount) total() (msgs, bytes float64) {
	for _, v := range c {
		msgs += v[0]
		bytes += v[1]
	}
	return msgs, bytes
}

// String is "notice 12 msg / 4.1 KB, …, all 30 msg / 9.0 KB".
func (c syncCount) String() string {
	if len(c) == 0 {
		return "–"
	}
	var kinds []string
	for k := range c {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %.1f msg / %s", k, c[k][0], fmtBytes(c[k][1])))
	}
	m, b := c.total()
	return strings.Join(parts, ", ") + fmt.Sprintf("; all %.1f msg / %s", m, fmtBytes(b))
}

func fmtBytes(b float64) string {
	switch {
	case b >= 10<<20:
		return fmt.Sprintf("%.1f MB", b/1e6)
	case b >= 10<<10:
		return fmt.Sprintf("%.1f KB", b/1e3)
	}
	return fmt.Sprintf("%.0f B", b)
}

// syncTotals sums every agent's Chorus traffic sent; got counts the
// agents whose /metrics were read.
func (r *runner) syncTotals(ps []*proc) (syncCount, int) {
	total := syncCount{}
	var mu sync.Mutex
	got := 0
	eachParallel(ps, 16, func(p *proc) {
		m, err := r.cl.metrics(context.Background(), p)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		got++
		for _, k := range syncKinds {
			v := total[k]
			v[0] += m[`chorus_sync_messages_total{direction="sent",kind="`+k+`"}`]
			v[1] += m[`chorus_sync_bytes_total{direction="sent",kind="`+k+`"}`]
			total[k] = v
		}
	})
	return total, got
}

// syncPhase measures Chorus's traffic over a phase of the run: fn runs
// between two readings; the idle rate over the phase's length is taken
// off, and the rest is divided by events (changes, crashes). It returns
// false when an agent's /metrics could not be read.
//
// net is every IP byte the agents in ps sent on the gossip ports (from
// the nftables counters: Serf's gossip and Chorus's traffic together, no
// DNS or HTTP), per event, the idle rate likewise taken off; -1 when
// unread.
func (r *runner) syncPhase(ps []*proc, events int, fn func()) (c syncCount, net float64) {
	if r.c.kind != kindChorus {
		fn()
		return nil, -1
	}
	before, got0 := r.syncTotals(ps)
	g0, errC0 := readGossip()
	t0 := time.Now()
	fn()
	el := time.Since(t0)
	g1, errC1 := readGossip()
	after, got1 := r.syncTotals(ps)
	net = -1
	if errC0 == nil && errC1 == nil && events > 0 {
		var sum float64
		for _, p := range ps {
			sum += float64(g1[p.addr] - g0[p.addr])
		}
		sum -= r.res.idleGossip * float64(len(ps)) * el.Seconds()
		net = sum / float64(events)
	}
	if got0 != len(ps) || got1 != len(ps) || events == 0 {
		return nil, net
	}
	d := after.sub(before)
	if r.res.syncIdle != nil {
		d = d.sub(r.res.syncIdle.scale(float64(len(ps)) * el.Seconds()))
	}
	return d.scale(1 / float64(events)), net
}
