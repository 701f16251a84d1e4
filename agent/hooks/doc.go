// Package hooks runs the commands an agent's configuration attaches to
// what happens in the cluster: event handlers (Serf's: a command per
// member event, with the members on standard input and Serf's
// environment) and watches (Consul's: a command with the result's JSON
// at every change of a watched query against the agent's own HTTP API).
// It owns their configuration entries and validation (event_handlers,
// watches), the bounded queue and worker pool of handler runs, and the
// watches' goroutines.
//
// It imports agent/gossip (the member event type) and watch; it must
// never import agent, and no package it imports may import it.
package hooks
