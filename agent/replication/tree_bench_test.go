package replication

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chorusdns/chorus/catalog"
)

// pipeNet connects a client Syncer straight to one server Syncer.
type pipeNet struct {
	nowhere
	server *Syncer
}

func (p pipeNet) DialTimeout(string, time.Duration) (net.Conn, error) {
	c, s := net.Pipe()
	go p.server.HandleStream(s)
	return c, nil
}

// BenchmarkTreeExchange measures one tree exchange between two agents
// whose catalogs of 10,000 nodes differ in d records (d = all: an agent
// that holds none of them): bytes on the stream, both directions, per
// exchange, and the time. The figures feed docs/scale.md.
func BenchmarkTreeExchange(b *testing.B) {
	const nodes = 10000
	_, key, _ := ed25519.GenerateKey(nil)
	recs := bulkRecords(nodes, key)
	for _, d := range []int{1, 10, 100, 1000, nodes} {
		b.Run(fmt.Sprintf("differences=%d", d), func(b *testing.B) {
			full, partial := catalog.NewStore(), catalog.NewStore()
			holdAll(full, recs)
			if d == nodes {
				memberAll(partial, recs)
			} else {
				holdAll(partial, recs)
				var newer []*catalog.NodeRecord
				for i := range d {
					r := *recs[i*(nodes/d)]
					r.Version++
					newer = append(newer, &r)
				}
				holdAll(full, newer)
			}
			members := fixedMembers{{Name: "client", Addr: "127.0.0.1:1", Status: catalog.MemberAlive},
				{Name: "server", Addr: "127.0.0.2:1", Status: catalog.MemberAlive}}
			server := New("server", full, nil, slog.New(slog.DiscardHandler), NewMetrics(prometheus.NewPedanticRegistry()))
			server.Attach(members, nowhere{})
			client := New("client", partial, nil, slog.New(slog.DiscardHandler), NewMetrics(prometheus.NewPedanticRegistry()))
			client.Attach(members, pipeNet{server: server})
			b.ResetTimer()
			for range b.N {
				if _, err := client.exchangeTree(context.Background(), "127.0.0.2:1"); err != nil {
					b.Fatal(err, testutil.ToFloat64(server.metrics.rejected.WithLabelValues(rejStreamLimit)), testutil.ToFloat64(server.metrics.rejected.WithLabelValues(rejMalformed)))
				}
				// net.Pipe's writer returns only once scheduled after the
				// reader took everything: let the server's stream end
				// before the next one (its per-peer limit counts them).
				for server.streams.busy() {
					runtime.Gosched()
				}
				for len(client.jobs) > 0 { // nothing pulls: keep the queue from filling
					client.done(<-client.jobs)
				}
				for len(server.jobs) > 0 {
					server.done(<-server.jobs)
				}
			}
			b.StopTimer()
			var bytes float64
			for _, dir := range []string{dirSent, dirReceived} {
				bytes += testutil.ToFloat64(client.metrics.bytes.WithLabelValues(kindTree, dir))
			}
			b.ReportMetric(bytes/float64(b.N), "B/exchange")
			b.ReportMetric(bytes/float64(b.N)/float64(d), "B/difference")
		})
	}
}

// BenchmarkBuildTree measures building the version tree of a catalog
// of 10,000 nodes (once per snapshot, when a digest is sent or compared).
func BenchmarkBuildTree(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(nil)
	store := catalog.NewStore()
	holdAll(store, bulkRecords(10000, key))
	snap := store.Snapshot()
	b.ResetTimer()
	for range b.N {
		buildTree(snap)
	}
}

// busy reports whether any stream is being served.
func (l *streamLimit) busy() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total > 0
}
