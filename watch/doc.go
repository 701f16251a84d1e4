// Package watch runs Consul-style watches against an agent's HTTP API: a
// loop of blocking queries (X-Consul-Index) that reports a result every time
// its content changes, and a helper that runs a handler command with the
// result on its standard input.
//
// It imports nothing of Chorus, only Consul's API client, so that the
// command-line client (`chorus watch`) and the agent (watches in its
// config) share one implementation.
package watch
