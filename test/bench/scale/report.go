package main

import (
	"fmt"
	"image/color"
	"io"
	"path/filepath"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// writeReport writes the Markdown summary of every cluster measured.
func writeReport(w io.Writer, o *options, head string, results []*result) {
	fmt.Fprintf(w, "# Scale harness: real agent processes\n\n%s\n\n", head)
	fmt.Fprintf(w, "Waves of %d every %v; GOMAXPROCS=1 per agent; `lan` profile; settle %v, idle window %v; %d registrations; 10%% rolling restart, prober asking every agent about once per %v; 3 crashes.\n\n",
		o.wave, o.waveInterval, o.settle, o.idle, o.registrations, o.probeEvery)
	if g := o.gossip.chorusJSON(); g != "{}" {
		fmt.Fprintf(w, "Gossip timings over the `lan` profile's, for both kinds: `%s`.\n\n", g)
	}
	for _, r := range results {
		fmt.Fprintf(w, "## %s, %d agents\n\n", r.kind, r.n)
		fmt.Fprintln(w, "| figure | value | target (at 300) |")
		fmt.Fprintln(w, "|---|---|---|")
		form := "not formed"
		if r.formed {
			form = fmtDur(r.formation)
		}
		row(w, "formation (first start → every agent sees all members"+map[bool]string{true: " and every `web` instance", false: ""}[r.kind == kindChorus]+")", form, "≤ 60 s")
		row(w, "while forming: agents' CPU, load average at the end", fmt.Sprintf("%.2f cores, load %.1f", r.formCores, r.formLoad), "")
		row(w, "while forming: member-failed events (all false), most on one agent; most member-join on one agent",
			fmt.Sprintf("%.0f, %.0f; %.0f", r.formFailedEv, r.formFailMax, r.formJoinMax), "0")
		for _, n := range r.formNotes {
			row(w, "formation", n, "")
		}
		if r.kind == kindChorus {
			row(w, "register → each agent's DNS, p50 / p99 (samples)", durSpread(r.reg)+missedNote(r.regMissed), "")
			row(w, "register → every agent's DNS, p50 / p99 (registrations)", durSpread(r.regAll), "p99 ≤ 1 s")
			row(w, "crash → gone from every other agent's DNS answer, p50 / p99 (crashes)", durSpread(r.crash)+missedNote(r.crashMissed), "p99 ≤ 3 s")
		} else {
			row(w, "crash → failed in every other agent's member list, p50 / p99 (crashes)", durSpread(r.crash)+missedNote(r.crashMissed), "")
		}
		row(w, "crash: member-failed events beyond one per observer and victim", fmt.Sprintf("%.0f", r.crashExcess), "0")
		row(w, "rolling restart: agents restarted, SIGTERM → whole again p50 / p99", fmt.Sprintf("%d, %s", r.restarts, durSpread(r.restartTime)), "")
		if r.kind == kindChorus {
			row(w, "rolling restart: DNS answers for `web` from the other agents: ok / empty / unanswered",
				fmt.Sprintf("%d / %d / %d (%d to the restarting agent)", r.probeOK, r.probeEmpty, r.probeErr, r.probeRestarted), "0 empty")
		}
		row(w, "rolling restart: member-failed events", fmt.Sprintf("%.0f", r.restartFailed), "0")
		row(w, "idle CPU per agent, mean (worst agent)", fmt.Sprintf("%.2f ms/s (%.2f); all agents %.2f cores", r.idleCPU, r.idleCPUMax, r.idleCoresAll), "≤ 1 ms/s")
		row(w, "idle IP bytes sent per agent, UDP + TCP (worst agent)", fmt.Sprintf("%.0f + %.0f B/s (%.0f); lo %.0f B/s", r.idleUDP, r.idleTCP, r.idleBytesMax, r.idleLo), "≤ 1 KB/s")
		if r.kind == kindChorus {
			row(w, "Chorus traffic sent (chorus_sync_*), idle, per agent per second", r.syncIdle.String(), "")
			row(w, "Chorus traffic sent, per join (first start → formed, all agents, over n)", r.syncForm.String(), "")
			row(w, "Chorus traffic sent, per registration (all agents, idle rate taken off)", r.syncReg.String(), "")
			row(w, "Chorus traffic sent, per crash (all survivors, idle rate taken off)", r.syncCrash.String(), "")
			row(w, "gossip-port IP bytes sent (Serf and Chorus): idle per agent per second; all agents per registration / per crash, idle rate taken off",
				fmt.Sprintf("%.0f B/s; %s / %s", r.idleGossip, fmtBytes(r.netReg), fmtBytes(r.netCrash)), "")
		}
		row(w, "RSS per agent, mean (largest)", fmt.Sprintf("%.1f MiB (%.1f)", r.idleRSS, r.idleRSSMax), "≤ 40 MB")
		row(w, "member-failed events in the settle and idle windows", fmt.Sprintf("%.0f", r.idleFailedEv), "0")
		row(w, "at the end: (agent, live member) pairs listed failed / not listed", fmt.Sprintf("%d / %d", r.endFalse, r.endMissing), "0")
		row(w, "false failures, all phases (events + pairs at the end)", fmt.Sprintf("%.0f", r.falseFailures()), "0")
		row(w, "load average: idle, rolling restart, end", fmt.Sprintf("%.1f, %.1f, %.1f", r.idleLoad, r.restartLoad, r.endLoad), "")
		for _, e := range r.errors {
			row(w, "error", e, "")
		}
		fmt.Fprintln(w)
	}
}

func missedNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d (agent, event) pairs never seen", n)
}

