package cluster

import (
	"bufio"
	"cmp"
	"fmt"
	"image/color"
	"image/png"
	"io"
	"math"
	"slices"
	"time"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Timeline colours.
var (
	colText     = color.RGBA{0, 0, 0, 255}
	colAxis     = color.RGBA{90, 90, 90, 255}
	colGrid     = color.RGBA{225, 225, 225, 255}
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

// Picture geometry. Lengths are in points; the PNG has timelineDPI pixels
// per inch, so it is plotW pixels wide.
const (
	timelineDPI = 96
	plotW       = 1200 // pixels

	pad          vg.Length = 6
	titleSize    vg.Length = 12
	textSize     vg.Length = 10
	labelSize    vg.Length = 9
	labelRowH    vg.Length = 12
	maxLabelRows           = 6
	laneH        vg.Length = 64 // one agent's plot, x axis excluded
	laneGap      vg.Length = 6
	axisH        vg.Length = 22
	legendRowH   vg.Length = 16
	thumbW       vg.Length = 18

	// holdMax is how long an answer is drawn as standing when the next
	// answer from the same agent comes later than that (or never).
	holdMax = 250 * time.Millisecond
	// markBins is how many slots the time axis has for marks of empty
	// answers and timeouts: one mark per slot however many answers fall
	// in it.
	markBins = 600
)

var sans = font.Font{Typeface: "Liberation", Variant: "Sans"}

func textStyle(size vg.Length, c color.Color, weight xfont.Weight) text.Style {
	f := sans
	f.Weight = weight
	return text.Style{Color: c, Font: font.From(f, size), Handler: plot.DefaultTextHandler}
}

// WritePNG draws the timeline: one lane per agent with the number of
// instances it answered over time (blue, and orange while an answer holds
// an instance that should be gone) over the number it should answer
// (green), empty answers as red marks on the zero line, unanswered
// queries as grey marks along the lane's top, the agent's own downtime in
// grey, any fault in force in pink, and faults and repairs as red and
// green vertical lines, labelled above the lanes, with the detection
// bound dotted after each fault that removed something. It writes the
// whole PNG to w or returns the first error.
func (tl *Timeline) WritePNG(w io.Writer) error {
	n := max(tl.N, 1)
	span := tl.End - tl.Start
	if span <= 0 {
		span = time.Second
	}
	l := tl.layout(n, span)

	width := vg.Length(plotW) * vg.Inch / timelineDPI
	// The event labels need the lanes' x scale, which does not depend on
	// the picture's height: lay the lanes out once on a provisional canvas
	// to place them.
	probe := draw.Canvas{Rectangle: vg.Rectangle{Max: vg.Point{X: width, Y: vg.Length(n) * (laneH + laneGap)}}}
	labels := placeLabels(tl.eventLabels(), l.xOf(probe))
	rows := 0
	for _, lb := range labels {
		rows = max(rows, lb.row+1)
	}
	headerH := pad + titleSize + 4 + textSize + 4 + vg.Length(rows)*labelRowH
	legend := timelineLegend()
	legendRows := legendLayout(legend, width-2*pad)
	height := headerH + vg.Length(n)*(laneH+laneGap) + axisH + vg.Length(legendRows)*legendRowH + pad

	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(timelineDPI))
	dc := draw.New(img)

	// Header: title, subtitle, event labels.
	top := dc.Max.Y - pad
	dc.FillText(textStyle(titleSize, colText, xfont.WeightBold), vg.Point{X: pad, Y: top - titleSize}, tl.Title)
	top -= titleSize + 4
	dc.FillText(textStyle(textSize, colAxis, xfont.WeightNormal), vg.Point{X: pad, Y: top - textSize}, tl.Subtitle)
	top -= textSize + 4
	lanesTop := top - vg.Length(rows)*labelRowH - 2
	lanes := draw.Crop(dc, 0, 0, vg.Length(legendRows)*legendRowH+pad, lanesTop-dc.Max.Y)
	xOf := l.xOf(lanes)
	for _, lb := range labels {
		sty := textStyle(labelSize, lb.color, xfont.WeightNormal)
		x := min(xOf(lb.at), dc.Max.X-pad-sty.Width(lb.text))
		dc.FillText(sty, vg.Point{X: x, Y: top - vg.Length(lb.row+1)*labelRowH + 2}, lb.text)
	}

	// Lanes.
	canvases := plot.Align(l.plots, l.tiles, lanes)
	for a, p := range l.plots {
		p[0].Draw(canvases[a][0])
	}

	// Legend, left to right under the time axis.
	drawLegend(dc, legend, vg.Rectangle{
		Min: vg.Point{X: pad, Y: pad},
		Max: vg.Point{X: width - pad, Y: pad + vg.Length(legendRows)*legendRowH},
	})

	bw := bufio.NewWriter(w)
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(bw, img.Image()); err != nil {
		return err
	}
	return bw.Flush()
}

// laneLayout is the lanes of one timeline, one gonum plot per agent.
type laneLayout struct {
	plots [][]*plot.Plot // one row per agent, one column
	tiles draw.Tiles
}

// xOf returns the map from a time on the timeline to an x on dc once
// the lanes are aligned in lanes.
func (l *laneLayout) xOf(lanes draw.Canvas) func(time.Duration) vg.Length {
	c := plot.Align(l.plots, l.tiles, lanes)[0][0]
	p := l.plots[0][0]
	dataC := p.DataCanvas(c)
	tr, _ := p.Transforms(&dataC)
	return func(t time.Duration) vg.Length { return tr(t.Seconds()) }
}

// span is a stretch of the timeline under one state.
type span struct {
	from, to time.Duration // relative to the timeline's Start
	state    State
	shaded   bool // a fault is in force or the state differs from the initial one
}

// spans cuts [0, end) at every event; end > 0. A fault is in force from
// a fault event to the next repair.
func (tl *Timeline) spans(end time.Duration) []span {
	var initial State
	if len(tl.Events) > 0 {
		initial = tl.Events[0].State
	}
	clamp := func(t time.Duration) time.Duration { return min(max(t-tl.Start, 0), end) }
	var out []span
	cur := span{state: initial}
	open := false
	for i, e := range tl.Events {
		if i == 0 {
			continue
		}
		at := clamp(e.At)
		if at > cur.from {
			cur.to = at
			out = append(out, cur)
			cur.from = at
		}
		switch {
		case e.Fault && !open:
			open = true
		case !e.Fault && open:
			open = false
		}
		cur.state = e.State
		cur.shaded = open || e.State != initial
	}
	if end > cur.from {
		cur.to = end
		out = append(out, cur)
	}
	return out
}

// stateAt returns the state in force at t (relative to Start): that of
// the last span when t is past the end.
func stateAt(spans []span, t time.Duration) State {
	i, found := slices.BinarySearchFunc(spans, t, func(s span, t time.Duration) int {
		switch {
		case s.to <= t:
			return -1
		case s.from > t:
			return 1
		}
		return 0
	})
	if !found {
		i = len(spans) - 1
	}
	return spans[max(i, 0)].state
}

// step is a value held over [from, to), in seconds.
type step struct {
	from, to float64
	k        int
	stale    bool
}

// answerSteps turns agent a's answers, in time order, into the count of
// instances each held, standing until the agent's next answer (at most
// holdMax, and no longer than until the agent goes down), merged where
// consecutive answers agree. Timeouts and answers
// while the agent is down are left out.
func answerSteps(answers []Answer, spans []span, a, n int, start, end time.Duration) []step {
	var out []step
	var pending *step
	for _, x := range answers {
		t := x.At - start
		if x.Kind == KindTimeout || t < 0 || t >= end {
			continue
		}
		s := stateAt(spans, t)
		if s.Down&(1<<a) != 0 {
			continue
		}
		if pending != nil {
			pending.to = min(pending.to, t.Seconds())
			out = appendStep(out, *pending)
		}
		pending = &step{from: t.Seconds(), to: min(t+holdMax, end, downFrom(spans, a, t)).Seconds(), k: count(x.Set), stale: x.Set&^s.Expected(a, n) != 0}
	}
	if pending != nil {
		out = appendStep(out, *pending)
	}
	return out
}

// downFrom returns when agent a next goes down after t, or the end of
// the last span if it does not.
func downFrom(spans []span, a int, t time.Duration) time.Duration {
	for _, s := range spans {
		if s.from > t && s.state.Down&(1<<a) != 0 {
			return s.from
		}
	}
	return spans[len(spans)-1].to
}

// appendStep appends st to steps, extending the last step instead when
// st continues it at the same level and colour.
func appendStep(steps []step, st step) []step {
	if last := len(steps) - 1; last >= 0 && steps[last].to == st.from && steps[last].k == st.k && steps[last].stale == st.stale {
		steps[last].to = st.to
		return steps
	}
	return append(steps, st)
}

// stepLines draws steps as step lines, one per run of touching steps of
// one colour; a run ends with a rise or drop to the next step's level.
func stepLines(steps []step, width vg.Length) []plot.Plotter {
	var out []plot.Plotter
	var xys plotter.XYs
	flush := func(stale bool) {
		if len(xys) == 0 {
			return
		}
		ln := &plotter.Line{XYs: xys, StepStyle: plotter.PostStep,
			LineStyle: draw.LineStyle{Color: colAnswer, Width: width}}
		if stale {
			ln.Color = colStale
		}
		out = append(out, ln)
		xys = nil
	}
	for i, s := range steps {
		xys = append(xys, plotter.XY{X: s.from, Y: float64(s.k)})
		next := i + 1
		if next < len(steps) && steps[next].from == s.to && steps[next].stale == s.stale {
			continue
		}
		xys = append(xys, plotter.XY{X: s.to, Y: float64(s.k)})
		if next < len(steps) && steps[next].from == s.to {
			xys = append(xys, plotter.XY{X: s.to, Y: float64(steps[next].k)})
		}
		flush(s.stale)
	}
	return out
}

// marks returns one point per markBins slot of the time axis holding a
// time of ts, at height y.
func marks(ts []time.Duration, span time.Duration, y float64) plotter.XYs {
	var xys plotter.XYs
	last := -1
	for _, t := range ts {
		b := int(int64(t) * markBins / int64(span))
		if b == last {
			continue
		}
		last = b
		xys = append(xys, plotter.XY{X: (time.Duration(b) * span / markBins).Seconds() + span.Seconds()/markBins/2, Y: y})
	}
	return xys
}

// rect is the ring of a rectangle over [x0, x1] × [y0, y1].
func rect(x0, x1, y0, y1 float64) plotter.XYs {
	return plotter.XYs{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}
}

// vline is a vertical line at x across [y0, y1].
func vline(x, y0, y1 float64, sty draw.LineStyle) *plotter.Line {
	return &plotter.Line{XYs: plotter.XYs{{X: x, Y: y0}, {X: x, Y: y1}}, LineStyle: sty}
}

// fill returns a polygon of the rectangles rs filled with c, or nil if
// there are none.
func fill(rs []plotter.XYs, c color.Color) plot.Plotter {
	if len(rs) == 0 {
		return nil
	}
	return &plotter.Polygon{XYs: rs, Color: c}
}

// Line styles shared by the lanes and the legend.
var (
	styleExpected = draw.LineStyle{Color: colExpected, Width: 4.5}
	styleAnswer   = draw.LineStyle{Color: colAnswer, Width: 1.3}
	styleFault    = draw.LineStyle{Color: colEmpty, Width: 1}
	styleRepair   = draw.LineStyle{Color: colRepair, Width: 1}
	styleBound    = draw.LineStyle{Color: colBound, Width: 1, Dashes: []vg.Length{2, 2}}
	styleGrid     = draw.LineStyle{Color: colGrid, Width: 0.6}
	glyphEmpty    = draw.GlyphStyle{Color: colEmpty, Radius: 2.4, Shape: draw.BoxGlyph{}}
	glyphTimeout  = draw.GlyphStyle{Color: colTimeout, Radius: 2, Shape: draw.BoxGlyph{}}
)

// timeTicks marks the time axis every tickStep, labelled in seconds.
type timeTicks struct{ step time.Duration }

func (tt timeTicks) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for t := time.Duration(0); t.Seconds() <= hi; t += tt.step {
		if t.Seconds() >= lo {
			out = append(out, plot.Tick{Value: t.Seconds(), Label: fmt.Sprintf("%gs", t.Seconds())})
		}
	}
	return out
}

