package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/chorusdns/chorus/agent"
	"github.com/chorusdns/chorus/agent/local"
)

// regResult is scenario (a): a registration on one agent until every
// agent's DNS answers it, and the deregistration until none does.
type regResult struct {
	last  summary // register call returned → last agent answers
	each  summary // register call returned → each agent answers
	call  summary // the register call itself (persisted with fsync)
	dereg summary // deregister returned → last agent stops answering
}

func measureRegister(c *cluster, rounds int) (regResult, error) {
	var last, each, call, dereg []time.Duration
	lastTO, deregTO := 0, 0
	for r := range rounds {
		owner := c.live[rand.N(len(c.live))]
		svc := fmt.Sprintf("reg%d", r)
		port := uint16(10000 + r)
		q := serviceQname(svc)

		ctx, cancel := context.WithTimeout(context.Background(), c.o.timeout)
		w := c.watch(ctx, c.live, q, hasPort(port))
		start := time.Now()
		err := owner.Local().RegisterService(local.ServiceDefinition{Name: svc, ID: svc, Port: int(port)})
		t0 := time.Now()
		if err != nil {
			cancel()
			w.wait()
			return regResult{}, fmt.Errorf("register %s on %s: %w", svc, owner.NodeName(), err)
		}
		times := w.wait()
		cancel()
		call = append(call, t0.Sub(start))
		l, miss := latest(times, t0)
		if miss > 0 {
			lastTO++
		} else {
			last = append(last, l)
		}
		for _, t := range times {
			if !t.IsZero() {
				each = append(each, max(0, t.Sub(t0)))
			}
		}

		ctx, cancel = context.WithTimeout(context.Background(), c.o.timeout)
		w = c.watch(ctx, c.live, q, lacksPort(port))
		if err := owner.Local().DeregisterService(svc); err != nil {
			cancel()
			w.wait()
			return regResult{}, fmt.Errorf("deregister %s: %w", svc, err)
		}
		t1 := time.Now()
		l, miss = latest(w.wait(), t1)
		cancel()
		if miss > 0 {
			deregTO++
		} else {
			dereg = append(dereg, l)
		}
		sleepJitter(50*time.Millisecond, 250*time.Millisecond)
	}
	return regResult{
		last:  summarize(last, lastTO, c.o.timeout),
		each:  summarize(each, 0, 0),
		call:  summarize(call, 0, 0),
		dereg: summarize(dereg, deregTO, c.o.timeout),
	}, nil
}

// crashResult is scenario (b): an agent holding an instance is killed
// without leaving; until the instance is gone from every other agent's
// DNS, and until every other agent's Serf has declared it failed.
type crashResult struct {
	dns    summary
	serf   summary
	kill   summary // how long Kill took (the clock starts when it returns)
	rejoin summary // a replacement agent started until all agree again
}

