// Command serfagent is a bare Serf agent for the scale harness
// (test/bench/scale): Serf with the memberlist timings of Chorus's `lan`
// gossip profile and nothing else (no catalog, no replication, no DNS),
// so that the harness can tell memberlist's own behaviour at these
// timings from what Chorus adds on top.
//
// It answers two HTTP paths on -http, in the shapes the harness reads from
// a Chorus agent:
//
//	GET /v1/agent/members  the member list (Name, Addr, Port, Status with
//	                       Consul's numbers: 1 alive, 2 leaving, 3 left, 4 failed)
//	GET /metrics           chorus_members{status}, chorus_member_events_total{type}
//	                       and the Go process collector (CPU, RSS)
//	GET /v1/failed-at/{name}  the wall-clock time (Unix nanoseconds) of the
//	                       last member-failed event about name, 0 if none
//
// SIGINT or SIGTERM leaves the cluster, then exits.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() { os.Exit(run()) }

func run() int {
	name := flag.String("name", "", "node name")
	bind := flag.String("bind", "127.0.0.1", "gossip and HTTP address")
	port := flag.Int("port", 8301, "gossip port (UDP and TCP)")
	httpPort := flag.Int("http-port", 8500, "HTTP port")
	join := flag.String("join", "", "comma-separated gossip addresses (ip:port) to join, retried every second until one answers")
	coords := flag.Bool("coordinates", true, "Serf's network coordinates (on in bare Serf; Chorus sends them on one ack in four)")
	logPath := flag.String("log", "", "log file (default: stderr)")
	t := lanTimings
	flag.DurationVar(&t.probeInterval, "probe-interval", t.probeInterval, "memberlist ProbeInterval")
	flag.DurationVar(&t.probeTimeout, "probe-timeout", t.probeTimeout, "memberlist ProbeTimeout")
	flag.DurationVar(&t.gossipInterval, "gossip-interval", t.gossipInterval, "memberlist GossipInterval")
	flag.IntVar(&t.suspicionMult, "suspicion-mult", t.suspicionMult, "memberlist SuspicionMult")
	flag.IntVar(&t.suspicionMaxMult, "suspicion-max-timeout-mult", t.suspicionMaxMult, "memberlist SuspicionMaxTimeoutMult")
	flag.IntVar(&t.retransmitMult, "retransmit-mult", t.retransmitMult, "memberlist RetransmitMult")
	flag.IntVar(&t.awarenessMax, "awareness-max-multiplier", t.awarenessMax, "memberlist AwarenessMaxMultiplier")
	flag.IntVar(&t.handoffDepth, "handoff-queue-depth", t.handoffDepth, "memberlist HandoffQueueDepth")
	flag.Parse()
	if *name == "" {
		fmt.Fprintln(os.Stderr, "serfagent: -name is required")
		return 2
	}
	var logOut io.Writer = os.Stderr
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "serfagent:", err)
			return 1
		}
		defer f.Close()
		logOut = f
	}
	logger := log.New(logOut, "", log.LstdFlags|log.Lmicroseconds)

	reg := prometheus.NewRegistry()
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chorus_member_events_total", Help: "Serf membership events seen, by type.",
	}, []string{"type"})
	reg.MustRegister(events, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	s, evCh, err := startSerf(*name, *bind, *port, *coords, t, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serfagent:", err)
		return 1
	}
	reg.MustRegister(membersCollector{s})

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var failedMu sync.Mutex
	failedAt := map[string]int64{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case e := <-evCh:
				if me, ok := e.(serf.MemberEvent); ok {
					events.WithLabelValues(me.Type.String()).Add(float64(len(me.Members)))
					if me.Type == serf.EventMemberFailed {
						now := time.Now().UnixNano()
						failedMu.Lock()
						for _, m := range me.Members {
							failedAt[m.Name] = now
						}
						failedMu.Unlock()
					}
				}
			case <-ctx.Done():
				return
			}
		}
	}()

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/agent/members", func(w http.ResponseWriter, _ *http.Request) {
		type member struct {
			Name   string
			Addr   string
			Port   uint16
			Status int
		}
		var out []member
		for _, m := range s.Members() {
			out = append(out, member{Name: m.Name, Addr: m.Addr.String(), Port: m.Port, Status: status(m.Status)})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /v1/failed-at/{name}", func(w http.ResponseWriter, r *http.Request) {
		failedMu.Lock()
		t := failedAt[r.PathValue("name")]
		failedMu.Unlock()
		fmt.Fprintln(w, t)
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(*bind, fmt.Sprint(*httpPort)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "serfagent: http:", err)
		s.Shutdown()
		return 1
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		srv.Serve(ln)
	}()

	joinDone := make(chan struct{})
	go func() {
		defer close(joinDone)
		joinLoop(ctx, s, *join, logger)
	}()

	<-ctx.Done()
	<-joinDone
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutCtx)
	<-httpDone
	if err := s.Leave(); err != nil {
		logger.Printf("[WARN] serfagent: leave: %v", err)
	}
	s.Shutdown()
	<-done
	return 0
}