// countTicks marks a lane's y axis at every count from 0 to n, labelling
// 0 and n.
type countTicks struct{ n int }

func (ct countTicks) Ticks(float64, float64) []plot.Tick {
	out := make([]plot.Tick, ct.n+1)
	for k := range out {
		out[k].Value = float64(k)
		if k == 0 || k == ct.n {
			out[k].Label = fmt.Sprint(k)
		}
	}
	return out
}

// layout builds one plot per agent.
func (tl *Timeline) layout(n int, span time.Duration) *laneLayout {
	spans := tl.spans(span)
	spanS := span.Seconds()
	ymin, ymax := -0.6, float64(n)+0.75
	ticks := timeTicks{tickStep(span)}

	// Each agent's answers in time order.
	per := make([][]Answer, n)
	for _, x := range tl.Answers {
		if int(x.Host) < n {
			per[x.Host] = append(per[x.Host], x)
		}
	}

	l := &laneLayout{
		plots: make([][]*plot.Plot, n),
		tiles: draw.Tiles{Rows: n, Cols: 1, PadY: laneGap, PadLeft: pad, PadRight: pad * 2},
	}
	for a := range n {
		p := plot.New()
		p.BackgroundColor = nil
		p.X.Min, p.X.Max = 0, spanS
		p.X.Padding, p.Y.Padding = 0, 0
		p.X.Tick.Marker = ticks
		p.X.Tick.Label = textStyle(textSize, colAxis, xfont.WeightNormal)
		p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XCenter, draw.YTop
		p.X.Tick.Color, p.X.Color = colAxis, colAxis
		p.X.Tick.Length = 4
		if a < n-1 {
			p.HideX()
		}
		p.Y.Tick.Marker = countTicks{n}
		p.Y.Tick.Label = textStyle(labelSize, colAxis, xfont.WeightNormal)
		p.Y.Tick.Label.XAlign, p.Y.Tick.Label.YAlign = draw.XRight, draw.YCenter
		p.Y.Tick.Color, p.Y.Color = colAxis, colAxis
		p.Y.Tick.Length = 4
		p.Y.Label.Text = hostName(a)
		p.Y.Label.TextStyle = textStyle(textSize, colText, xfont.WeightBold)
		// The axis turns its label a quarter counterclockwise: undo that.
		p.Y.Label.TextStyle.Rotation = -math.Pi / 2
		p.Y.Label.TextStyle.XAlign, p.Y.Label.TextStyle.YAlign = draw.XCenter, draw.YCenter
		p.Y.Label.Padding = 2

		// Background: the lane, faults in force, the agent down.
		var shaded, down []plotter.XYs
		for _, s := range spans {
			r := rect(s.from.Seconds(), s.to.Seconds(), ymin, ymax)
			switch {
			case s.state.Down&(1<<a) != 0:
				down = appendRect(down, r)
			case s.shaded:
				shaded = appendRect(shaded, r)
			}
		}
		var ps []plot.Plotter
		ps = append(ps, fill([]plotter.XYs{rect(0, spanS, ymin, ymax)}, colLane), fill(shaded, colFault), fill(down, colDown))
		for _, t := range ticks.Ticks(0, spanS) {
			ps = append(ps, vline(t.Value, ymin, ymax, styleGrid))
		}

		// Faults, repairs and detection bounds.
		for i, e := range tl.Events {
			if i == 0 || e.At < tl.Start || e.At > tl.End {
				continue
			}
			x := (e.At - tl.Start).Seconds()
			if !e.Fault {
				ps = append(ps, vline(x, ymin, ymax, styleRepair))
				continue
			}
			ps = append(ps, vline(x, ymin, ymax, styleFault))
			// The detection bound matters only when the fault removed something.
			if b := e.At + tl.Detect; tl.Detect > 0 && b < tl.End && e.State != tl.Events[i-1].State {
				ps = append(ps, vline((b-tl.Start).Seconds(), ymin, ymax, styleBound))
			}
		}

		// What the agent should answer, where it serves.
		var xys plotter.XYs
		flush := func() {
			if len(xys) > 0 {
				ps = append(ps, &plotter.Line{XYs: xys, StepStyle: plotter.PostStep, LineStyle: styleExpected})
				xys = nil
			}
		}
		for _, s := range spans {
			if s.state.Down&(1<<a) != 0 {
				flush()
				continue
			}
			k := float64(count(s.state.Expected(a, n)))
			if len(xys) > 0 {
				xys = xys[:len(xys)-1] // the closing point of the previous span
			}
			xys = append(xys, plotter.XY{X: s.from.Seconds(), Y: k}, plotter.XY{X: s.to.Seconds(), Y: k})
		}
		flush()

		// What it answered.
		ans := per[a]
		slices.SortStableFunc(ans, func(x, y Answer) int { return cmp.Compare(x.At, y.At) })
		ps = append(ps, stepLines(answerSteps(ans, spans, a, n, tl.Start, span), styleAnswer.Width)...)
		var empties, timeouts []time.Duration
		for _, x := range ans {
			t := x.At - tl.Start
			if t < 0 || t >= span {
				continue
			}
			s := stateAt(spans, t)
			if s.Down&(1<<a) != 0 {
				continue
			}
			switch {
			case x.Kind == KindTimeout:
				timeouts = append(timeouts, t)
			case (x.Kind != KindOK || x.Set == 0) && s.Expected(a, n) != 0:
				empties = append(empties, t)
			}
		}
		if xys := marks(empties, span, 0); len(xys) > 0 {
			ps = append(ps, &plotter.Scatter{XYs: xys, GlyphStyle: glyphEmpty})
		}
		if xys := marks(timeouts, span, float64(n)+0.45); len(xys) > 0 {
			ps = append(ps, &plotter.Scatter{XYs: xys, GlyphStyle: glyphTimeout})
		}

		for _, pl := range ps {
			if pl != nil {
				p.Add(pl)
			}
		}
		// Add widens the axes to the data; the lane shows exactly this.
		p.X.Min, p.X.Max = 0, spanS
		p.Y.Min, p.Y.Max = ymin, ymax
		l.plots[a] = []*plot.Plot{p}
	}
	return l
}

