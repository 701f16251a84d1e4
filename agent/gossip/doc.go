// Package gossip is the agent's membership layer: this agent's member of
// the LAN Serf pool (Pool) and, while it speaks for its datacenter, of
// the WAN pool (WAN), with everything that touches Serf and memberlist
// directly. It owns:
//
//   - the Serf instances and the gossip-port transports they share with
//     Chorus's own traffic (packets and streams that start 0xC5 go to the
//     replication, 0xC5 'W' to the WAN exchange);
//   - the LAN pool's member events, applied to the catalog's member
//     statuses and told to the replication (Run), then handed to the
//     agent's event hook (Event, in Serf's event handler format);
//   - the gossip profiles and knobs (memberlist's timings), the Serf tags
//     (version, key, datacenter, build, role, protocol), joins and their
//     retries, leave, force-leave, the Serf snapshot's peers;
//   - the gossip keyring, its file in the data dir and the cluster-wide
//     keyring operations;
//   - the adapters through which the replication (replication.Members),
//     the HTTP API (httpapi.Gossip, Pool.API) and the WAN exchange
//     (wan.Plane) see Serf, and the network coordinates' distances
//     (dns.Distances);
//   - the WAN speaker choice loop, the WAN pool's member and its RTT
//     pings;
//   - the adapter that maps Serf's and memberlist's log lines onto slog.
//
// It is the only package that imports serf (and memberlist beyond the
// transport and ping-delegate interfaces agent/replication implements).
// It imports catalog, agent/local (the key tag codec, WriteFileAtomic and
// the ErrInvalid the API maps to 400), agent/replication, agent/wan and
// agent/httpapi (the types of the interfaces it implements for them). It
// must never import agent, agent/filter, checks or dns; no package it
// imports may import it.
package gossip