// timings are the memberlist knobs the harness varies.
type timings struct {
	probeInterval, probeTimeout, gossipInterval     time.Duration
	suspicionMult, suspicionMaxMult, retransmitMult int
	awarenessMax, handoffDepth                      int
}

// lanTimings are Chorus's `lan` gossip profile (agent/gossip/profile.go
// profileTimings and agent/gossip/pool.go memberlistConfig); keep them equal.
var lanTimings = timings{
	probeInterval: 300 * time.Millisecond, probeTimeout: 200 * time.Millisecond, gossipInterval: 100 * time.Millisecond,
	suspicionMult: 3, suspicionMaxMult: 6, retransmitMult: 8,
	awarenessMax: 8, handoffDepth: 4096,
}

// startSerf creates the Serf member with timings t (by default Chorus's
// `lan` timings).
func startSerf(name, bind string, port int, coords bool, t timings, logger *log.Logger) (*serf.Serf, chan serf.Event, error) {
	ml := memberlist.DefaultLANConfig()
	ml.Name = name
	ml.BindAddr, ml.BindPort = bind, port
	ml.AdvertiseAddr, ml.AdvertisePort = bind, port
	ml.ProbeInterval, ml.ProbeTimeout = t.probeInterval, t.probeTimeout
	ml.GossipInterval, ml.PushPullInterval = t.gossipInterval, 30*time.Second
	ml.SuspicionMult, ml.SuspicionMaxTimeoutMult, ml.RetransmitMult = t.suspicionMult, t.suspicionMaxMult, t.retransmitMult
	ml.AwarenessMaxMultiplier, ml.HandoffQueueDepth = t.awarenessMax, t.handoffDepth
	ml.DeadNodeReclaimTime = 10 * time.Second
	ml.EnableCompression = false
	ml.Logger = logger

	sc := serf.DefaultConfig()
	sc.NodeName = name
	sc.MemberlistConfig = ml
	sc.Logger = logger
	sc.ReconnectInterval = 2 * time.Second
	sc.ReconnectTimeout = 72 * time.Hour
	sc.TombstoneTimeout = 24 * time.Hour
	sc.DisableCoordinates = !coords
	ev := make(chan serf.Event, 4096)
	sc.EventCh = ev
	s, err := serf.Create(sc)
	if err != nil {
		return nil, nil, fmt.Errorf("start serf on %s:%d: %w", bind, port, err)
	}
	return s, ev, nil
}

// joinLoop joins the addresses in list (comma-separated) every second
// until one join succeeds or ctx ends.
func joinLoop(ctx context.Context, s *serf.Serf, list string, logger *log.Logger) {
	if list == "" {
		return
	}
	addrs := strings.Split(list, ",")
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		n, err := s.Join(addrs, true)
		if n > 0 {
			return
		}
		logger.Printf("[WARN] serfagent: join %s: %v", list, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// status maps Serf's member status to Consul's numbers.
func status(s serf.MemberStatus) int {
	switch s {
	case serf.StatusAlive:
		return 1
	case serf.StatusLeaving:
		return 2
	case serf.StatusLeft:
		return 3
	case serf.StatusFailed:
		return 4
	}
	return 0
}

// membersCollector reports Serf's member counts by status at scrape time,
// under the name the Chorus agent uses for its catalog's member counts.
type membersCollector struct{ s *serf.Serf }

var descMembers = prometheus.NewDesc("chorus_members", "Cluster members known to this agent, by status.", []string{"status"}, nil)

func (c membersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descMembers }

func (c membersCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{"alive": 0, "leaving": 0, "left": 0, "failed": 0}
	for _, m := range c.s.Members() {
		counts[m.Status.String()]++
	}
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(n), st)
	}
}