// appendRect appends r to rs, merging it with the last rectangle when
// they touch so that no seam shows between them.
func appendRect(rs []plotter.XYs, r plotter.XYs) []plotter.XYs {
	if last := len(rs) - 1; last >= 0 && rs[last][1].X == r[0].X {
		rs[last][1].X, rs[last][2].X = r[1].X, r[2].X
		return rs
	}
	return append(rs, r)
}

// eventLabel is the text naming one event above the lanes.
type eventLabel struct {
	at    time.Duration // relative to the timeline's Start
	text  string
	color color.Color
	row   int
}

// eventLabels names every event after the initial state inside the
// timeline, in the colour of its line.
func (tl *Timeline) eventLabels() []eventLabel {
	var out []eventLabel
	for i, e := range tl.Events {
		if i == 0 || e.At < tl.Start || e.At > tl.End {
			continue
		}
		c := colRepair
		if e.Fault {
			c = colEmpty
		}
		at := e.At - tl.Start
		out = append(out, eventLabel{at: at, text: fmt.Sprintf("%.1fs %s", at.Seconds(), e.Label), color: c})
	}
	return out
}

// placeLabels puts each label on the first row where it does not run
// into the previous label of that row (the last row takes the rest).
func placeLabels(labels []eventLabel, xOf func(time.Duration) vg.Length) []eventLabel {
	var lastEnd [maxLabelRows]vg.Length
	for i := range labels {
		x := xOf(labels[i].at)
		row := 0
		for row < maxLabelRows-1 && lastEnd[row] > x {
			row++
		}
		labels[i].row = row
		lastEnd[row] = x + textStyle(labelSize, colText, xfont.WeightNormal).Width(labels[i].text) + 6
	}
	return labels
}

