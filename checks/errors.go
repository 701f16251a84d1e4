package checks

import "errors"

var (
	// ErrNotFound is returned for an operation on a check ID the Manager does not hold.
	ErrNotFound = errors.New("check not found")

	// ErrNotTTL is returned by Manager.UpdateTTL for a check that is not a TTL check.
	ErrNotTTL = errors.New("check is not a TTL check")

	// ErrInvalid wraps every validation error: a bad Definition or a bad status.
	ErrInvalid = errors.New("invalid check")

	// ErrScriptDisabled is returned, wrapped together with ErrInvalid, for a script
	// check when Config.EnableScriptChecks is false.
	ErrScriptDisabled = errors.New("script checks are disabled: set enable_script_checks: true in the agent config")

	// ErrDockerDisabled is returned, wrapped together with ErrInvalid, for a
	// Docker check when Config.EnableScriptChecks is false: a Docker check
	// runs a command (in a container) and is gated like a script check, as
	// in Consul.
	ErrDockerDisabled = errors.New("docker checks run commands and are disabled with script checks: set enable_script_checks: true in the agent config")

	// ErrStopped is returned by Manager.Add, Manager.UpdateTTL and a second
	// Manager.Run once Run has returned.
	ErrStopped = errors.New("check manager stopped")
)
