package checks

import "time"

const (
	// DefaultOutputMaxSize is the number of bytes of output a check keeps (4 KiB, as Consul).
	DefaultOutputMaxSize = 4096

	// DefaultTimeout is the probe timeout of a check that sets none (10 s, as Consul).
	DefaultTimeout = 10 * time.Second

	// MinInterval is the shortest Interval a probing check may have.
	MinInterval = 100 * time.Millisecond

	// UserAgent is the User-Agent header of HTTP checks unless the check's Header sets one.
	UserAgent = "Chorus Health Check"

	// firstRunJitter bounds the random delay before a new check's first probe.
	firstRunJitter = time.Second
)

// Config holds the settings shared by all checks of one Manager. The zero value is
// usable: script checks off, 4 KiB of output, every output change reported.
//
// After calling New, the configuration should no longer be modified by the caller.
type Config struct {
	// EnableScriptChecks allows script checks (Args). Off by default, as in Consul.
	EnableScriptChecks bool

	// OutputMaxSize is how many bytes of output a check keeps; 0 means
	// DefaultOutputMaxSize.
	OutputMaxSize int

	// CheckUpdateInterval rate-limits changes of output alone, like Consul's
	// check_update_interval: when a probe's status is unchanged but its output
	// differs, the change is reported only if the last report of that check is at
	// least this old (otherwise it is dropped and a later probe reports it).
	// Status changes and TTL updates are always reported at once. 0 reports every
	// output change.
	CheckUpdateInterval time.Duration
}

// DefaultConfig returns the default configuration: script checks disabled,
// OutputMaxSize 4 KiB, and CheckUpdateInterval 5 minutes as Consul.
func DefaultConfig() Config {
	return Config{
		OutputMaxSize:       DefaultOutputMaxSize,
		CheckUpdateInterval: 5 * time.Minute,
	}
}

func (c Config) outputMaxSize() int {
	if c.OutputMaxSize <= 0 {
		return DefaultOutputMaxSize
	}
	return c.OutputMaxSize
}
