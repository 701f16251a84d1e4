// Package checks runs Chorus's health checks: HTTP, TCP (optionally with a
// TLS handshake), UDP, gRPC (grpc.health.v1), HTTP/2 PING, TTL, script,
// Docker (a command run in a container through the Docker Engine API),
// alias (follows another node or service instance through a read-only
// Catalog view the agent passes in) and OS-service (systemd) checks, each in
// its own goroutine, with Consul's semantics for intervals, timeouts,
// initial status and flap damping (SuccessBeforePassing,
// FailuresBeforeWarning, FailuresBeforeCritical).
//
// A Manager owns the running checks and hands every result to a callback; it
// keeps no status, no catalog and gossips nothing. The agent's local state owns
// each check's status, output and critical-since time: it turns results into
// its node record and deregisters services whose checks stay critical for
// DeregisterCriticalServiceAfter.
//
// checks imports no other Chorus package; it must never import agent, catalog or
// dns.
package checks
