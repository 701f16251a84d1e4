package replication

import (
	"sync"
	"sync/atomic"
	"time"
)

// Notices that arrive before their sender is a member. A joining agent
// learns the whole member list from its seed's push-pull and sends its
// notices at once (Kick), while most members learn of the joiner only
// when its alive message reaches them by gossip, up to seconds later in a
// busy cluster. Such a notice would be dropped (a notice must come from
// the gossip address of the member it is about) and every member would
// pull the joiner's record instead when its member event comes: N − 1
// streams per join. So a notice whose node is unknown and whose sender is
// no member's address is parked, the latest per sender address, and
// handled again when Observe sees a member at that address; the usual
// checks run then (the member's name and address must match, the record's
// signature must verify). Parking is bounded: at most maxEarly senders,
// each for earlyTTL; a full table drops the new notice (counted as a
// rejection, as before).
const (
	maxEarly = 1024
	earlyTTL = 10 * time.Second
)

type earlyNotice struct {
	body []byte
	at   time.Time
}

// earlyNotices is the parking table; its methods are safe for concurrent
// use.
type earlyNotices struct {
	n  atomic.Int64 // len(m), read without the lock by take
	mu sync.Mutex
	m  map[string]earlyNotice // sender address → its latest notice
}

// park keeps body as the latest notice from addr and reports whether it
// was kept.
func (e *earlyNotices) park(addr string, body []byte, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = make(map[string]earlyNotice)
	}
	if _, ok := e.m[addr]; !ok && len(e.m) >= maxEarly {
		for a, p := range e.m {
			if now.Sub(p.at) > earlyTTL {
				delete(e.m, a)
			}
		}
		if len(e.m) >= maxEarly {
			return false
		}
	}
	e.m[addr] = earlyNotice{body: append([]byte(nil), body...), at: now}
	e.n.Store(int64(len(e.m)))
	return true
}

// take removes and returns the notice parked for addr within earlyTTL,
// or nil.
func (e *earlyNotices) take(addr string, now time.Time) []byte {
	if e.n.Load() == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.m[addr]
	if !ok {
		return nil
	}
	delete(e.m, addr)
	e.n.Store(int64(len(e.m)))
	if now.Sub(p.at) > earlyTTL {
		return nil
	}
	return p.body
}
