// Package httpapi serves the agent's Consul-compatible HTTP API: the
// handlers (agent, catalog, health, status, operator keyring, /metrics and
// the web page), blocking queries (the watch hub, content-derived indexes
// and the per-snapshot render cache), API tokens (ACL), HTTPS settings and
// ?filter= expressions.
//
// It reads the catalog through its snapshots, changes only the local state
// (through local.State's methods) and reaches the gossip layer through the
// small Gossip interface the agent implements. It never imports agent,
// replication, serf or memberlist.
package httpapi
