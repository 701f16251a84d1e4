// Package cluster is Chorus's fault-test harness: it runs N chorus agents
// (5 by default) as separate hosts, each a Linux network namespace with
// its own address on a bridge, with a demo HTTP service per host
// registered with an HTTP check, and injects faults from outside the
// agents:
//
//   - crash (SIGKILL) and restart with the same data dir;
//   - hang (SIGSTOP, then SIGCONT);
//   - graceful restart (SIGTERM) of one agent, and of every agent in turn;
//   - partitions: one host cut off, a 2|3 split (iptables DROP in the
//     hosts' namespaces), then heal;
//   - 20% loss and 50 ms delay on a host's outgoing traffic (iptables
//     statistic match, and NFQUEUE served by hosttool netem: this
//     kernel has no netem qdisc);
//   - a demo service dying (its check fails, the agent runs on).
//
// A Prober asks every agent for demo.service.chorus over UDP a hundred
// times a second and records every answer with its time; it also records
// every agent's member list. Analyze judges the record against the
// Events each Scenario logs (what was done, and so what every agent
// should answer), and Report and Timeline turn the verdicts into a
// Markdown table and one PNG per scenario.
//
// ClusterConfig.Datacenters splits the hosts into datacenters linked by
// the WAN pool, and Impairment.To limits a delay or loss to some
// destinations (the other site): cmd/wan2dc runs the two-datacenter
// scenarios (failover across sites and back, a change crossing sites,
// every speaker of a site killed, the sites cut apart, idle WAN cost) on
// 2 × 3 hosts with 30 ms between the sites.
//
// Run it with `make chaos` (the full set, results in test/cluster/results)
// or test/cluster/ci.sh (the short set). It needs root, ip and
// iptables-restore; Preflight says why not when they are missing.
//
// The package drives the chorus binary only; it imports nothing from the
// agent.
package cluster
