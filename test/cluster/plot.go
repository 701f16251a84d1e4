package cluster

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"time"
)

// Timeline colours (a small palette keeps the PNGs small).
var (
	colWhite    = color.RGBA{255, 255, 255, 255}
	colBlack    = color.RGBA{0, 0, 0, 255}
	colAxis     = color.RGBA{120, 120, 120, 255}
	colLane     = color.RGBA{246, 246, 246, 255}
	colFault    = color.RGBA{255, 228, 228, 255}
	colDown     = color.RGBA{215, 215, 215, 255}
	colAnswer   = color.RGBA{30, 90, 200, 255}
	colExpected = color.RGBA{150, 220, 150, 255}
	colEmpty    = color.RGBA{220, 0, 0, 255}
	colStale    = color.RGBA{240, 140, 0, 255}
	colTimeout  = color.RGBA{150, 150, 150, 255}
	colRepair   = color.RGBA{0, 150, 0, 255}
	colBound    = color.RGBA{230, 120, 120, 255}
)

var palette = color.Palette{colWhite, colBlack, colAxis, colLane, colFault, colDown, colAnswer,
	colExpected, colEmpty, colStale, colTimeout, colRepair, colBound}

// Timeline is what one scenario's PNG shows.
type Timeline struct {
	Title    string
	Subtitle string
	N        int
	Start    time.Duration
	End      time.Duration
	Events   []Event // Events[0] is the initial state
	Answers  []Answer
	Detect   time.Duration // drawn as a dotted line after each fault
}

// Plot layout in pixels.
const (
	plotW      = 960
	marginL    = 34
	marginR    = 12
	titleH     = 26
	laneH      = 60
	laneGap    = 8
	axisH      = 30
	legendH    = 14
	labelRowH  = 10
	labelRows  = 4
	plotInnerW = plotW - marginL - marginR
)

