// Package replication carries node records between agents: the Syncer
// (fast-path notices, pulls, anti-entropy over version vectors, repair of
// member statuses and of nodes the gossip layer missed), the gossip-port
// Transport that memberlist and the Syncer share, the sealing of Chorus's
// own traffic with the gossip keyring, and the network coordinates kept
// from probe round trips.
//
// It works against two small interfaces: a Store (the catalog) and
// Members (the gossip layer's member list, version tag and joins), plus a
// Network to send packets and open streams. The agent wires Serf and the
// catalog.Store to them; tests use an in-memory network.
//
// It imports catalog, sealing, memberlist (the transport and ping delegate
// interfaces) and Serf's coordinate package; never agent, local or the
// HTTP API.
package replication
