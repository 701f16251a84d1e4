package cluster

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ReportFile is the name of the Markdown report in the output directory.
const ReportFile = "report.md"

// Table returns the results table in Markdown.
func (r *Report) Table() string {
	var b strings.Builder
	b.WriteString("| scenario | detection | recovery | catalogs identical | wrong answers | empty answers | healthy left out | lost registrations | false failures | answers checked | result |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, res := range r.Results {
		m := res.Metrics
		verdict := "PASS"
		if !res.Pass() {
			verdict = "**FAIL**"
		}
		det := secs(m.Detection)
		if m.IsolatedDetection >= 0 {
			det += " (cut-off agent: " + secs(m.IsolatedDetection) + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %d | %d | %d of %d | %d | %d | %s |\n",
			res.Scenario.Name, det, secs(m.Recovery), secs(res.Converge),
			m.Wrong, m.Empty, m.Missing, len(res.Lost), res.Registered, m.FalseFailures, m.Queries, verdict)
	}
	return b.String()
}

// Markdown renders the whole report.
func (r *Report) Markdown() string {
	var b strings.Builder
	kind := "full set (`make chaos`)"
	if r.Short {
		kind = "short set (CI, `test/cluster/ci.sh`)"
	}
	fmt.Fprintf(&b, "# Chorus fault tests: %s\n\n", kind)
	fmt.Fprintf(&b, "Run of %s, %s long, on %s; chorus at commit %s.\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Duration.Round(time.Second), r.Machine, r.Commit)
	fmt.Fprintf(&b, "%d hosts, each a network namespace with its own address on one bridge, running a chorus agent "+
		"(gossip profile `%s`) and a demo HTTP service registered with an HTTP check (interval 1 s). "+
		"The prober asks every agent for `demo.service.chorus` A over UDP %d times a second (%d queries/s in all) "+
		"and reads every agent's `/v1/agent/members` every 250 ms; one service registration is sent every 500 ms, "+
		"round-robin over the agents, faulted ones included.\n\n", r.Hosts, r.Profile, r.Rate, r.Rate*r.Hosts)
	if len(r.Gossip) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(r.Gossip)) {
			kv = append(kv, fmt.Sprintf("`gossip.%s: %s`", k, r.Gossip[k]))
		}
		fmt.Fprintf(&b, "Gossip knobs over the profile: %s.\n\n", strings.Join(kv, ", "))
	}
	fmt.Fprintf(&b, "Bounds: an instance on a dead or cut-off host (or with a failing check) must be gone from every "+
		"reachable agent's answers within **%v** and stay gone until the repair (**%v** for an agent cut off from every other "+
		"agent, which must drop all of them); every agent answers every instance again "+
		"within **%v** of a repair; every agent's catalog is identical within **%v** of the last repair.\n\n",
		r.Bounds.Detect, r.Bounds.Isolated, r.Bounds.Recover, r.Bounds.Converge)
	b.WriteString(r.Table())
	b.WriteString(`
- **detection**: from the fault to the last answer, from any agent that should no longer answer it, that still held the
  instance (the slowest agent). In brackets: the same for an agent the fault left alone, which must drop everyone else.
- **recovery**: from the repair until every agent held every instance it should answer in every answer from then on,
  the repaired agent's own answers included.
- **catalogs identical**: from the last repair until every agent's catalog (every service's instances with the status
  of each check, from ` + "`/v1/catalog/services` and `/v1/health/service/<name>`" + `) hashes the same and shows every host alive.
- **wrong answers**: answers holding an instance more than the detection bound after it should have gone, or an
  address of no host. **empty answers**: NXDOMAIN or NOERROR without records while a healthy instance was reachable.
- **lost registrations**: registrations that got a 200 but were missing from some agent's catalog at the end.
- **healthy left out**: answers lacking a healthy, reachable instance that no fault of the scenario touched (the DNS
  face of a false failure).
- **false failures**: times an agent listed a running, reachable agent as failed or left.
- Unanswered queries to agents that should be serving are counted (below) but are not failures; queries to an agent
  that is down or stopped are not judged.
`)
	if len(r.FinalLost) == 0 {
		fmt.Fprintf(&b, "\nAt the end of the run all %d registrations acknowledged during it were in every agent's catalog.\n", r.FinalRegistered)
	} else {
		fmt.Fprintf(&b, "\nAt the end of the run %d of %d acknowledged registrations were missing: %s\n", len(r.FinalLost), r.FinalRegistered, strings.Join(first(r.FinalLost, 10), "; "))
	}
	if r.LateAnswers > 0 {
		fmt.Fprintf(&b, "%d answers arrived after their query had timed out (1 s) and were not judged.\n", r.LateAnswers)
	}
	for _, res := range r.Results {
		m := res.Metrics
		fmt.Fprintf(&b, "\n## %s\n\n%s.\n\n", res.Scenario.Name, res.Scenario.Title)
		fmt.Fprintf(&b, "![%s timeline](%s)\n\n", res.Scenario.Name, res.PNG)
		b.WriteString("| at | event | detection (DNS) | cut-off agent (DNS) | member lists show it down | recovery (DNS) |\n|---:|---|---:|---:|---:|---:|\n")
		for i, e := range m.Events {
			if i == 0 {
				continue
			}
			fmt.Fprintf(&b, "| +%.2fs | %s | %s | %s | %s | %s |\n", (e.At - res.Start).Seconds(), e.Label,
				secs(e.Detection), secs(e.IsolatedDetection), secs(e.MemberDetection), secs(e.Recovery))
		}
		fmt.Fprintf(&b, "\n%d answers judged, %d unanswered queries to agents that should serve, %d outcomes from down agents not judged; "+
			"%d error rcodes. Machine: worst harness timer lag %v, load average %s at the end.\n",
			m.Queries, m.Timeouts, m.Skipped, m.Errors, res.MaxLag.Round(time.Millisecond), res.Load)
		if res.Pass() {
			b.WriteString("\nResult: **PASS**.\n")
		} else {
			b.WriteString("\nResult: **FAIL**:\n\n")
			for _, f := range res.Failures {
				fmt.Fprintf(&b, "- %s\n", f)
			}
		}
		if len(m.Violations) > 0 {
			b.WriteString("\nFirst examples:\n\n")
			for _, v := range m.Violations {
				fmt.Fprintf(&b, "- %s\n", v)
			}
		}
	}
	return b.String()
}

// Write writes the report to dir/report.md.
func (r *Report) Write(dir string) error {
	return os.WriteFile(filepath.Join(dir, ReportFile), []byte(r.Markdown()), 0o644)
}
