package main

import (
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses: fields count from the last ')'.
	line := "4242 (chorus (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 8 0 100 1234567 5000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	s, err := parseStat([]byte(line), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if s.cpu != 3*time.Second || s.rss != 5000*4096 {
		t.Fatalf("got cpu %v rss %d, want 3s and %d", s.cpu, s.rss, 5000*4096)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a b 0 0 20 0 1 0 1 1 1"} {
		if _, err := parseStat([]byte(bad), 4096); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	m := parseMetrics([]byte(`# HELP x y
chorus_members{status="alive"} 300
chorus_member_events_total{type="member-failed"} 4162
process_resident_memory_bytes 2.5e+07
odd{label="a } b"} 7
broken{status="alive"}
`))
	want := map[string]float64{
		`chorus_members{status="alive"}`:                   300,
		`chorus_member_events_total{type="member-failed"}`: 4162,
		`process_resident_memory_bytes`:                    2.5e7,
		`odd{label="a } b"}`:                               7,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if len(m) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(m), len(want), m)
	}
}

func TestParseNftSet(t *testing.T) {
	b := []byte(`{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "ip", "name": "sent_udp", "elem": [{"elem": {"val": "127.1.0.5", "counter": {"packets": 1, "bytes": 128}}}, {"elem": {"val": "127.1.0.7", "counter": {"packets": 2, "bytes": 156}}}]}}]}`)
	got, err := parseNftSet(b)
	if err != nil {
		t.Fatal(err)
	}
	if got["127.1.0.5"] != 128 || got["127.1.0.7"] != 156 || len(got) != 2 {
		t.Fatalf("got %v", got)
	}
	if _, err := parseNftSet([]byte("{")); err == nil {
		t.Fatal("no error for truncated JSON")
	}
}

func TestPct(t *testing.T) {
	ds := []time.Duration{5, 1, 3, 2, 4}
	if pct(ds, 50) != 3 || pct(ds, 99) != 5 || pct(nil, 99) != 0 {
		t.Fatalf("p50 %v p99 %v", pct(ds, 50), pct(ds, 99))
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (a) S 1 1 1 0 -1 0 0 0 0 0 10 20 0 0 20 0 1 0 1 1 300"))
	f.Add([]byte("1 (a b)) R 1 1 1 0 -1 0 0 0 0 0 18446744073709551615 1 0 0 20 0 1 0 1 1 -1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseStat(b, 4096)
		if err == nil && (s.cpu < 0 || s.rss < 0) {
			t.Fatalf("negative figures %+v from %q", s, b)
		}
	})
}

func FuzzParseMetrics(f *testing.F) {
	f.Add([]byte("a{b=\"c\"} 1\n# x\nd 2e3\n"))
	f.Add([]byte("}{ 1\n{} NaN\n x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for k := range parseMetrics(b) {
			if k == "" {
				t.Fatalf("empty series name from %q", b)
			}
		}
	})
}

func FuzzParseNftSet(f *testing.F) {
	f.Add([]byte(`{"nftables": [{"set": {"elem": [{"elem": {"val": "127.1.0.1", "counter": {"bytes": 1}}}]}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseNftSet(b)
	})
}