func row(w io.Writer, name, value, target string) {
	fmt.Fprintf(w, "| %s | %s | %s |\n", name, strings.ReplaceAll(value, "|", "/"), target)
}

// figure is one quantity drawn against the cluster size, one line per
// kind of agent.
type figure struct {
	file, title, unit string
	value             func(r *result) (float64, bool)
}

func durFig(f func(r *result) []time.Duration, q float64) func(r *result) (float64, bool) {
	return func(r *result) (float64, bool) {
		ds := f(r)
		return pct(ds, q).Seconds(), len(ds) > 0
	}
}

var figures = []figure{
	{"formation.png", "Formation time", "s", func(r *result) (float64, bool) { return r.formation.Seconds(), r.formed }},
	{"register-p50.png", "Register → each agent's DNS, p50", "s", durFig(func(r *result) []time.Duration { return r.reg }, 50)},
	{"register-p99.png", "Register → every agent's DNS, p99", "s", durFig(func(r *result) []time.Duration { return r.regAll }, 99)},
	{"crash-p99.png", "Crash → gone everywhere, p99", "s", durFig(func(r *result) []time.Duration { return r.crash }, 99)},
	{"restart-empty.png", "Empty DNS answers during the rolling restart", "answers", func(r *result) (float64, bool) {
		return float64(r.probeEmpty), r.kind == kindChorus && r.restarts > 0
	}},
	{"idle-cpu.png", "Idle CPU per agent", "ms/s", func(r *result) (float64, bool) { return r.idleCPU, r.idleWindow > 0 }},
	{"idle-bytes.png", "Idle IP bytes sent per agent (UDP + TCP)", "B/s", func(r *result) (float64, bool) { return r.idleUDP + r.idleTCP, r.idleWindow > 0 }},
	{"rss.png", "RSS per agent", "MiB", func(r *result) (float64, bool) { return r.idleRSS, r.idleWindow > 0 }},
	{"false-failures.png", "False failures (all phases)", "events", func(r *result) (float64, bool) { return r.falseFailures(), true }},
}

// writePlots draws each figure against the cluster size into dir and
// returns the files written.
func writePlots(dir string, results []*result) ([]string, error) {
	colors := map[kind]color.Color{kindChorus: color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, kindSerf: color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}}
	var files []string
	for _, f := range figures {
		p := plot.New()
		p.Title.Text = f.title
		p.X.Label.Text = "agents"
		p.Y.Label.Text = f.unit
		p.Y.Min = 0
		p.Add(plotter.NewGrid())
		any := false
		for _, k := range []kind{kindChorus, kindSerf} {
			var xys plotter.XYs
			for _, r := range results {
				if r.kind != k {
					continue
				}
				if v, ok := f.value(r); ok {
					xys = append(xys, plotter.XY{X: float64(r.n), Y: v})
				}
			}
			if len(xys) == 0 {
				continue
			}
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return files, err
			}
			line.Color, points.Color = colors[k], colors[k]
			points.Shape = draw.CircleGlyph{}
			p.Add(line, points)
			label := "Chorus"
			if k == kindSerf {
				label = "bare Serf"
			}
			p.Legend.Add(label, line, points)
			any = true
		}
		if !any {
			continue
		}
		p.Legend.Top = true
		path := filepath.Join(dir, f.file)
		if err := p.Save(5*vg.Inch, 3.2*vg.Inch, path); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	return files, nil
}
