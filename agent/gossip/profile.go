package gossip

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// Tuning holds the expert gossip knobs (the config's gossip.* keys); zero
// values take the profile's.
type Tuning struct {
	ProbeInterval time.Duration `mapstructure:"probe_interval"`
	ProbeTimeout  time.Duration `mapstructure:"probe_timeout"`
	SuspicionMult int           `mapstructure:"suspicion_mult"`
	// SuspicionMaxTimeoutMult bounds how long a suspicion that no other
	// member confirms may last, as a multiple of the suspicion timeout.
	SuspicionMaxTimeoutMult int           `mapstructure:"suspicion_max_timeout_mult"`
	GossipInterval          time.Duration `mapstructure:"gossip_interval"`
	PushPullInterval        time.Duration `mapstructure:"push_pull_interval"`
	// RetransmitMult: each member passes on a gossiped message (a
	// suspicion, its refutation, a tag change) this × log10(members+1)
	// times.
	RetransmitMult int `mapstructure:"retransmit_mult"`
}

// Validate returns an error naming the first negative knob as the user
// wrote it (gossip.probe_interval…), in a fixed order: the durations,
// then the multipliers.
func (t Tuning) Validate() error {
	for _, k := range []struct {
		key string
		neg bool
	}{
		{"probe_interval", t.ProbeInterval < 0}, {"probe_timeout", t.ProbeTimeout < 0},
		{"gossip_interval", t.GossipInterval < 0}, {"push_pull_interval", t.PushPullInterval < 0},
		{"suspicion_mult", t.SuspicionMult < 0}, {"suspicion_max_timeout_mult", t.SuspicionMaxTimeoutMult < 0},
		{"retransmit_mult", t.RetransmitMult < 0},
	} {
		if k.neg {
			return fmt.Errorf("gossip.%s: must not be negative", k.key)
		}
	}
	return nil
}

// timings are the memberlist and serf timings of a profile.
type timings struct {
	ProbeInterval, ProbeTimeout, GossipInterval, PushPullInterval time.Duration
	// SuspicionMaxTimeoutMult, when set, replaces memberlist's 6: how
	// many suspicion timeouts a suspicion that no other member confirms
	// may last.
	SuspicionMult, SuspicionMaxTimeoutMult int
	// RetransmitMult, when set, replaces memberlist's 4.
	RetransmitMult int
	// AwarenessMaxMultiplier, when set, replaces memberlist's 8: how far
	// Lifeguard may stretch a member's own probe interval while its
	// probes fail without nacks (the member itself is slow).
	AwarenessMaxMultiplier int
	// HandoffQueueDepth, when set, replaces memberlist's 1,024: suspect,
	// alive and dead messages waiting for the handler, per priority.
	HandoffQueueDepth int
	ReconnectInterval time.Duration
	base              func() *memberlist.Config
}

// ValidateProfile checks a gossip_profile value: lan, wan, local, or ""
// (lan).
func ValidateProfile(name string) error {
	_, err := profileTimings(name)
	return err
}

// profileTimings returns the timings of a named profile:
//   - lan (default): probes every 300 ms with a 200 ms timeout. Lifeguard's
//     dynamic suspicion is on: suspicion ×3 wants one independent
//     confirmation (memberlist's k = mult − 2) to declare a member at the
//     floor, 3 × log10(members) × 300 ms, which a real crash gets within a
//     probe round; an unconfirmed suspicion (a single starved prober's)
//     lasts up to ×6 that, time for the suspect's refutation to get
//     through. Lifeguard stretches a member's own probe interval up to 9×
//     while its probes fail without nacks (AwarenessMaxMultiplier 8), and
//     up to 4,096 suspect/alive/dead messages wait for the handler per
//     priority (memberlist's 1,024), so a starved member drops fewer
//     refutations. Messages are passed on 8 × ⌈log10(members+1)⌉ times
//     each (memberlist's 4), so that a refutation reaches its accuser
//     under heavy loss. The measurements behind these choices are in
//     BENCHMARKS.md ("Tuning experiments", "Scale");
//   - wan: memberlist's DefaultWANConfig;
//   - local: for agents on one machine (tests, demos).
func profileTimings(name string) (timings, error) {
	switch name {
	case "", "lan":
		return timings{
			ProbeInterval: 300 * time.Millisecond, ProbeTimeout: 200 * time.Millisecond,
			GossipInterval: 100 * time.Millisecond, PushPullInterval: 30 * time.Second,
			SuspicionMult: 3, SuspicionMaxTimeoutMult: 6, RetransmitMult: 8,
			AwarenessMaxMultiplier: 8, HandoffQueueDepth: 4096,
			ReconnectInterval: 2 * time.Second, base: memberlist.DefaultLANConfig,
		}, nil
	case "wan":
		return timings{
			ProbeInterval: 5 * time.Second, ProbeTimeout: 3 * time.Second,
			GossipInterval: 500 * time.Millisecond, PushPullInterval: 60 * time.Second,
			SuspicionMult: 6, ReconnectInterval: 30 * time.Second, base: memberlist.DefaultWANConfig,
		}, nil
	case "local":
		return timings{
			ProbeInterval: 200 * time.Millisecond, ProbeTimeout: 100 * time.Millisecond,
			GossipInterval: 50 * time.Millisecond, PushPullInterval: 10 * time.Second,
			SuspicionMult: 2, ReconnectInterval: time.Second, base: memberlist.DefaultLocalConfig,
		}, nil
	}
	return timings{}, fmt.Errorf("unknown profile %q (lan, wan or local)", name)
}
