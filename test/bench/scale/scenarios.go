package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Series the harness reads from /metrics (Chorus's agent and serfagent
// both export them).
const (
	mAlive    = `chorus_members{status="alive"}`
	mFailed   = `chorus_members{status="failed"}`
	mPassing  = `chorus_catalog_instances{health="passing"}`
	mEvFailed = `chorus_member_events_total{type="member-failed"}`
	mEvJoin   = `chorus_member_events_total{type="member-join"}`
)

// result holds everything measured on one cluster.
type result struct {
	kind kind
	n    int

	formed       bool
	formation    time.Duration // first start → every agent sees n alive members (and, Chorus, n web instances)
	formLoad     float64       // 1-minute load average when formation ended
	formCores    float64       // cores the agents used on average while forming
	formNotes    []string      // when not formed: what the agents saw
	formFailedEv float64       // member-failed events while forming (all false)
	formJoinMax  float64       // most member-join events one agent counted while forming
	formFailMax  float64       // most member-failed events one agent counted while forming

	idleCPU, idleCPUMax float64 // ms of CPU per second per agent (mean, worst agent)
	idleRSS, idleRSSMax float64 // MiB per agent
	idleUDP, idleTCP    float64 // B/s sent per agent (IP bytes, mean)
	idleBytesMax        float64 // B/s, worst agent (UDP + TCP)
	idleLo              float64 // B/s per agent from the lo counters
	idleLoad            float64
	idleFailedEv        float64 // member-failed events in the settle and idle windows
	idleWindow          time.Duration
	idleCoresAll        float64

	reg       []time.Duration // per agent: register → that agent's DNS answers
	regAll    []time.Duration // per registration: → the last agent's DNS answers
	regMissed int

	restarts       int
	restartTime    []time.Duration // SIGTERM → the restarted agent sees the whole cluster
	probeOK        int64
	probeEmpty     int64 // empty answers from agents that were not restarting
	probeErr       int64 // no reply from agents that were not restarting
	probeRestarted int64 // queries to the agent being restarted (no reply expected while down)
	restartFailed  float64
	restartLoad    float64

	crash       []time.Duration // per victim: SIGKILL → gone from the last other agent's answer
	crashMissed int             // (observer, victim) pairs never seen gone
	crashExcess float64         // member-failed events beyond one per observer and victim

	// Chorus's own traffic sent (chorus_sync_*), all agents: per agent
	// per second while idle, per join while forming (everything sent
	// from the first start to formation, over n), per registration and
	// per crash (the idle rate over the phase taken off).
	syncIdle, syncForm, syncReg, syncCrash syncCount
	// IP bytes all agents sent per registration and per crash (Serf and
	// Chorus), the idle rate taken off; -1 when unread.
	netReg, netCrash float64
	idleGossip       float64 // IP B/s per agent on the gossip ports while idle

	endFalse   int // (observer, live member) pairs listed failed at the end
	endMissing int // (observer, live member) pairs not listed at all
	endLoad    float64
	errors     []string
}

// falseFailures is every member-failed event or listing that no crash
// explains, over the whole run.
func (r *result) falseFailures() float64 {
	return r.formFailedEv + r.idleFailedEv + r.restartFailed + max(0, r.crashExcess) + float64(r.endFalse)
}

// runner measures one cluster.
type runner struct {
	o   *options
	c   *cluster
	cl  *client
	res *result
	log func(format string, args ...any)
}

func (r *runner) sumMetric(ps []*proc, series string) (sum, maxv float64, got int) {
	var mu sync.Mutex
	eachParallel(ps, 16, func(p *proc) {
		m, err := r.cl.metrics(context.Background(), p)
		if err != nil {
			return
		}
		mu.Lock()
		sum += m[series]
		maxv = max(maxv, m[series])
		got++
		mu.Unlock()
	})
	return sum, maxv, got
}

// agentsCPU is the CPU time all processes in ps have used.
func agentsCPU(ps []*proc) time.Duration {
	var t time.Duration
	for _, p := range ps {
		if s, err := statOf(p); err == nil {
			t += s.cpu
		}
	}
	return t
}

// form starts the agents in waves and waits until every one of them sees
// the whole cluster.
func (r *runner) form() {
	n := len(r.c.procs)
	start := time.Now()
	if err := r.c.startWaves(r.o.wave, r.o.waveInterval); err != nil {
		r.res.errors = append(r.res.errors, err.Error())
		return
	}
	r.log("%d %s agents started in %v", n, r.c.kind, time.Since(start).Round(time.Millisecond))
	deadline := start.Add(r.o.formTimeout)
	var worst string
	lastLog := time.Now()
	for time.Now().Before(deadline) {
		round := time.Now()
		var ok atomic.Int64
		var mu sync.Mutex
		worstAlive, worstFailed := n, 0
		eachParallel(r.c.procs, 16, func(p *proc) {
			m, err := r.cl.metrics(context.Background(), p)
			if err != nil {
				return
			}
			alive, failed := int(m[mAlive]), int(m[mFailed])
			good := alive == n && failed == 0
			if r.c.kind == kindChorus && int(m[mPassing]) < n {
				good = false
			}
			if good {
				ok.Add(1)
			}
			mu.Lock()
			worstAlive = min(worstAlive, alive)
			worstFailed = max(worstFailed, failed)
			mu.Unlock()
		})
		worst = fmt.Sprintf("%d of %d agents saw the whole cluster; the worst saw %d alive, one saw %d failed", ok.Load(), n, worstAlive, worstFailed)
		if int(ok.Load()) == n {
			r.res.formed = true
			// The round began before the last agent was seen whole.
			r.res.formation = time.Since(start)
			r.log("formed in %v (round of %v)", r.res.formation.Round(time.Millisecond), time.Since(round).Round(time.Millisecond))
			break
		}
		if time.Since(round) < r.o.formPoll {
			time.Sleep(r.o.formPoll - time.Since(round))
		}
		if time.Since(lastLog) >= 10*time.Second {
			lastLog = time.Now()
			r.log("forming: %v: %s, load %.1f", time.Since(start).Round(time.Second), worst, loadAvg())
		}
	}
	el := time.Since(start)
	r.res.formCores = agentsCPU(r.c.procs).Seconds() / el.Seconds()
	r.res.formLoad = loadAvg()
	r.res.formFailedEv, r.res.formFailMax, _ = r.sumMetric(r.c.procs, mEvFailed)
	if r.c.kind == kindChorus && r.res.formed {
		if t, got := r.syncTotals(r.c.procs); got == n {
			r.res.syncForm = t.scale(1 / float64(n))
		}
	}
	_, r.res.formJoinMax, _ = r.sumMetric(r.c.procs, mEvJoin)
	if !r.res.formed {
		r.res.formNotes = append(r.res.formNotes, fmt.Sprintf("not formed after %v: %s", r.o.formTimeout, worst))
		r.res.formNotes = append(r.res.formNotes, r.memberView())
		r.log("NOT formed: %s", strings.Join(r.res.formNotes, "; "))
	}
}

// memberView describes what the agents' member lists say of the live
// agents: how many each lists as failed or not at all.
func (r *runner) memberView() string {
	live := map[string]bool{}
	for _, p := range r.c.live() {
		live[p.name] = true
	}
	var mu sync.Mutex
	var failed, missing []int
	errs := 0
	eachParallel(r.c.live(), 8, func(p *proc) {
		ms, err := r.cl.members(context.Background(), p)
		if err != nil {
			mu.Lock()
			errs++
			mu.Unlock()
			return
		}
		f, seen := 0, 0
		for _, m := range ms {
			if !live[m.Name] {
				continue
			}
			seen++
			if m.Status == 4 {
				f++
			}
		}
		mu.Lock()
		failed = append(failed, f)
		missing = append(missing, len(live)-seen)
		mu.Unlock()
	})
	r.res.endFalse, r.res.endMissing = sum(failed), sum(missing)
	return fmt.Sprintf("member lists of %d agents (%d unreadable): live members listed failed per agent %s, not listed %s",
		len(failed), errs, intSpread(failed), intSpread(missing))
}

// idle waits settle, then measures a window in which the harness sends
// nothing: CPU and RSS from /proc, bytes from the nftables counters and lo.
func (r *runner) idle() {
	ps := r.c.live()
	ev0, _, got0 := r.sumMetric(ps, mEvFailed)
	time.Sleep(r.o.settle)
	var sync0 syncCount
	var syncGot0 int
	if r.c.kind == kindChorus {
		sync0, syncGot0 = r.syncTotals(ps)
	}
	cpu0 := map[*proc]time.Duration{}
	for _, p := range ps {
		if s, err := statOf(p); err == nil {
			cpu0[p] = s.cpu
		}
	}
	udp0, tcp0, errC := readCounters()
	gos0, errG := readGossip()
	lo0, errL := loBytes()
	t0 := time.Now()
	time.Sleep(r.o.idle)
	el := time.Since(t0)
	udp1, tcp1, errC1 := readCounters()
	gos1, errG1 := readGossip()
	lo1, errL1 := loBytes()
	if errG == nil && errG1 == nil {
		var g float64
		for _, p := range ps {
			g += float64(gos1[p.addr] - gos0[p.addr])
		}
		r.res.idleGossip = g / float64(len(ps)) / el.Seconds()
	}
	var cpus, rss []float64
	for _, p := range ps {
		s, err := statOf(p)
		if err != nil {
			continue
		}
		cpus = append(cpus, float64(s.cpu-cpu0[p])/float64(time.Millisecond)/el.Seconds())
		rss = append(rss, float64(s.rss)/(1<<20))
	}
	r.res.idleWindow = el
	// Read after /proc: reading every agent's /metrics takes seconds
	// under load, which the CPU figures must not include.
	if r.c.kind == kindChorus {
		if sync1, got := r.syncTotals(ps); got == len(ps) && syncGot0 == len(ps) {
			r.res.syncIdle = sync1.sub(sync0).scale(1 / float64(len(ps)) / el.Seconds())
		}
	}
	r.res.idleCPU, r.res.idleCPUMax = mean(cpus), maxOf(cpus)
	r.res.idleRSS, r.res.idleRSSMax = mean(rss), maxOf(rss)
	r.res.idleCoresAll = sumF(cpus) / 1000
	n := float64(len(ps))
	if errC == nil && errC1 == nil {
		var u, t float64
		worst := 0.0
		for _, p := range ps {
			du := float64(udp1[p.addr] - udp0[p.addr])
			dt := float64(tcp1[p.addr] - tcp0[p.addr])
			u += du
			t += dt
			worst = max(worst, (du+dt)/el.Seconds())
		}
		r.res.idleUDP, r.res.idleTCP, r.res.idleBytesMax = u/n/el.Seconds(), t/n/el.Seconds(), worst
	} else {
		r.res.errors = append(r.res.errors, fmt.Sprintf("nft counters: %v %v", errC, errC1))
	}
	if errL == nil && errL1 == nil {
		r.res.idleLo = float64(lo1-lo0) / n / el.Seconds()
	}
	r.res.idleLoad = loadAvg()
	ev1, _, got1 := r.sumMetric(ps, mEvFailed)
	if got0 == len(ps) && got1 == len(ps) {
		r.res.idleFailedEv = ev1 - ev0
	} else {
		r.res.errors = append(r.res.errors, fmt.Sprintf("idle: /metrics of %d and %d of %d agents read; member-failed events in the window not counted", got0, got1, len(ps)))
	}
	r.log("idle %v: CPU %.2f ms/s per agent (max %.2f), RSS %.1f MiB (max %.1f), UDP %.0f B/s TCP %.0f B/s (max %.0f), lo %.0f B/s; %v false failed events; load %.1f",
		el.Round(time.Second), r.res.idleCPU, r.res.idleCPUMax, r.res.idleRSS, r.res.idleRSSMax,
		r.res.idleUDP, r.res.idleTCP, r.res.idleBytesMax, r.res.idleLo, r.res.idleFailedEv, r.res.idleLoad)
}

// register registers one service per round on a random non-seed agent
// and measures until every agent's DNS answers it. It returns the owners,
// in order (each owns "reg<k>").
func (r *runner) register(rng *rand.Rand) []*proc {
	var owners []*proc
	ps := r.c.live()
	cands := ps[min(len(r.c.seeds), len(ps)):]
	perm := rng.Perm(len(cands))
	for k := 0; k < r.o.registrations && k < len(perm); k++ {
		owner := cands[perm[k]]
		svc := "reg" + strconv.Itoa(k)
		idx := r.cl.indexes(context.Background(), ps, svc)
		body := fmt.Sprintf(`{"Name": %q, "Port": %d}`, svc, 1000+k)
		if err := r.cl.put(context.Background(), owner, "/v1/agent/service/register", body); err != nil {
			r.res.errors = append(r.res.errors, err.Error())
			continue
		}
		start := time.Now()
		times, missed := r.cl.waitDNS(context.Background(), ps, svc, answerOK, start, idx, r.o.eventTimeout, 2*time.Second)
		r.res.reg = append(r.res.reg, times...)
		r.res.regMissed += len(missed)
		if len(missed) == 0 {
			r.res.regAll = append(r.res.regAll, maxDur(times))
		}
		owners = append(owners, owner)
		r.log("register %s on %s: every agent in %v (%d missed)", svc, owner.name, maxDur(times).Round(time.Microsecond), len(missed))
		time.Sleep(500 * time.Millisecond)
	}
	return owners
}

// rollingRestart restarts 10% of the agents one by one (SIGTERM, wait
// for the exit, start again with the same data dir, wait until it sees
// the whole cluster) while a prober asks every agent's DNS for "web".
func (r *runner) rollingRestart(exclude map[*proc]bool) {
	ps := r.c.live()
	n := len(ps)
	count := max(1, n/10)
	var cands, targets []*proc
	for _, p := range ps[min(len(r.c.seeds), n):] {
		if !exclude[p] {
			cands = append(cands, p)
		}
	}
	for i := 0; i < count && i < len(cands); i++ {
		targets = append(targets, cands[i*len(cands)/count])
	}
	base := map[*proc]float64{}
	var mu sync.Mutex
	eachParallel(ps, 16, func(p *proc) {
		m, err := r.cl.metrics(context.Background(), p)
		if err == nil {
			mu.Lock()
			base[p] = m[mEvFailed]
			mu.Unlock()
		}
	})
	var restarting atomic.Pointer[proc]
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if r.c.kind == kindChorus {
		// One prober goroutine per 25 agents, each asking its agents in
		// turn, every agent about once per probeEvery.
		for g := 0; g < n; g += 25 {
			group := ps[g:min(n, g+25)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(r.o.probeEvery / time.Duration(len(group)))
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					p := group[i%len(group)]
					a := r.cl.query(p, "web.service.chorus")
					switch {
					case restarting.Load() == p:
						atomic.AddInt64(&r.res.probeRestarted, 1)
					case a == answerOK:
						atomic.AddInt64(&r.res.probeOK, 1)
					case a == answerEmpty:
						atomic.AddInt64(&r.res.probeEmpty, 1)
					default:
						atomic.AddInt64(&r.res.probeErr, 1)
					}
				}
			}()
		}
	}
	var failed float64
	for _, p := range targets {
		if m, err := r.cl.metrics(context.Background(), p); err == nil {
			failed += m[mEvFailed] - base[p]
		}
		base[p] = 0
		restarting.Store(p)
		t0 := time.Now()
		if err := r.c.stop(p, 20*time.Second); err != nil {
			r.res.errors = append(r.res.errors, err.Error())
		}
		if err := r.c.start(p); err != nil {
			r.res.errors = append(r.res.errors, err.Error())
			break
		}
		ready := false
		for time.Since(t0) < r.o.eventTimeout {
			m, err := r.cl.metrics(context.Background(), p)
			if err == nil && int(m[mAlive]) == n && int(m[mFailed]) == 0 && (r.c.kind == kindSerf || int(m[mPassing]) >= n) {
				ready = true
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		// A restarted Chorus agent holds DNS queries until its catalog is
		// complete; queries to it count as the restarted agent's until
		// then and for one probe period after.
		d := time.Since(t0)
		time.Sleep(r.o.probeEvery)
		restarting.Store(nil)
		if !ready {
			r.res.errors = append(r.res.errors, fmt.Sprintf("restart of %s: not whole after %v", p.name, r.o.eventTimeout))
			continue
		}
		r.res.restartTime = append(r.res.restartTime, d)
		r.res.restarts++
	}
	cancel()
	wg.Wait()
	after, _, _ := func() (float64, float64, int) {
		var s float64
		var mu sync.Mutex
		eachParallel(ps, 16, func(p *proc) {
			if m, err := r.cl.metrics(context.Background(), p); err == nil {
				mu.Lock()
				s += m[mEvFailed] - base[p]
				mu.Unlock()
			}
		})
		return s, 0, 0
	}()
	r.res.restartFailed = failed + after
	r.res.restartLoad = loadAvg()
	r.log("rolling restart of %d: %d probes ok, %d empty, %d unanswered, %d to the restarting agent; %v member-failed events; restart %s",
		r.res.restarts, r.res.probeOK, r.res.probeEmpty, r.res.probeErr, r.res.probeRestarted, r.res.restartFailed, durSpread(r.res.restartTime))
}

// crash kills the victims one by one (SIGKILL) and measures until the
// victim is gone from every other agent: its service from their DNS
// (Chorus), or failed in their member lists (bare Serf).
func (r *runner) crash(victims []*proc, svcs []string) {
	// Only the agents that survive every crash are counted: each should
	// count one member-failed event per victim.
	dying := map[*proc]bool{}
	for _, v := range victims {
		dying[v] = true
	}
	var survivors []*proc
	for _, p := range r.c.live() {
		if !dying[p] {
			survivors = append(survivors, p)
		}
	}
	evBefore, _, gotBefore := r.sumMetric(survivors, mEvFailed)
	for k, v := range victims {
		var others []*proc
		for _, p := range r.c.live() {
			if p != v {
				others = append(others, p)
			}
		}
		var idx map[*proc]string
		if r.c.kind == kindChorus {
			idx = r.cl.indexes(context.Background(), others, svcs[k])
		}
		r.c.kill(v)
		start := time.Now()
		var times []time.Duration
		var missed int
		if r.c.kind == kindChorus {
			var m []*proc
			times, m = r.cl.waitDNS(context.Background(), others, svcs[k], answerEmpty, start, idx, r.o.eventTimeout, 2*time.Second)
			missed = len(m)
		} else {
			times, missed = r.serfFailedAt(others, v, start)
		}
		r.res.crashMissed += missed
		if missed == 0 {
			r.res.crash = append(r.res.crash, maxDur(times))
		}
		r.log("crash %s: gone from every other agent in %v (%d missed)", v.name, maxDur(times).Round(time.Millisecond), missed)
		time.Sleep(2 * time.Second)
	}
	// Wait for the last victim's failure to reach every event counter.
	time.Sleep(2 * time.Second)
	evAfter, _, gotAfter := r.sumMetric(survivors, mEvFailed)
	if gotBefore != len(survivors) || gotAfter != len(survivors) {
		r.res.errors = append(r.res.errors, fmt.Sprintf("crash: /metrics of %d and %d of %d survivors read; excess events not counted", gotBefore, gotAfter, len(survivors)))
		return
	}
	r.res.crashExcess = evAfter - evBefore - float64(len(victims)*len(survivors))
}

// serfFailedAt waits until every observer has had a member-failed event
// about victim (bare Serf reports its time) and returns the delays.
func (r *runner) serfFailedAt(others []*proc, victim *proc, start time.Time) ([]time.Duration, int) {
	deadline := start.Add(r.o.eventTimeout)
	got := map[*proc]time.Duration{}
	for time.Now().Before(deadline) && len(got) < len(others) {
		time.Sleep(time.Second)
		var mu sync.Mutex
		eachParallel(others, 16, func(p *proc) {
			mu.Lock()
			_, done := got[p]
			mu.Unlock()
			if done {
				return
			}
			b, _, err := r.cl.get(context.Background(), p, "/v1/failed-at/"+victim.name, 5*time.Second)
			if err != nil {
				return
			}
			ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			if err != nil || ns == 0 {
				return
			}
			mu.Lock()
			got[p] = time.Unix(0, ns).Sub(start)
			mu.Unlock()
		})
	}
	var out []time.Duration
	for _, d := range got {
		out = append(out, d)
	}
	return out, len(others) - len(got)
}
