// Package local owns this agent's own node: the services and checks
// registered on it (over the API, in config files, or as external
// services through the catalog API), the status, output and critical-since
// time of every local check, the node record built from them and its
// version, and their persistence in the data dir: a write-ahead journal
// (package journal, in data_dir/local) with one entry per change, shared
// fsyncs and background compaction into a snapshot. An older agent's
// data_dir/local.json is migrated into the journal once. Damaged state
// stops the start with the file and the way to recover; only a torn end
// (a write cut short by a crash, which looks the same as damage to the
// last acknowledged write) is dropped, with an ERROR and a metric.
//
// Check runners (package checks) report results to the State; the State
// hands each new record to the publish function it was given, which the
// agent wires to the catalog store and the replication. Data flows one
// way: local never imports the agent, the replication or the HTTP API.
//
// Externals holds the external nodes this agent owns (nodes registered
// through the catalog API that run no agent): their journal in
// data_dir/external, the writes accepted here, yielding to a newer
// version another agent wrote, and the adoption of the nodes of owners
// that failed or left (adopt.go). It reads member statuses from the
// catalog, never from the gossip layer.
//
// It imports catalog, checks and its own journal package only.
package local
