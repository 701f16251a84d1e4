// Package agent wires one Chorus agent together and owns its lifecycle:
// configuration → the gossip layer (agent/gossip: Serf's LAN and WAN
// pools) → local state (agent/local) → replication of node records
// (agent/replication) → the catalog store → the HTTP API (agent/httpapi)
// and the DNS server (dns). Start binds and starts everything in that
// order; Shutdown, Kill and Leave stop it in reverse. Every goroutine it
// starts runs under its wait group, which the stop waits for.
//
// Besides the wiring it keeps what belongs to no stage: the configuration
// and its reloads, the DNS start-up gate (warmup.go), the built-in
// service, and /v1/agent/self's DebugConfig. Event handlers and watches
// run in agent/hooks.
//
// Data flows one way: check results change the local state, the local
// state publishes this node's record to the catalog store and the
// replication, records from peers land in the store, Serf's member events
// set member statuses in it, and DNS and the API read the store's
// snapshots. agent imports its sub-packages; it does not import serf or
// memberlist (agent/gossip does). None of its sub-packages imports agent,
// and catalog, checks and dns never import any of them.
package agent
