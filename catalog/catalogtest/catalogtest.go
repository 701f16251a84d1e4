// Package catalogtest generates realistic catalogs for benchmarks and
// tests of the catalog and of its readers (DNS, HTTP). It imports only
// catalog and the standard library, and is never imported by production
// code.
package catalogtest

import (
	"fmt"
	"strconv"

	"github.com/chorusdns/chorus/catalog"
)

// Shape says how big a generated catalog is.
type Shape struct {
	// Nodes is the number of nodes.
	Nodes int
	// ServicesPerNode is the number of service instances on each node.
	// The first is "node-exporter", which runs on every node; the others
	// are drawn from Nodes distinct service names, so a catalog has about
	// Nodes service names of about ServicesPerNode-1 instances each, plus
	// one service with an instance on every node.
	ServicesPerNode int
}

// Shape100k is the scale target: 10,000 nodes with 10 services each.
var Shape100k = Shape{Nodes: 10000, ServicesPerNode: 10}

var (
	roles   = []string{"web", "api", "auth", "billing", "search", "cache", "queue", "db", "ingest", "report", "mail", "media"}
	envs    = []string{"prod", "staging"}
	zones   = []string{"a", "b", "c"}
	tagPool = []string{"v1", "v2", "primary", "secondary", "canary", "http", "grpc", "metrics", "internal", "public"}
	teams   = []string{"core", "payments", "growth", "platform", "data", "identity"}
)

// NodeName is the name of node i: "<role>-<env>-<i>" with i in five
// digits, so names sort in i order within a role.
func NodeName(i int) string {
	return fmt.Sprintf("%s-%s-%05d", roles[i%len(roles)], envs[i%7/6], i)
}

// NodeAddr is node i's IPv4 address, unique per i below 2^24.
func NodeAddr(i int) string {
	return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
}

// ServiceName is the name of the j-th service of the pool.
func ServiceName(j int) string {
	return fmt.Sprintf("%s-%s-svc%04d", teams[j%len(teams)], roles[j%len(roles)], j)
}

// Record returns the record of node i at version: its node meta, its
// services with two or three tags and four meta keys, one or two checks
// per service and one node-level check. Every string is freshly
// allocated, as a decoded record's would be. Records are valid and sorted.
func Record(s Shape, i int, version uint64) *catalog.NodeRecord {
	name := NodeName(i)
	rec := &catalog.NodeRecord{
		Node: catalog.Node{
			Name: name, Address: NodeAddr(i), Datacenter: "dc1", Zone: zones[i%len(zones)],
			Meta: map[string]string{"os": "linux", "rack": "r" + strconv.Itoa(i%40), "kernel": "6.1." + strconv.Itoa(i%9)},
		},
		Version: version,
		Gossip:  NodeAddr(i) + ":8301",
	}
	checks := []catalog.Check{{CheckID: "mem", Name: "Memory", Status: catalog.HealthPassing, Output: "ok: 41% used", Type: "script", Interval: "30s"}}
	services := make([]catalog.Service, 0, s.ServicesPerNode)
	for k := 0; k < s.ServicesPerNode; k++ {
		var sname string
		if k == 0 {
			sname = "node-exporter"
		} else {
			// Spread each node's services over the pool so that every
			// pool name gets about ServicesPerNode-1 instances.
			sname = ServiceName((i*(s.ServicesPerNode-1) + k - 1) % max(s.Nodes, 1))
		}
		id := sname + "-" + strconv.Itoa(k)
		h := i*31 + k*7
		svc := catalog.Service{
			ID: id, Name: sname, Port: 8000 + k,
			Tags: []string{tagPool[h%len(tagPool)], tagPool[(h+3)%len(tagPool)]},
			Meta: map[string]string{
				"version": "1." + strconv.Itoa(h%20) + "." + strconv.Itoa(h%7),
				"team":    teams[h%len(teams)],
				"commit":  fmt.Sprintf("%08x", uint32(h)*2654435761),
				"proto":   "http",
			},
		}
		if h%3 == 0 {
			svc.Tags = append(svc.Tags, "zone-"+zones[i%len(zones)])
		}
		if err := svc.Validate(); err != nil {
			panic(err)
		}
		services = append(services, svc)
		checks = append(checks, catalog.Check{
			CheckID: "service:" + id, Name: "Service '" + sname + "' check", Status: catalog.HealthPassing,
			Output: "HTTP GET http://" + NodeAddr(i) + ":" + strconv.Itoa(8000+k) + "/health: 200 OK", ServiceID: id, ServiceName: sname,
			Type: "http", Interval: "10s", Timeout: "2s",
		})
		if h%2 == 0 {
			checks = append(checks, catalog.Check{
				CheckID: "service:" + id + ":ttl", Name: "TTL", Status: catalog.HealthPassing, ServiceID: id, ServiceName: sname, Type: "ttl",
			})
		}
	}
	rec.Services, rec.Checks = catalog.ListOf(services), catalog.ListOf(checks)
	rec.Sort()
	return rec
}

// Fill applies every node's record at version 1 and marks every node
// alive, as one Store.Update. Each record goes through EncodeRecord and
// DecodeRecord first, so the store holds records as replication
// delivers them.
func Fill(st *catalog.Store, s Shape) {
	st.Update(func(tx *catalog.Tx) {
		for i := 0; i < s.Nodes; i++ {
			b, err := catalog.EncodeRecord(Record(s, i, 1))
			if err != nil {
				panic(err)
			}
			rec, err := catalog.DecodeRecord(b)
			if err != nil {
				panic(err)
			}
			tx.ApplyRecord(rec)
			tx.SetMember(NodeName(i), NodeAddr(i), catalog.MemberAlive)
		}
	})
}

// Flip returns a copy of rec at version with the status of its first
// service check set to status: the most common change in a running
// cluster. rec is not modified; the copy shares its services.
func Flip(rec *catalog.NodeRecord, version uint64, status string) *catalog.NodeRecord {
	c := *rec
	c.Version = version
	checks := rec.Checks.Slice()
	for j := range checks {
		if checks[j].ServiceID != "" {
			checks[j].Status = status
			break
		}
	}
	c.Checks = catalog.ListOf(checks)
	return &c
}
