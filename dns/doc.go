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
// # Names
//
// Under the domain (default "chorus.") and the alternative domain, each
// answered with the domain of the question:
//
//	<service>.service.<domain>                A AAAA SRV TXT ANY
//	<tag>.<service>.service.<domain>          the same, instances with tag
//	_<service>._<tag|tcp|udp>.service.<domain> the same (_tcp/_udp: no tag)
//	_<service>._<tag|tcp|udp>.<domain>        SRV (Consul: "service" optional)
//	<service>.service.<dc>[.dc].<domain>      own datacenter; another is NXDOMAIN
//	<node>.node.<domain>                      A AAAA, TXT = node meta (RFC 1464)
//	<hex>.addr.<domain>                       8 hex digits IPv4, 32 IPv6
//	<domain>                                  SOA, NS (the answering agent)
//	<reversed-ip>.in-addr.arpa / .ip6.arpa    PTR: nodes, else services
//
// and with DNSSD (RFC 6763): _services._dns-sd._udp.<domain> PTR (every
// service with a healthy instance, as _<service>._tcp), b|db|lb._dns-sd._udp
// PTR (the domain), _<service>._tcp|_udp.<domain> PTR with each instance's
// SRV, TXT and address in the additional section, and the SRV and TXT of
// each instance <id>-<node>._<service>._tcp.<domain> (the label reduced to
// letters, digits and '-', made unique with a hash suffix when needed).
//
// SRV targets are <node>.node.<domain>, or <hex>.addr.<domain> when the
// instance has an IP address of its own, or the instance's host name; the
// target's address and the instance's meta (TXT, owner = target) go in the
// additional section. Instances whose address is a host name appear in SRV
// answers only.
//
// # Rules, in the order they apply
//
//  1. Health: an instance is answered when its aggregated health (its
//     checks and its node's, serfHealth included) is passing, or warning
//     unless only_passing. Critical and maintenance never are.
//  2. Datacenter: instances of nodes in another datacenter are left out;
//     <svc>.service.<other-dc> is NXDOMAIN.
//  3. Tag: <tag>.<svc> and _<svc>._<tag> keep instances with the tag.
//  4. Tier: chorus-priority (integer, lower preferred, default 1) is the
//     SRV priority. SRV answers carry every tier; A, AAAA and TXT carry
//     only the best tier that still has an instance after the zone rule.
//     Tier comes before zone, so a backup is answered exactly when every
//     primary, in any zone, is down.
//  5. Zone, within each tier: when the agent has a zone, only the tier's
//     instances in that zone are kept if there is at least one; otherwise
//     the whole tier is used with zone_failover (the default), and none
//     without it (the zone is a hard boundary; NXDOMAIN when no tier has
//     a local instance).
//  6. Policy: within each tier, the service's chorus-policy or the
//     configured one orders the records: random (weighted shuffle by SRV
//     weight), round-robin (rotation per name), least-loaded (lowest Load
//     first, ties at random), nearest (lowest RTT from Distances, unknown
//     last) or hash (weighted rendezvous hashing on the client address or
//     its EDNS Client Subnet, which is echoed with the scope set).
//  7. Limits: a_record_limit caps A/AAAA records, udp_answer_limit caps
//     answers to UDP clients without EDNS0; then the size limit (512 bytes
//     without EDNS0, min(client size, max_udp_size) with it, 65535 on TCP,
//     the OPT record counted) drops whole records from the end of the
//     order, each with its additional records, and sets TC when anything
//     was dropped.
//
// A name with no instance left after rules 1–4 is NXDOMAIN (as in Consul);
// an existing name asked with a type it has no record of is NODATA; both
// carry the SOA in the authority section, whose TTL is soa.min_ttl
// (default 5 s), the negative-caching TTL. ANY is answered minimally (RFC
// 8482): the A and AAAA records, the SOA at the apex, else HINFO
// "RFC8482".
//
// # Where Chorus differs from Consul
//
//   - TC is set whenever records were left out for size (Consul trims
//     silently unless enable_truncate), so clients retry over TCP.
//   - The negative TTL (soa.min_ttl) defaults to 5 s, not 0.
//   - SRV priority is the chorus-priority tier (Consul: always 1), and
//     weights order A and AAAA answers too, not only the SRV weight field.
//   - SRV targets omit the datacenter label: <node>.node.<domain>.
//   - A PTR query for an address no node or instance has is forwarded to
//     the recursors, or REFUSED without any (Consul: NXDOMAIN): the reverse
//     zones are not ours.
//   - An instance whose address is a host name is left out of A/AAAA
//     answers (Consul answers a CNAME) and appears in SRV with that host as
//     target.
//   - Prepared queries (.query), .connect, .virtual and .ingress are not
//     served (NXDOMAIN).
//
// # Speed
//
// Answers are prepared on a name's first query and kept per
// configuration: for each (lower-case name, type) the rules 1–5 are
// applied and every record
// is encoded in wire format, pointing (compression) only into the
// question, which sits at a fixed offset. Per query the server orders the
// prepared records, copies the ones that fit and writes the header and the
// question as the client sent it, which also echoes its letter case. No
// dns.Msg is packed on the answer path. An entry derived from one service
// or one node stays valid for every catalog snapshot in which that
// service's or node's index is unchanged, so a catalog change prepares
// nothing by itself and a later query prepares again only the names whose
// own input changed; other entries (the apex, DNS-SD's service list,
// addresses, reverse names) are prepared again on their first query after
// any change.
package dns