// WritePNG draws the timeline: one lane per agent with the number of
// instances it answered over time (blue: min–max per pixel column, green:
// how many it should answer), empty answers in red, answers holding an
// instance that should be gone in orange, unanswered queries as grey
// ticks, the agent's own downtime in grey, any fault in force in pink,
// faults as red and repairs as green vertical lines with the detection
// bound dotted after each fault.
func (tl *Timeline) WritePNG(w io.Writer) error {
	n := max(tl.N, 1)
	lanesTop := titleH + labelRows*labelRowH + 4
	height := lanesTop + n*(laneH+laneGap) + axisH + legendH
	img := image.NewPaletted(image.Rect(0, 0, plotW, height), palette)
	fill(img, img.Rect, colWhite)
	span := tl.End - tl.Start
	if span <= 0 {
		span = time.Second
	}
	xOf := func(t time.Duration) int {
		return marginL + int(float64(plotInnerW-1)*float64(t-tl.Start)/float64(span))
	}
	tOf := func(x int) time.Duration {
		return tl.Start + time.Duration(float64(span)*float64(x-marginL)/float64(plotInnerW-1))
	}
	lanesBottom := lanesTop + n*(laneH+laneGap) - laneGap

	drawText(img, 4, 3, tl.Title, colBlack)
	drawText(img, 4, 14, tl.Subtitle, colAxis)

	// Background: lanes, faults in force, agents down.
	initial := State{}
	if len(tl.Events) > 0 {
		initial = tl.Events[0].State
	}
	stateAt := func(t time.Duration) State {
		s := initial
		for _, e := range tl.Events {
			if e.At <= t {
				s = e.State
			}
		}
		return s
	}
	// A fault is in force from a fault event to the next repair.
	type window struct{ from, to time.Duration }
	var faults []window
	open := false
	for i, e := range tl.Events {
		switch {
		case i > 0 && e.Fault && !open:
			faults = append(faults, window{e.At, tl.End})
			open = true
		case i > 0 && !e.Fault && open:
			faults[len(faults)-1].to = e.At
			open = false
		}
	}
	inFault := func(t time.Duration) bool {
		for _, f := range faults {
			if t >= f.from && t < f.to {
				return true
			}
		}
		return false
	}
	for x := marginL; x < marginL+plotInnerW; x++ {
		t := tOf(x)
		s := stateAt(t)
		for a := range n {
			top := lanesTop + a*(laneH+laneGap)
			c := colLane
			if inFault(t) || s != initial {
				c = colFault
			}
			if s.Down&(1<<a) != 0 {
				c = colDown
			}
			vline(img, x, top, top+laneH-1, c)
		}
	}

	// Event lines, bound markers and labels.
	row := 0
	lastEnd := make([]int, labelRows)
	for i, e := range tl.Events {
		if i == 0 || e.At < tl.Start || e.At > tl.End {
			continue
		}
		x := xOf(e.At)
		c := colRepair
		if e.Fault {
			c = colEmpty
			// The detection bound matters only when the fault removed something.
			if xb := xOf(e.At + tl.Detect); tl.Detect > 0 && xb < marginL+plotInnerW && e.State != tl.Events[i-1].State {
				for y := lanesTop; y <= lanesBottom; y += 4 {
					vline(img, xb, y, min(y+1, lanesBottom), colBound)
				}
			}
		}
		vline(img, x, lanesTop-2, lanesBottom, c)
		label := fmt.Sprintf("%.1f %s", (e.At - tl.Start).Seconds(), e.Label)
		row = 0
		for row < labelRows-1 && lastEnd[row] > x {
			row++
		}
		y := titleH + row*labelRowH
		lx := min(x+2, plotW-textWidth(label)-2)
		lastEnd[row] = drawText(img, lx, y, label, c) + 6
	}

	// Expected count (green) and answers per pixel column.
	for a := range n {
		top := lanesTop + a*(laneH+laneGap)
		yOf := laneY(top, n)
		drawText(img, 2, top+laneH/2-4, hostName(a), colBlack)
		for k := 0; k <= n; k++ {
			hline(img, marginL-4, marginL-2, yOf(k), colAxis)
		}
		drawText(img, marginL-11, yOf(n)-3, fmt.Sprint(n), colAxis)
		drawText(img, marginL-11, yOf(0)-3, "0", colAxis)
		prevY := -1
		for x := marginL; x < marginL+plotInnerW; x++ {
			s := stateAt(tOf(x))
			if s.Down&(1<<a) != 0 {
				prevY = -1
				continue
			}
			y := yOf(count(s.Expected(a, n)))
			if prevY >= 0 && prevY != y {
				vline(img, x, min(prevY, y)-2, max(prevY, y)+2, colExpected)
			}
			vline(img, x, y-2, y+2, colExpected)
			prevY = y
		}
	}
	type column struct {
		lo, hi            int
		any, empty, stale bool
		timeout           bool
	}
	cols := make([][]column, n)
	for a := range cols {
		cols[a] = make([]column, plotInnerW)
		for i := range cols[a] {
			cols[a][i].lo = math.MaxInt
		}
	}
	for _, x := range tl.Answers {
		a := int(x.Host)
		if a >= n || x.At < tl.Start || x.At >= tl.End {
			continue
		}
		ci := xOf(x.At) - marginL
		if ci < 0 || ci >= plotInnerW {
			continue
		}
		s := stateAt(x.At)
		if s.Down&(1<<a) != 0 {
			continue
		}
		c := &cols[a][ci]
		if x.Kind == KindTimeout {
			c.timeout = true
			continue
		}
		k := count(x.Set)
		c.any = true
		c.lo, c.hi = min(c.lo, k), max(c.hi, k)
		exp := s.Expected(a, n)
		if (x.Kind != KindOK || x.Set == 0) && exp != 0 {
			c.empty = true
		}
		if x.Set&^exp != 0 {
			c.stale = true
		}
	}
	for a := range n {
		top := lanesTop + a*(laneH+laneGap)
		yOf := laneY(top, n)
		for ci, c := range cols[a] {
			x := marginL + ci
			if c.timeout {
				vline(img, x, top, top+2, colTimeout)
			}
			if !c.any {
				continue
			}
			col := colAnswer
			if c.stale {
				col = colStale
			}
			vline(img, x, yOf(c.hi), yOf(c.lo)+1, col)
			if c.empty {
				vline(img, x, yOf(0)-4, yOf(0)+3, colEmpty)
			}
		}
	}

	// Time axis.
	axisY := lanesBottom + 4
	hline(img, marginL, marginL+plotInnerW-1, axisY, colAxis)
	step := tickStep(span)
	for t := time.Duration(0); t <= span; t += step {
		x := xOf(tl.Start + t)
		vline(img, x, axisY, axisY+3, colAxis)
		label := fmt.Sprintf("%ds", int(t.Seconds()))
		drawText(img, x-textWidth(label)/2, axisY+6, label, colAxis)
	}
	ly := axisY + 18
	x := 4
	for _, item := range []struct {
		c color.Color
		s string
	}{
		{colAnswer, "answered"}, {colExpected, "expected"}, {colEmpty, "empty/nxdomain"},
		{colStale, "holds a gone instance"}, {colTimeout, "timeout"}, {colDown, "agent down"},
		{colFault, "fault in force"}, {colBound, "detect bound"},
	} {
		fill(img, image.Rect(x, ly+1, x+8, ly+7), item.c)
		x = drawText(img, x+11, ly, item.s, colBlack) + 10
	}

	bw := bufio.NewWriter(w)
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(bw, img); err != nil {
		return err
	}
	return bw.Flush()
}

// laneY maps a number of instances to a y in the lane starting at top,
// leaving room above the highest level and below zero.
func laneY(top, n int) func(k int) int {
	bottom := top + laneH - 6
	return func(k int) int { return bottom - k*(laneH-14)/n }
}

// tickStep picks a round tick interval giving at most about 16 ticks.
func tickStep(span time.Duration) time.Duration {
	for _, s := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute} {
		if span/s <= 16 {
			return s
		}
	}
	return 10 * time.Minute
}

func fill(img *image.Paletted, r image.Rectangle, c color.Color) {
	idx := uint8(img.Palette.Index(c))
	r = r.Intersect(img.Rect)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetColorIndex(x, y, idx)
		}
	}
}

func vline(img *image.Paletted, x, y0, y1 int, c color.Color) {
	fill(img, image.Rect(x, min(y0, y1), x+1, max(y0, y1)+1), c)
}

func hline(img *image.Paletted, x0, x1, y int, c color.Color) {
	fill(img, image.Rect(min(x0, x1), y, max(x0, x1)+1, y+1), c)
}