func measureCrash(c *cluster, rounds int) (crashResult, error) {
	var dnsGone, serfFailed, kills, rejoins []time.Duration
	dnsTO, serfMissing, rejoinTO := 0, 0, 0
	for r := range rounds {
		if len(c.live) < 2 {
			break
		}
		victim := c.live[rand.N(len(c.live))]
		svc := fmt.Sprintf("crash%d", r)
		port := uint16(20000 + r)
		q := serviceQname(svc)
		if err := victim.Local().RegisterService(local.ServiceDefinition{Name: svc, ID: svc, Port: int(port)}); err != nil {
			return crashResult{}, fmt.Errorf("register %s: %w", svc, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.o.timeout)
		_, miss := latest(c.watch(ctx, c.live, q, hasPort(port)).wait(), time.Now())
		cancel()
		if miss > 0 {
			return crashResult{}, fmt.Errorf("%s not answered by %d agents within %s before the crash", svc, miss, c.o.timeout)
		}

		others := c.others(victim)
		ctx, cancel = context.WithTimeout(context.Background(), c.o.timeout)
		w := c.watch(ctx, others, q, lacksPort(port))
		killStart := time.Now()
		kills = append(kills, c.kill(victim))
		t0 := time.Now()
		l, miss := latest(w.wait(), t0)
		cancel()
		if miss > 0 {
			dnsTO++
		} else {
			dnsGone = append(dnsGone, l)
		}
		first := c.rec.firstFailed(victim.NodeName(), killStart)
		var serfLast time.Duration
		complete := true
		for _, a := range others {
			t, ok := first[a.NodeName()]
			if !ok {
				complete = false
				break
			}
			serfLast = max(serfLast, t.Sub(t0))
		}
		if complete {
			serfFailed = append(serfFailed, serfLast)
		} else {
			serfMissing++
		}

		// Keep the cluster at its size: a fresh agent replaces the victim.
		if _, err := c.add(); err != nil {
			return crashResult{}, err
		}
		d, err := c.waitConverged(c.o.convergeTimeout)
		if err != nil {
			rejoinTO++
			progress("  crash %d: replacement: %v", r, err)
		} else {
			rejoins = append(rejoins, d)
		}
		sleepJitter(200*time.Millisecond, 700*time.Millisecond)
	}
	return crashResult{
		dns:    summarize(dnsGone, dnsTO, c.o.timeout),
		serf:   summarize(serfFailed, serfMissing, c.o.timeout),
		kill:   summarize(kills, 0, 0),
		rejoin: summarize(rejoins, rejoinTO, c.o.convergeTimeout),
	}, nil
}

// healthResult is scenario (e): an HTTP check (interval 1 s) of an
// instance on one agent starts failing (its target flips to 500).
type healthResult struct {
	remote   summary // flip → gone from the last other agent's DNS
	local    summary // flip → gone from the owner's own DNS (check detection)
	recovery summary // flip back to 200 → answered again by every agent
}

func measureHealth(c *cluster, rounds int) (healthResult, error) {
	var code atomic.Int32
	code.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(code.Load()))
	}))
	defer srv.Close()

	owner := c.live[len(c.live)/2]
	const port = 30000
	q := serviceQname("hc")
	def := local.ServiceDefinition{Name: "hc", ID: "hc", Port: port, Check: &local.CheckDefinition{
		HTTP: srv.URL + "/health", Interval: local.Duration(time.Second),
	}}
	if err := owner.Local().RegisterService(def); err != nil {
		return healthResult{}, fmt.Errorf("register hc: %w", err)
	}
	defer owner.Local().DeregisterService("hc")
	ctx, cancel := context.WithTimeout(context.Background(), c.o.timeout)
	_, miss := latest(c.watch(ctx, c.live, q, hasPort(port)).wait(), time.Now())
	cancel()
	if miss > 0 {
		return healthResult{}, fmt.Errorf("hc not answered as passing by %d agents within %s", miss, c.o.timeout)
	}
	others := c.others(owner)

	var remote, local, recovery []time.Duration
	remoteTO, localTO, recTO := 0, 0, 0
	for range rounds {
		// A random phase against the check's 1 s schedule.
		sleepJitter(0, time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), c.o.timeout)
		wr := c.watch(ctx, others, q, lacksPort(port))
		wl := c.watch(ctx, []*agent.Agent{owner}, q, lacksPort(port))
		code.Store(http.StatusInternalServerError)
		t0 := time.Now()
		l, miss := latest(wr.wait(), t0)
		if miss > 0 {
			remoteTO++
		} else {
			remote = append(remote, l)
		}
		l, miss = latest(wl.wait(), t0)
		if miss > 0 {
			localTO++
		} else {
			local = append(local, l)
		}
		cancel()

		ctx, cancel = context.WithTimeout(context.Background(), c.o.timeout)
		w := c.watch(ctx, c.live, q, hasPort(port))
		code.Store(http.StatusOK)
		t1 := time.Now()
		l, miss = latest(w.wait(), t1)
		cancel()
		if miss > 0 {
			recTO++
		} else {
			recovery = append(recovery, l)
		}
	}
	return healthResult{
		remote:   summarize(remote, remoteTO, c.o.timeout),
		local:    summarize(local, localTO, c.o.timeout),
		recovery: summarize(recovery, recTO, c.o.timeout),
	}, nil
}

// idleResult is scenario (c): what an idle cluster costs per agent.
type idleResult struct {
	agents     int
	window     time.Duration
	cpuMs      float64 // CPU ms per second per agent (the whole process / agents)
	udpPayload float64 // UDP payload bytes sent per second per agent (GossipBytes)
	udpPkts    float64 // UDP datagrams sent per second per agent
	ipBytes    float64 // IP bytes per second per agent, UDP+TCP with headers; <0 if unknown
	tcpPayload float64 // TCP payload bytes per second per agent (IP bytes less UDP and headers)
	tcpConns   int     // TCP connections opened in the window, all agents
	tcpPerConn float64 // TCP payload bytes per connection
	heapMB     float64 // Go heap in use per agent after the window
	goroutines int
}

func measureIdle(c *cluster, settle, window time.Duration, profile string) (idleResult, error) {
	time.Sleep(settle)
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return idleResult{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return idleResult{}, err
		}
		defer pprof.StopCPUProfile()
	}
	n := float64(len(c.live))
	cpu0, sent0 := cpuTime(), c.gossipSent()
	net0, netErr := readNet()
	start := time.Now()
	time.Sleep(window)
	cpu1, sent1 := cpuTime(), c.gossipSent()
	net1, netErr1 := readNet()
	el := time.Since(start).Seconds()

	r := idleResult{agents: len(c.live), window: time.Since(start), ipBytes: -1}
	r.cpuMs = (cpu1 - cpu0).Seconds() * 1000 / el / n
	r.udpPayload = float64(sent1-sent0) / el / n
	if netErr == nil && netErr1 == nil && c.o.privateNet {
		udpPkts := float64(net1.udpOut - net0.udpOut)
		segs := float64(net1.tcpOutSegs - net0.tcpOutSegs)
		ip := float64(net1.loBytes - net0.loBytes)
		r.udpPkts = udpPkts / el / n
		r.ipBytes = ip / el / n
		// lo counts IP packets: 20 B of IP and 8 of UDP per datagram, 20 of
		// IP and 32 of TCP (with timestamps) per segment.
		tcpWire := ip - float64(sent1-sent0) - 28*udpPkts
		tcp := max(0, tcpWire-52*segs)
		r.tcpPayload = tcp / el / n
		r.tcpConns = int(net1.tcpOpens - net0.tcpOpens)
		if r.tcpConns > 0 {
			r.tcpPerConn = tcp / float64(r.tcpConns)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.heapMB = float64(ms.HeapInuse) / n / (1 << 20)
	r.goroutines = runtime.NumGoroutine()
	return r, nil
}

func sleepJitter(lo, hi time.Duration) {
	time.Sleep(lo + rand.N(hi-lo+1))
}
