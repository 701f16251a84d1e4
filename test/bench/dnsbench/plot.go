package main

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// savePlot draws each scenario's median throughput as a horizontal bar
// beside the bare miekg/dns server's (the ceiling), with the ratio
// against it in the label, and writes it to path as PNG.
func savePlot(path string, o options, scs []scenario, rs []result) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("DNS throughput against the bare miekg/dns server (%d instances, 1 CPU)", o.total)
	p.X.Label.Text = "answers per second (median of rounds)"
	p.X.Min = 0
	vals := make(plotter.Values, len(scs))
	labels := make([]string, len(scs))
	// Bars are drawn bottom-up: reverse so the table's order reads top-down.
	for i := range scs {
		j := len(scs) - 1 - i
		vals[j] = rs[i].qps
		labels[j] = fmt.Sprintf("%s (%.2f×)", scs[i].label, rs[i].ratio)
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(12))
	if err != nil {
		return err
	}
	bars.Horizontal = true
	bars.Color = color.RGBA{R: 0x2b, G: 0x6c, B: 0xb0, A: 0xff}
	bars.LineStyle.Width = 0
	p.Add(plotter.NewGrid(), bars)
	p.NominalY(labels...)
	return p.Save(9*vg.Inch, vg.Length(len(scs))*0.32*vg.Inch+1.2*vg.Inch, path)
}
