// Package checks runs Chorus's health checks: HTTP, TCP, gRPC (grpc.health.v1),
// TTL and script checks, each in its own goroutine, with Consul's semantics for
// intervals, timeouts, initial status and flap damping (SuccessBeforePassing,
// FailuresBeforeWarning, FailuresBeforeCritical).
//
// A Manager owns the running checks and reports every change of a check's status
// or output through a callback; it keeps no catalog and gossips nothing. The agent
// turns those results into its node record and deregisters services whose checks
// stay critical for DeregisterCriticalServiceAfter (see Manager.CriticalSince).
//
// checks imports no other Chorus package; it must never import agent, catalog or
// dns.
package checks
