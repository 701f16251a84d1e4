package gossip

import (
	"strings"
	"testing"
	"time"
)

// TestGossipProfileAndKnobs: the lan profile's timings reach memberlist,
// and every gossip.* knob that is set replaces the profile's value.
func TestGossipProfileAndKnobs(t *testing.T) {
	ml, _ := memberlistConfig("", Tuning{})
	if ml.ProbeInterval != 300*time.Millisecond || ml.ProbeTimeout != 200*time.Millisecond ||
		ml.SuspicionMult != 3 || ml.SuspicionMaxTimeoutMult != 6 || ml.RetransmitMult != 8 ||
		ml.AwarenessMaxMultiplier != 8 || ml.HandoffQueueDepth != 4096 ||
		ml.GossipInterval != 100*time.Millisecond || ml.PushPullInterval != 30*time.Second {
		t.Fatalf("lan profile: %+v", ml)
	}
	if ml.EnableCompression {
		t.Fatal("compression on")
	}

	knobs := Tuning{
		ProbeInterval: time.Second, ProbeTimeout: 400 * time.Millisecond, SuspicionMult: 5,
		SuspicionMaxTimeoutMult: 3, GossipInterval: 250 * time.Millisecond,
		PushPullInterval: time.Minute, RetransmitMult: 6,
	}
	ml, prof := memberlistConfig("wan", knobs)
	if ml.ProbeInterval != time.Second || ml.ProbeTimeout != 400*time.Millisecond ||
		ml.SuspicionMult != 5 || ml.SuspicionMaxTimeoutMult != 3 || ml.RetransmitMult != 6 ||
		ml.GossipInterval != 250*time.Millisecond || ml.PushPullInterval != time.Minute {
		t.Fatalf("knobs over wan: %+v", ml)
	}
	if prof.ReconnectInterval != 30*time.Second {
		t.Fatalf("wan reconnect interval %v", prof.ReconnectInterval)
	}
}

// TestTuningValidateNamesTheKey: a negative knob is named as the user
// wrote it, and of several the first in a fixed order.
func TestTuningValidateNamesTheKey(t *testing.T) {
	if err := (Tuning{}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		t    Tuning
		want string
	}{
		{Tuning{ProbeTimeout: -1}, "gossip.probe_timeout: "},
		{Tuning{RetransmitMult: -1, PushPullInterval: -1}, "gossip.push_pull_interval: "},
		{Tuning{SuspicionMaxTimeoutMult: -1, SuspicionMult: -2}, "gossip.suspicion_mult: "},
	} {
		if err := tc.t.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q…", tc.t, err, tc.want)
		}
	}
}
