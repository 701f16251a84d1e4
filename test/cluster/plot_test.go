package cluster

import (
	"bytes"
	"image/png"
	"testing"
	"time"
)

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
	var buf bytes.Buffer
	if err := tl.WritePNG(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len() > 40<<10 {
		t.Errorf("PNG is %d bytes; want a small file", buf.Len())
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if w := img.Bounds().Dx(); w != plotW {
		t.Errorf("width %d, want %d", w, plotW)
	}
	// Every colour that means something appears somewhere.
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
		}
	}
	for name, c := range map[string][3]uint32{
		"answer": {30, 90, 200}, "empty": {220, 0, 0}, "stale": {240, 140, 0},
		"down": {215, 215, 215}, "fault": {255, 228, 228}, "timeout": {150, 150, 150}, "repair": {0, 150, 0},
	} {
		if !seen[c] {
			t.Errorf("no %s pixels (%v)", name, c)
		}
	}
}

func TestGlyphs(t *testing.T) {
	for r, g := range glyphs {
		for i, row := range g {
			if len(row) != 5 {
				t.Errorf("glyph %q row %d has %d columns", r, i, len(row))
			}
		}
	}
	for _, r := range "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-+/|()%=<>_#'?!*[]" {
		if _, ok := glyphs[r]; !ok {
			t.Errorf("no glyph for %q", r)
		}
	}
}

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
