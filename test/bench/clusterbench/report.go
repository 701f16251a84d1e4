package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// Targets from issues 3 and 4.
func registerTarget(n int) time.Duration {
	switch {
	case n <= 10:
		return 100 * time.Millisecond
	case n <= 50:
		return time.Second
	}
	return 2 * time.Second
}

func healthTarget(n int) time.Duration {
	if n <= 10 {
		return 1300 * time.Millisecond
	}
	return 2 * time.Second
}

const (
	crashTarget  = 3 * time.Second
	idleCPUms    = 2.0
	idleBytesSec = 1000.0
)

func renderReport(o *options, results []*sizeResult, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Command: `go run ./test/bench/clusterbench %s` — profile `%s`%s; %s, %d CPUs, GOMAXPROCS %d; DNS followed %s; whole run %s.\n\n",
		strings.Join(os.Args[1:], " "), o.profile, overrides(o), runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0),
		watchMode(o), elapsed.Round(time.Second))

	b.WriteString("| agents | measurement | n | min | median | p90 | p99 | max | target or reference | met |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|---|---|\n")
	for _, r := range results {
		l := r.label()
		if r.reg != nil {
			t := registerTarget(r.n)
			row(&b, l, "(a) register → DNS on every agent", r.reg.last, t, fmt.Sprintf("p99 ≤ %s; Serf tag to 50: 307/512/758(p90)/1063 ms", fmtDur(t)))
			row(&b, l, "(a) register → DNS on each agent (all samples)", r.reg.each, 0, "")
			row(&b, l, "(a) deregister → gone from every agent", r.reg.dereg, 0, "")
		}
		if r.health != nil {
			t := healthTarget(r.n)
			row(&b, l, "(e) check fails (1 s) → gone from every other agent", r.health.remote, t,
				fmt.Sprintf("p99 ≤ %s; Consul 0.09/0.13/0.91(max) s", fmtDur(t)))
			row(&b, l, "(e) check fails → gone from the owner's DNS", r.health.local, 0, "")
			row(&b, l, "(e) check passes again → answered by every agent", r.health.recovery, 0, "")
		}
		if r.crash != nil {
			row(&b, l, "(b) kill → gone from every other agent's DNS", r.crash.dns, crashTarget,
				"p99 ≤ 3 s (at 50); Consul 5.0/5.8/7.7(max) s")
			row(&b, l, "(b) kill → declared failed by every other Serf", r.crash.serf, 0,
				"Serf DefaultLAN 8.9/9.1/11.2(p90) s; tuned 1.6–2.1 s")
		}
	}

	b.WriteString("\n| agents | idle CPU per agent | UDP payload sent per agent | IP bytes sent per agent (UDP+TCP, headers) | of which TCP payload | heap per agent | false failures after convergence (members) | false suspicions | refutations | idle target ≤ 2 ms/s, ≤ 1 KB/s; 0 false failures |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, r := range results {
		cells := []string{r.label(), "–", "–", "–", "–", "–"}
		var verdict []string
		if i := r.idle; i != nil {
			cells[1] = fmt.Sprintf("%.2f ms/s", i.cpuMs)
			cells[2] = fmt.Sprintf("%.0f B/s (%.1f pkt/s)", i.udpPayload, i.udpPkts)
			bytesOK := i.udpPayload <= idleBytesSec
			if i.ipBytes >= 0 {
				cells[3] = fmt.Sprintf("%.0f B/s", i.ipBytes)
				cells[4] = fmt.Sprintf("%.0f B/s (%d conns", i.tcpPayload, i.tcpConns)
				if i.tcpConns > 0 {
					cells[4] += fmt.Sprintf(", %.1f KB each", i.tcpPerConn/1000)
				}
				cells[4] += ")"
				bytesOK = i.ipBytes <= idleBytesSec
			}
			cells[5] = fmt.Sprintf("%.1f MB", i.heapMB)
			if r.loaded {
				verdict = append(verdict, "CPU n/a (loaded)")
			} else if i.cpuMs <= idleCPUms {
				verdict = append(verdict, "CPU yes")
			} else {
				verdict = append(verdict, fmt.Sprintf("CPU **no** (%.1f×)", i.cpuMs/idleCPUms))
			}
			if bytesOK {
				verdict = append(verdict, "bytes yes")
			} else {
				v := i.ipBytes
				if v < 0 {
					v = i.udpPayload
				}
				verdict = append(verdict, fmt.Sprintf("bytes **no** (%.1f×)", v/idleBytesSec))
			}
		}
		ff := fmt.Sprint(r.falses.failures)
		if len(r.falses.members) > 0 {
			ff += " (" + strings.Join(r.falses.members, ", ") + ")"
		}
		if r.falses.failures == 0 {
			verdict = append(verdict, "false failures yes")
		} else {
			verdict = append(verdict, "false failures **no**")
		}
		cells = append(cells, ff, fmt.Sprint(r.falses.suspicions), fmt.Sprint(r.falses.refutes), strings.Join(verdict, ", "))
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}

	b.WriteString("\nDetails:\n")
	for _, r := range results {
		fmt.Fprintf(&b, "- %s agents: ", r.label())
		fmt.Fprintf(&b, "started in %s", fmtDur(r.grow))
		if r.convergeOK {
			fmt.Fprintf(&b, ", converged %s later", fmtDur(r.converge))
		} else {
			b.WriteString(", did not converge")
		}
		fmt.Fprintf(&b, " (false failures meanwhile: %d", r.formation.failures)
		if len(r.formation.members) > 0 {
			fmt.Fprintf(&b, " of %d members", len(r.formation.members))
		}
		fmt.Fprintf(&b, ", false suspicions %d)", r.formation.suspicions)
		if len(r.phases) > 0 {
			b.WriteString("; other processes used")
			for i, p := range r.phases {
				if i > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, " %.2f cores in %s", p.others, p.name)
			}
		}
		if i := r.idle; i != nil {
			fmt.Fprintf(&b, "; idle window %s, %d goroutines", i.window.Round(time.Second), i.goroutines)
		}
		if r.reg != nil {
			fmt.Fprintf(&b, "; register call (fsync) median %s", fmtDur(r.reg.call.p50))
		}
		if r.crash != nil {
			fmt.Fprintf(&b, "; Kill took median %s; a replacement agent was current everywhere in median %s (max %s)",
				fmtDur(r.crash.kill.p50), fmtDur(r.crash.rejoin.p50), fmtDur(r.crash.rejoin.max))
			if r.crash.rejoin.timeouts > 0 {
				fmt.Fprintf(&b, ", %d never", r.crash.rejoin.timeouts)
			}
		}
		fmt.Fprintf(&b, "; cluster phase %s", r.elapsed.Round(time.Second))
		for _, e := range r.errs {
			fmt.Fprintf(&b, "; **error**: %s", e)
		}
		b.WriteString(".\n")
		for _, w := range r.warnings {
			fmt.Fprintf(&b, "  - log: %s\n", strings.ReplaceAll(w, "|", "\\|"))
		}
	}
	return b.String()
}

