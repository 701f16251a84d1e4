// Package catalog owns Chorus's data model (nodes, services, checks, health)
// and the replicated catalog: a Store that applies node records and member
// states, and the immutable, indexed Snapshot it swaps atomically on every
// change so that DNS and HTTP readers never take a lock.
//
// catalog has no network code and imports no other Chorus package; it must
// never import agent, dns or checks.
package catalog
