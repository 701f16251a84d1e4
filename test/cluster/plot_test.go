package cluster

import (
	"bytes"
	"flag"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gonum.org/v1/plot/vg"
)

var timelineOut = flag.String("timeline.out", "", "also write the test timelines as PNGs to this directory, to look at them")

// writeTimeline renders tl, checks it decodes as a PNG plotW pixels wide,
// and writes it to -timeline.out when set.
func writeTimeline(t *testing.T, name string, tl *Timeline) image.Image {
	t.Helper()
	var buf bytes.Buffer
	if err := tl.WritePNG(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len() > 200<<10 {
		t.Errorf("%s: PNG is %d bytes; want at most 200 KiB", name, buf.Len())
	}
	if *timelineOut != "" {
		if err := os.WriteFile(filepath.Join(*timelineOut, name+".png"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if w := img.Bounds().Dx(); w != plotW {
		t.Errorf("%s: width %d, want %d", name, w, plotW)
	}
	return img
}

// colours returns the colours of img's pixels, as 8-bit RGB.
func colours(img image.Image) map[[3]uint32]bool {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
		}
	}
	return seen
}

func TestTimelinePNG(t *testing.T) {
	events := []Event{
		{At: 0, Label: "start"},
		{At: 2 * time.Second, Label: "SIGKILL h2", Fault: true, State: State{Down: 0b10}},
		{At: 6 * time.Second, Label: "restart h2"},
	}
	answers := merge(
		feed(0, 2*time.Second, 0b111, KindOK, 0, 1, 2),
		feed(2*time.Second, 3*time.Second, 0b111, KindOK, 0, 2),
		feed(3*time.Second, 6*time.Second, 0b101, KindOK, 0, 2),
		feed(6*time.Second, 6100*time.Millisecond, 0, KindNXDomain, 1),
		feed(6100*time.Millisecond, 9*time.Second, 0b111, KindOK, 0, 1, 2),
		feed(4*time.Second, 5*time.Second, 0, KindTimeout, 2),
	)
	tl := &Timeline{Title: "crash: test", Subtitle: "detection 1.00s", N: 3, Start: 0, End: 9 * time.Second,
		Events: events, Answers: answers, Detect: 5 * time.Second}
	img := writeTimeline(t, "crash", tl)
	// Every colour that means something fills some pixels exactly.
	seen := colours(img)
	for name, c := range map[string][3]uint32{
		"answer": {30, 90, 200}, "expected": {150, 220, 150}, "empty": {220, 0, 0}, "stale": {240, 140, 0},
		"down": {215, 215, 215}, "fault": {255, 228, 228}, "timeout": {150, 150, 150}, "repair": {0, 150, 0},
		"lane": {246, 246, 246},
	} {
		if !seen[c] {
			t.Errorf("no %s pixels (%v)", name, c)
		}
	}
}

// TestTimelineRolling draws five agents through a rolling restart: many
// events whose labels need several rows, a down span in every lane, and
// detection bounds past the end.
func TestTimelineRolling(t *testing.T) {
	const n = 5
	all := uint32(1<<n - 1)
	events := []Event{{At: 0, Label: "start"}}
	var parts [][]Answer
	at := 3 * time.Second
	for i := range n {
		down := uint32(1) << i
		events = append(events,
			Event{At: at, Label: "SIGTERM " + hostName(i), Fault: true, State: State{Down: down}},
			Event{At: at + 1500*time.Millisecond, Label: "start " + hostName(i)})
		var others []int
		for j := range n {
			if j != i {
				others = append(others, j)
			}
		}
		parts = append(parts,
			feed(at, at+300*time.Millisecond, all, KindOK, others...),
			feed(at+300*time.Millisecond, at+1500*time.Millisecond, all&^down, KindOK, others...),
			feed(at+1500*time.Millisecond, at+1600*time.Millisecond, 0, KindEmpty, i),
			feed(at+1600*time.Millisecond, at+2200*time.Millisecond, all&^down, KindOK, 0, 1, 2, 3, 4),
			feed(at+2200*time.Millisecond, at+2500*time.Millisecond, all, KindOK, 0, 1, 2, 3, 4),
		)
		at += 2500 * time.Millisecond
	}
	parts = append(parts, feed(0, 3*time.Second, all, KindOK, 0, 1, 2, 3, 4), feed(at, at+4*time.Second, all, KindOK, 0, 1, 2, 3, 4))
	tl := &Timeline{
		Title:    "rolling-restart: SIGTERM and restart every agent in turn, waiting for the cluster to converge before the next",
		Subtitle: "detection 0.30s  recovery 0.70s  catalogs 0.84s  wrong 0  empty 5  missing 0  lost 0/25  false failures 0",
		N:        n, Start: 0, End: at + 4*time.Second, Events: events, Answers: merge(parts...), Detect: 5 * time.Second,
	}
	tl.Start, tl.End = 100*time.Second, 100*time.Second+tl.End
	for i := range tl.Events {
		tl.Events[i].At += tl.Start
	}
	for i := range tl.Answers {
		tl.Answers[i].At += tl.Start
	}
	writeTimeline(t, "rolling-restart", tl)

	labels := tl.eventLabels()
	if len(labels) != 2*n {
		t.Fatalf("%d labels, want %d", len(labels), 2*n)
	}
	// Labels 1.5 s apart on a 20 s axis overlap on one row.
	placed := placeLabels(labels, func(d time.Duration) vg.Length { return vg.Length(d.Seconds() * 40) })
	rows := map[int]bool{}
	for _, lb := range placed {
		rows[lb.row] = true
	}
	if len(rows) < 2 {
		t.Errorf("all labels on %d row(s), want them spread", len(rows))
	}
}

func TestTimelineSpans(t *testing.T) {
	cut := State{}
	cut.Group[2] = 1
	tl := &Timeline{Start: 10 * time.Second, End: 30 * time.Second, Events: []Event{
		{At: 10 * time.Second, Label: "start"},
		{At: 12 * time.Second, Label: "cut off h3", Fault: true, State: cut},
		{At: 15 * time.Second, Label: "SIGKILL h1", Fault: true, State: State{Down: 1, Group: cut.Group}},
		{At: 18 * time.Second, Label: "heal", State: State{}},
		{At: 20 * time.Second, Label: "delay all", Fault: true},
		{At: 25 * time.Second, Label: "undo delay"},
		{At: 40 * time.Second, Label: "after the end", Fault: true, State: State{Down: 2}},
	}}
	got := tl.spans(tl.End - tl.Start)
	want := []span{
		{from: 0, to: 2 * time.Second},
		{from: 2 * time.Second, to: 5 * time.Second, state: cut, shaded: true},
		{from: 5 * time.Second, to: 8 * time.Second, state: State{Down: 1, Group: cut.Group}, shaded: true},
		{from: 8 * time.Second, to: 10 * time.Second},
		// A fault that leaves the state as it was is shaded all the same.
		{from: 10 * time.Second, to: 15 * time.Second, shaded: true},
		{from: 15 * time.Second, to: 20 * time.Second},
	}
	if len(got) != len(want) {
		t.Fatalf("spans = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("span %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, tc := range []struct {
		at   time.Duration
		want State
	}{
		{0, State{}}, {2 * time.Second, cut}, {7 * time.Second, State{Down: 1, Group: cut.Group}}, {25 * time.Second, State{}},
	} {
		if s := stateAt(got, tc.at); s != tc.want {
			t.Errorf("stateAt(%v) = %+v, want %+v", tc.at, s, tc.want)
		}
	}
}

func TestAnswerSteps(t *testing.T) {
	const n = 3
	spans := []span{
		{from: 0, to: time.Second},
		{from: time.Second, to: 1100 * ms, state: State{Down: 0b001}},
		{from: 1100 * ms, to: 2 * time.Second, state: State{Down: 0b010}},
		{from: 2 * time.Second, to: 4 * time.Second},
	}
	answers := merge(
		feed(0, 500*ms, 0b111, KindOK, 0),
		feed(500*ms, 800*ms, 0b101, KindOK, 0),
		feed(900*ms, 1000*ms, 0b101, KindOK, 0),
		feed(1200*ms, 1500*ms, 0b111, KindOK, 0), // h2 is down: stale
		feed(1500*ms, 1700*ms, 0, KindTimeout, 0),
		feed(2000*ms, 2200*ms, 0b111, KindOK, 0),
	)
	got := answerSteps(answers, spans, 0, n, 0, 4*time.Second)
	want := []step{
		{from: 0, to: 0.5, k: 3},
		{from: 0.5, to: 1.0, k: 2}, // the answer at 0.9 s stands until the agent goes down
		{from: 1.2, to: 1.65, k: 3, stale: true},
		{from: 2.0, to: 2.35, k: 3},
	}
	if len(got) != len(want) {
		t.Fatalf("steps = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.k != w.k || g.stale != w.stale || !near(g.from, w.from) || !near(g.to, w.to) {
			t.Errorf("step %d = %+v, want %+v", i, g, w)
		}
	}
	// Touching steps of one colour make one line; the orange run is its own.
	if lines := stepLines(got, 1); len(lines) != 3 {
		t.Errorf("%d lines, want 3", len(lines))
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestTickStep(t *testing.T) {
	for _, tc := range []struct{ span, want time.Duration }{
		{10 * time.Second, time.Second},
		{30 * time.Second, 2 * time.Second},
		{75 * time.Second, 5 * time.Second},
		{10 * time.Minute, time.Minute},
	} {
		if got := tickStep(tc.span); got != tc.want {
			t.Errorf("tickStep(%v) = %v, want %v", tc.span, got, tc.want)
		}
	}
}

// TestTimelineEmpty draws a timeline with no events, answers or span, as
// a scenario that failed before it started leaves.
func TestTimelineEmpty(t *testing.T) {
	writeTimeline(t, "empty", &Timeline{Title: "empty", Start: 5 * time.Second, End: 5 * time.Second})
	writeTimeline(t, "one", &Timeline{N: 1, Events: []Event{{Label: "start"}}, End: 3 * time.Second,
		Answers: []Answer{{At: 4 * time.Second, Kind: KindOK, Set: 1}, {At: time.Second, Host: 3, Kind: KindOK, Set: 1}}})
}
