package checks

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestTTLUpdateAndExpiry(t *testing.T) {
	m, rec := startManager(t, Config{})
	const ttl = 300 * time.Millisecond
	mustAdd(t, m, Definition{ID: "ttl", TTL: ttl})

	if err := m.UpdateTTL("ttl", StatusPassing, "all good"); err != nil {
		t.Fatalf("UpdateTTL: %v", err)
	}
	// notify ran before UpdateTTL returned.
	if res, ok := rec.last("ttl"); !ok || res.Status != StatusPassing || res.Output != "all good" {
		t.Fatalf("notified %+v after UpdateTTL, want passing \"all good\"", res)
	}

	// Updates more often than the TTL keep it alive well past one TTL.
	start := time.Now()
	for time.Since(start) < 3*ttl {
		if err := m.UpdateTTL("ttl", StatusPassing, "all good"); err != nil {
			t.Fatalf("UpdateTTL: %v", err)
		}
		if res, _ := lastResult(m, "ttl"); res.Status != StatusPassing {
			t.Fatalf("expired at %s despite updates every %s: %+v", time.Since(start), ttl/4, res)
		}
		time.Sleep(ttl / 4) // the pace of the updates under test, not synchronisation
	}
	if got := rec.statuses("ttl"); len(got) != 1 {
		t.Errorf("notified %v, want one notification for unchanged updates", got)
	}

	// Without updates it expires, keeping the last output.
	if err := m.UpdateTTL("ttl", StatusPassing, "all good"); err != nil {
		t.Fatal(err)
	}
	updated := time.Now()
	res := waitStatus(t, m, "ttl", StatusCritical, 5*time.Second)
	if took := time.Since(updated); took < ttl-50*time.Millisecond {
		t.Errorf("expired after %s, before the TTL of %s", took, ttl)
	}
	if want := "TTL expired (last output before timeout follows): all good"; res.Output != want {
		t.Errorf("expired output %q, want %q", res.Output, want)
	}
	if res.At.Before(updated) {
		t.Errorf("expiry reported at %v, before the last update %v", res.At, updated)
	}

	// An update revives it and restarts the TTL.
	if err := m.UpdateTTL("ttl", StatusWarning, "slow"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, m, "ttl", StatusWarning, time.Second)
	res = waitStatus(t, m, "ttl", StatusCritical, 5*time.Second)
	if want := "TTL expired (last output before timeout follows): slow"; res.Output != want {
		t.Errorf("expired output %q, want %q", res.Output, want)
	}
	want := []string{StatusPassing, StatusCritical, StatusWarning, StatusCritical}
	if got := rec.statuses("ttl"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("notified %v, want %v", got, want)
	}
}

func TestTTLExpiresWithoutAnyUpdate(t *testing.T) {
	m, _ := startManager(t, Config{})
	mustAdd(t, m, Definition{ID: "ttl", TTL: 150 * time.Millisecond, Status: StatusPassing})
	res := waitStatus(t, m, "ttl", StatusCritical, 5*time.Second)
	if res.Output != "TTL expired" {
		t.Errorf("output %q, want %q", res.Output, "TTL expired")
	}
}

func TestTTLUpdateBeforeRun(t *testing.T) {
	rec := &recorder{}
	m := New(Config{}, nil, rec.notify)
	mustAdd(t, m, Definition{ID: "ttl", TTL: time.Minute})
	if err := m.UpdateTTL("ttl", StatusPassing, "early"); err != nil {
		t.Fatalf("UpdateTTL before Run: %v", err)
	}
	if res, _ := rec.last("ttl"); res.Status != StatusPassing || res.Output != "early" {
		t.Errorf("Status = %+v, want passing \"early\"", res)
	}
}

func TestUpdateTTLErrors(t *testing.T) {
	m, _ := startManager(t, Config{OutputMaxSize: 10})
	mustAdd(t, m, Definition{ID: "ttl", TTL: time.Minute})
	mustAdd(t, m, Definition{ID: "tcp", TCP: "127.0.0.1:1", Interval: time.Minute})

	tests := []struct {
		id, status string
		want       error
	}{
		{"nope", StatusPassing, ErrNotFound},
		{"tcp", StatusPassing, ErrNotTTL},
		{"ttl", "ok", ErrInvalid},
		{"ttl", "", ErrInvalid},
	}
	for _, tc := range tests {
		if err := m.UpdateTTL(tc.id, tc.status, ""); !errors.Is(err, tc.want) {
			t.Errorf("UpdateTTL(%q, %q) = %v, want %v", tc.id, tc.status, err, tc.want)
		}
	}

	// Output is truncated to OutputMaxSize, saying so.
	if err := m.UpdateTTL("ttl", StatusPassing, strings.Repeat("x", 25)); err != nil {
		t.Fatal(err)
	}
	res, _ := lastResult(m, "ttl")
	if want := strings.Repeat("x", 10) + " ... (captured 10 of 25 bytes)"; res.Output != want {
		t.Errorf("output %q, want %q", res.Output, want)
	}
}