func row(b *strings.Builder, agents, what string, s summary, target time.Duration, ref string) {
	met := "–"
	if target > 0 {
		switch {
		case s.n == 0:
			met = "no data"
		case s.timeouts > 0:
			met = fmt.Sprintf("**no** (%d timed out)", s.timeouts)
		case s.p99 <= target:
			met = "yes"
		default:
			met = fmt.Sprintf("**no** (+%s)", fmtDur(s.p99-target))
		}
	}
	cells := append([]string{agents, what}, s.cells()...)
	cells = append(cells, ref, met)
	b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

func overrides(o *options) string {
	var parts []string
	g := o.gossip
	if g.ProbeInterval > 0 {
		parts = append(parts, "probe "+g.ProbeInterval.String())
	}
	if g.ProbeTimeout > 0 {
		parts = append(parts, "timeout "+g.ProbeTimeout.String())
	}
	if g.SuspicionMult > 0 {
		parts = append(parts, fmt.Sprintf("suspicion ×%d", g.SuspicionMult))
	}
	if g.GossipInterval > 0 {
		parts = append(parts, "gossip "+g.GossipInterval.String())
	}
	if g.PushPullInterval > 0 {
		parts = append(parts, "push-pull "+g.PushPullInterval.String())
	}
	if len(parts) == 0 {
		return ""
	}
	return " with " + strings.Join(parts, ", ")
}

func watchMode(o *options) string {
	if o.watch {
		return fmt.Sprintf("on every catalog change and every %s", o.poll)
	}
	return fmt.Sprintf("by polling every %s", o.poll)
}
