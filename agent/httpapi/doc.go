// Package httpapi serves the agent's Consul-compatible HTTP API: the
// handlers (agent, catalog, health, status, operator keyring, /metrics and
// the web page), blocking queries (the watch hub, content-derived indexes
// and the per-snapshot render cache), API tokens (ACL), HTTPS settings and
// ?filter= expressions.
//
// It reads the catalog through its snapshots and the rest through small
// interfaces it defines: this agent's node through Local (LocalReader and
// Registrar, which local.State implements), the external nodes through
// Externals, the gossip layer through Gossip (agent/gossip's adapter). It
// changes only the local state, through those methods. From agent/local it
// takes only the definition types a write carries and the sentinel errors
// it maps to statuses. It also owns the agent's one log-level parser
// (ParseLogLevel), used by the log_level key, ?loglevel= and the gossip
// layer's log adapter. It never imports agent, agent/gossip,
// agent/replication, serf or memberlist.
package httpapi
