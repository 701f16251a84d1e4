// Package wan links datacenters without servers or elections.
//
// It owns four things:
//   - the choice of WAN speakers (Speakers): every agent ranks the alive
//     members of its LAN pool by rendezvous hashing and the top K speak
//     for the datacenter, so every agent computes the same set from the
//     same member list and no vote is needed;
//   - the datacenter summary (Summary) and its codec: per service, each
//     instance's address, port, tags, meta, weights and aggregated
//     health, with the summary's version;
//   - the exchange of summaries (Node): speakers send their own
//     datacenter's summary to the other datacenters' speakers over the
//     WAN pool's port, and every agent replicates the remote summaries
//     it learns inside its LAN over the gossip port (notices with the
//     summary inline when it is small, pulls over TCP, and a periodic
//     digest to one random member that repairs what was missed);
//   - the replica: the newest summary of each remote datacenter, handed
//     to the catalog as catalog.RemoteDatacenter values that DNS and the
//     HTTP API read.
//
// The gossip layer (agent/gossip, the only package that imports Serf)
// runs the WAN Serf pool and tells Node which peers each plane has. This
// package imports catalog, sealing and memberlist's packet type; it never
// imports agent or agent/gossip.
package wan
