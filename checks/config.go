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
	// EnableScriptChecks allows script checks (Args) and Docker checks
	// (DockerContainerID). Off by default, as in Consul.
	EnableScriptChecks bool

	// DockerSocket is the path of the Docker Engine's unix socket that
	// Docker checks talk to; "" refuses Docker checks.
	DockerSocket string

	// Catalog is the read-only view of the cluster catalog that alias
	// checks follow; nil refuses alias checks.
	Catalog Catalog

	// OutputMaxSize is how many bytes of output a check keeps; 0 means
	// DefaultOutputMaxSize.
	OutputMaxSize int
}

func (c Config) outputMaxSize() int {
	if c.OutputMaxSize <= 0 {
		return DefaultOutputMaxSize
	}
	return c.OutputMaxSize
}
