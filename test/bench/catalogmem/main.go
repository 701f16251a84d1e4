// Command catalogmem measures one process holding a large catalog: the
// node records, the catalog snapshot and the DNS answers prepared from it.
// It fills a catalog.Store (10,000 nodes × 10 services by default, see
// catalogtest.Shape100k), asks the DNS handler (in process, no socket)
// every service name (A and SRV) and every node name (A), then applies
// single-node changes, each followed by queries, and prints the time each
// change's snapshot took, the Go heap in use and the process's RSS.
//
//	go run ./test/bench/catalogmem [-nodes 10000] [-services 10] [-changes 2000]
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/catalog/catalogtest"
	dnssrv "github.com/chorusdns/chorus/dns"
	"github.com/miekg/dns"
)

func main() { os.Exit(run(os.Stdout)) }

func run(out io.Writer) int {
	nodes := flag.Int("nodes", catalogtest.Shape100k.Nodes, "nodes in the catalog")
	perNode := flag.Int("services", catalogtest.Shape100k.ServicesPerNode, "service instances per node")
	changes := flag.Int("changes", 2000, "single-node changes to apply after the fill")
	heapProfile := flag.String("memprofile", "", "write a heap profile to this file at -profile-stage")
	profileStage := flag.String("profile-stage", "changes", "when -memprofile is written: fill, answers or changes")
	flag.Parse()
	shape := catalogtest.Shape{Nodes: *nodes, ServicesPerNode: *perNode}

	start := time.Now()
	st := catalog.NewStore()
	catalogtest.Fill(st, shape)
	fill := time.Since(start)
	report(out, "after the fill", st)
	if *profileStage == "fill" && !writeProfile(*heapProfile) {
		return 1
	}

	cfg := dnssrv.DefaultConfig()
	cfg.Domain = "chorus."
	cfg.Datacenter = "dc1"
	srv, err := dnssrv.New(cfg, st, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "catalogmem:", err)
		return 1
	}
	w := &discard{addr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}}
	var qs []*dns.Msg
	for _, se := range st.Snapshot().Services() {
		for _, t := range []uint16{dns.TypeA, dns.TypeSRV} {
			m := new(dns.Msg)
			m.SetQuestion(se.Name+".service.chorus.", t)
			m.SetEdns0(4096, false)
			qs = append(qs, m)
		}
	}
	for i := 0; i < shape.Nodes; i++ {
		m := new(dns.Msg)
		m.SetQuestion(catalogtest.NodeName(i)+".node.chorus.", dns.TypeA)
		qs = append(qs, m)
	}
	start = time.Now()
	for _, m := range qs {
		srv.ServeDNS(w, m)
	}
	prepare := time.Since(start)
	report(out, fmt.Sprintf("after preparing %d DNS answers", len(qs)), st)
	if *profileStage == "answers" && !writeProfile(*heapProfile) {
		return 1
	}

	// Each change flips one service check of one node; after each, 100
	// queries spread over the names, so the cache follows the changes.
	// The new record goes through EncodeRecord and DecodeRecord (not
	// timed), as one replication delivers.
	var took []time.Duration
	for i := 0; i < *changes; i++ {
		n := i * 7919 % shape.Nodes
		rec := catalogtest.Record(shape, n, 0)
		status := catalog.HealthCritical
		if i/shape.Nodes%2 == 1 {
			status = catalog.HealthPassing
		}
		next := catalogtest.Flip(rec, st.Version(rec.Node.Name)+1, status)
		b, err := catalog.EncodeRecord(next)
		if err == nil {
			next, err = catalog.DecodeRecord(b)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "catalogmem:", err)
			return 1
		}
		t0 := time.Now()
		st.ApplyRecord(next)
		took = append(took, time.Since(t0))
		for j := 0; j < 100; j++ {
			srv.ServeDNS(w, qs[(i*100+j)%len(qs)])
		}
	}
	report(out, fmt.Sprintf("after %d single-node changes", *changes), st)
	slices.Sort(took)
	q := func(p float64) time.Duration { return took[min(len(took)-1, int(p*float64(len(took))))] }
	fmt.Fprintf(out, "\ncatalog: %d nodes, %d services, %d instances; fill %v, %d answers prepared in %v\n",
		st.Snapshot().NodeCount(), st.Snapshot().ServiceCount(), shape.Nodes*shape.ServicesPerNode, fill.Round(time.Millisecond), len(qs), prepare.Round(time.Millisecond))
	if len(took) > 0 {
		fmt.Fprintf(out, "snapshot per single-node change (Store.ApplyRecord, GC included): p50 %v, p90 %v, p99 %v, max %v\n",
			q(0.5), q(0.9), q(0.99), took[len(took)-1])
	}
	if *profileStage == "changes" && !writeProfile(*heapProfile) {
		return 1
	}
	runtime.KeepAlive(srv)
	return 0
}

// writeProfile writes a heap profile to path, if path is set, and reports
// whether that went well.
func writeProfile(path string) bool {
	if path == "" {
		return true
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.WriteHeapProfile(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "catalogmem:", err)
		return false
	}
	return true
}

// report prints the heap in use and the RSS after a full GC that returns
// freed memory to the OS.
func report(out io.Writer, when string, st *catalog.Store) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, hwm := memStatus()
	fmt.Fprintf(out, "%-40s heap in use %6.1f MiB (live %6.1f MiB), heap objects %9d, RSS %6.1f MiB (peak %6.1f MiB)\n",
		when+":", float64(ms.HeapInuse)/(1<<20), float64(ms.HeapAlloc)/(1<<20), ms.HeapObjects, rss, hwm)
	runtime.KeepAlive(st)
}

// memStatus returns VmRSS and VmHWM of this process in MiB.
func memStatus() (rss, hwm float64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = v / 1024
		case "VmHWM:":
			hwm = v / 1024
		}
	}
	return rss, hwm
}

// discard is a ResponseWriter that drops replies.
type discard struct{ addr net.Addr }

func (d *discard) LocalAddr() net.Addr         { return d.addr }
func (d *discard) RemoteAddr() net.Addr        { return d.addr }
func (d *discard) WriteMsg(*dns.Msg) error     { return nil }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) Close() error                { return nil }
func (d *discard) TsigStatus() error           { return nil }
func (d *discard) TsigTimersOnly(bool)         {}
func (d *discard) Hijack()                     {}
