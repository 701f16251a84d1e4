// Package agent wires one Chorus agent together and owns its lifecycle:
// configuration → Serf membership → local state (agent/local) →
// replication of node records (agent/replication) → the catalog store →
// the HTTP API (agent/httpapi) and the DNS server (dns). Start binds and
// starts everything in that order; Shutdown and Kill stop it in reverse.
//
// It owns what joins the parts: the Serf instance and its member events
// (which set member statuses in the catalog and tell the replication of
// version tags), the adapters through which the replication and the API
// see Serf (gossip.go), the gossip keyring and its file, and reloads.
//
// Data flows one way: check results change the local state, the local
// state publishes this node's record to the catalog store and the
// replication, records from peers land in the store, and DNS and the API
// read the store's snapshots. agent imports its sub-packages; none of them
// imports agent, and catalog, checks and dns never import any of them.
package agent
