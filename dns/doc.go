// Package dns is Chorus's DNS interface: a miekg/dns server that answers
// Consul-compatible names for the catalog from the agent's own replica,
// forwards other names to configured recursors, and refuses them when
// there are none (never an open resolver by default).
//
// It owns name parsing (names.go), answer building (answer.go), wire
// encoding (wire.go), load-balancing policies (policy.go), the
// per-snapshot answer cache (cache.go), forwarding (recursor.go) and the
// UDP/TCP server with its limits and panic recovery (server.go). It reads
// the catalog only through a catalog.Snapshot and imports no other Chorus
// package; it must never import agent, checks or cmd.
//
// What the server answers — every name form, the order of the rules
// (health, datacenter, tag, tier, zone, policy, limits), the policies,
// the service meta keys it reads (MetaPriority, MetaPolicy, MetaTTL), the
// TTLs, the limits and where it differs from Consul — is documented for
// users in one place, docs/dns.md at the repository root; keep that page
// current when the behaviour changes.
//
// # Speed
//
// Answers are prepared on a name's first query and kept per
// configuration: for each (lower-case name, type) the rules from health
// to zone are applied and every record is encoded in wire format,
// pointing (compression) only into the question, which sits at a fixed
// offset. Per query the server orders the prepared records, copies the
// ones that fit and writes the header and the question as the client sent
// it, which also echoes its letter case. No dns.Msg is packed on the
// answer path. An entry derived from one service or one node stays valid
// for every catalog snapshot in which that service's or node's index is
// unchanged, so a catalog change prepares nothing by itself and a later
// query prepares again only the names whose own input changed; other
// entries (the apex, DNS-SD's service list, addresses, reverse names) are
// prepared again on their first query after any change. Answers built
// from another datacenter's summary (explicit <dc> labels and failover
// answers), and the local negative answers of names that have a failover
// rule, are valid for the snapshot they were built on only: every change
// of a summary makes a new local snapshot.
package dns