// legendEntry is one key of the legend.
type legendEntry struct {
	text  string
	thumb plot.Thumbnailer
}

func timelineLegend() []legendEntry {
	return []legendEntry{
		{"answered", &plotter.Line{LineStyle: styleAnswer}},
		{"holds a gone instance", &plotter.Line{LineStyle: draw.LineStyle{Color: colStale, Width: styleAnswer.Width}}},
		{"expected", &plotter.Line{LineStyle: styleExpected}},
		{"empty/NXDOMAIN", &plotter.Scatter{GlyphStyle: glyphEmpty}},
		{"timeout", &plotter.Scatter{GlyphStyle: glyphTimeout}},
		{"agent down", &plotter.Polygon{Color: colDown}},
		{"fault in force", &plotter.Polygon{Color: colFault}},
		{"fault", &plotter.Line{LineStyle: styleFault}},
		{"repair", &plotter.Line{LineStyle: styleRepair}},
		{"detection bound", &plotter.Line{LineStyle: styleBound}},
	}
}

// legendSpacing is the room between a key's thumbnail and its text, and
// after its text.
const legendSpacing vg.Length = 4

func legendEntryWidth(e legendEntry) vg.Length {
	return thumbW + legendSpacing + textStyle(textSize, colText, xfont.WeightNormal).Width(e.text) + 3*legendSpacing
}

// legendLayout returns how many rows the legend takes in width.
func legendLayout(entries []legendEntry, width vg.Length) int {
	rows, x := 1, vg.Length(0)
	for _, e := range entries {
		w := legendEntryWidth(e)
		if x > 0 && x+w > width {
			rows++
			x = 0
		}
		x += w
	}
	return rows
}

// drawLegend draws the entries left to right in r, wrapping as
// legendLayout does.
func drawLegend(dc draw.Canvas, entries []legendEntry, r vg.Rectangle) {
	sty := textStyle(textSize, colText, xfont.WeightNormal)
	x, y := r.Min.X, r.Max.Y-legendRowH
	for _, e := range entries {
		w := legendEntryWidth(e)
		if x > r.Min.X && x+w > r.Max.X {
			x, y = r.Min.X, y-legendRowH
		}
		icon := dc
		icon.Rectangle = vg.Rectangle{Min: vg.Point{X: x, Y: y + 3}, Max: vg.Point{X: x + thumbW, Y: y + legendRowH - 5}}
		e.thumb.Thumbnail(&icon)
		dc.FillText(sty, vg.Point{X: x + thumbW + legendSpacing, Y: y + 4}, e.text)
		x += w
	}
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
