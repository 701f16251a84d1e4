// Package agent wires one Chorus agent together and owns its lifecycle:
// configuration → Serf membership → local state (the services and checks
// this agent owns) → replication of node records → the catalog store →
// the HTTP API and the DNS server.
//
// agent is the only package that imports serf and memberlist. Data flows
// one way: check results change the local state, the local state produces
// this node's record, records travel between agents (Serf tags and events
// announce versions; records are pulled over the gossip port), and every
// record lands in the catalog.Store whose snapshots DNS and HTTP read.
package agent
