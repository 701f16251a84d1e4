package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusdns/chorus/catalog"
)

// webNode is a node of datacenter dc with one web instance whose check
// is in status, as a remote catalog built from a summary holds it.
func webNode(t *testing.T, st *catalog.Store, dc, node, addr, status string, meta map[string]string) {
	t.Helper()
	rec := &catalog.NodeRecord{
		Node:     catalog.Node{Name: node, Address: addr, Datacenter: dc},
		Version:  1,
		Services: catalog.ListOf([]catalog.Service{{ID: "web", Name: "web", Port: 80, Meta: meta, Weights: catalog.DefaultWeights}}),
		Checks:   catalog.ListOf([]catalog.Check{{CheckID: "web-check", Name: "web", Status: status, ServiceID: "web", ServiceName: "web"}}),
	}
	rec.Sort()
	if err := rec.Validate(); err != nil {
		t.Fatal(err)
	}
	st.ApplyRecord(rec)
	st.SetMember(node, addr, catalog.MemberAlive)
}

// Reads of remote datacenters through the handler: ?dc= answers from the
// summary and marks a stale one with X-Chorus-Stale, ?failover skips a
// datacenter whose every instance is critical, and the datacenter lists
// are nearest first with the stale flag.
func TestRemoteReadsServed(t *testing.T) {
	st := catalog.NewStore()
	webNode(t, st, "dc1", "l1", "10.1.0.1", catalog.HealthCritical, map[string]string{catalog.MetaFailover: "dc2,dc3"})
	remote := func(dc, node, addr, status string, rtt time.Duration, stale bool) *catalog.RemoteDatacenter {
		rs := catalog.NewStore()
		webNode(t, rs, dc, node, addr, status, nil)
		return &catalog.RemoteDatacenter{Name: dc, Version: 7, Confirmed: time.UnixMilli(1), RTT: rtt, Stale: stale, Snapshot: rs.Snapshot()}
	}
	st.SetRemotes([]*catalog.RemoteDatacenter{
		remote("dc2", "r2", "10.2.0.1", catalog.HealthCritical, 30*time.Millisecond, false),
		remote("dc3", "r3", "10.3.0.1", catalog.HealthPassing, 10*time.Millisecond, true),
	})
	reg := prometheus.NewPedanticRegistry()
	h := New(Settings{Datacenter: "dc1", NodeName: "l1"}, st, nil, nil, nil, slog.New(slog.DiscardHandler), reg, reg).Handler()
	get := func(target string) (*httptest.ResponseRecorder, []byte) {
		t.Helper()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", target, w.Code, w.Body)
		}
		return w, w.Body.Bytes()
	}
	type entry struct {
		Node    struct{ Node, Datacenter string }
		Service struct{ Service string }
	}
	nodesOf := func(b []byte) []string {
		var es []entry
		if err := json.Unmarshal(b, &es); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Node.Datacenter+"/"+e.Node.Node)
		}
		return out
	}
	failovers := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "chorus_http_failover_answers_total" {
				for _, m := range mf.GetMetric() {
					if m.GetLabel()[0].GetValue() == "dc3" {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
	for _, tc := range []struct {
		target   string
		nodes    []string
		stale    string
		failover string // X-Chorus-Failover, and the counter moves
	}{
		{"/v1/health/service/web", []string{"dc1/l1"}, "", ""},
		{"/v1/health/service/web?passing", nil, "", ""},
		{"/v1/health/service/web?dc=dc2", []string{"dc2/r2"}, "", ""},
		{"/v1/health/service/web?dc=dc3", []string{"dc3/r3"}, "true", ""},
		{"/v1/catalog/service/web?dc=dc3", nil, "true", ""}, // catalog shape: checked below
		// dc2 comes first in the meta rule but has no healthy instance.
		{"/v1/health/service/web?passing&failover=1", []string{"dc3/r3"}, "", "dc3"},
		// Without ?passing too: the local entries have no healthy one.
		{"/v1/health/service/web?failover=1", []string{"dc3/r3"}, "", "dc3"},
		{"/v1/health/service/nothing?failover=1", nil, "", ""},
		{"/v1/health/service/web?passing&failover=1&dc=dc2", nil, "", ""},
	} {
		t.Run(tc.target, func(t *testing.T) {
			before := failovers()
			w, b := get(tc.target)
			if got := w.Header().Get("X-Chorus-Stale"); got != tc.stale {
				t.Fatalf("X-Chorus-Stale %q, want %q", got, tc.stale)
			}
			if got := w.Header().Get("X-Chorus-Failover"); got != tc.failover {
				t.Fatalf("X-Chorus-Failover %q, want %q", got, tc.failover)
			}
			if moved := failovers() - before; moved != map[bool]float64{true: 1, false: 0}[tc.failover != ""] {
				t.Fatalf("chorus_http_failover_answers_total{datacenter=dc3} moved by %v", moved)
			}
			if tc.target == "/v1/catalog/service/web?dc=dc3" {
				var cs []struct{ Node, Datacenter, ServiceAddress, Address string }
				json.Unmarshal(b, &cs)
				if len(cs) != 1 || cs[0].Node != "r3" || cs[0].Datacenter != "dc3" || cs[0].Address != "10.3.0.1" {
					t.Fatalf("catalog answer %s", b)
				}
				return
			}
			if got := nodesOf(b); !slices.Equal(got, tc.nodes) {
				t.Fatalf("nodes %v, want %v", got, tc.nodes)
			}
		})
	}

	_, b := get("/v1/catalog/datacenters")
	var names []string
	json.Unmarshal(b, &names)
	if !slices.Equal(names, []string{"dc1", "dc3", "dc2"}) {
		t.Fatalf("/v1/catalog/datacenters %v, want this one, then nearest first", names)
	}
	_, b = get("/v1/chorus/datacenters")
	var rows []datacenterInfo
	json.Unmarshal(b, &rows)
	if len(rows) != 3 || !rows[0].Local || rows[1].Name != "dc3" || !rows[1].Stale || rows[1].RTTMillis != 10 ||
		rows[2].Name != "dc2" || rows[2].Stale || rows[2].Version != 7 || rows[2].Services != 1 || rows[2].Nodes != 1 {
		t.Fatalf("/v1/chorus/datacenters %s", b)
	}
}
