// Package local owns this agent's own node: the services and checks
// registered on it (over the API, in config files, or as external
// services through the catalog API), the status, output and critical-since
// time of every local check, the node record built from them and its
// version, and their persistence in the data dir (atomic write, group
// commit, a previous copy to fall back on).
//
// Check runners (package checks) report results to the State; the State
// hands each new record to the publish function it was given, which the
// agent wires to the catalog store and the replication. Data flows one
// way: local never imports the agent, the replication or the HTTP API.
//
// It imports catalog and checks only.
package local
