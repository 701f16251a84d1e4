package catalog

import (
	"iter"
	"slices"
	"strings"
	"testing"
)

// checkValues collects the checks a sequence yields.
func checkValues(seq iter.Seq[*Check]) []Check {
	var out []Check
	for c := range seq {
		out = append(out, *c)
	}
	return out
}

// TestCheckViews checks Instance.Checks and NodeEntry.AllChecks against
// their definitions: an instance's checks are its node's checks followed
// by the checks naming its service, in the record's order; a node's are
// every node-level check and every check of a service it holds, sorted by
// CheckID. Records cover adjacent and scattered own checks, a check
// sorting before serfHealth, a check naming no held service and an
// unsorted record.
func TestCheckViews(t *testing.T) {
	svc := func(id string) Service { return Service{ID: id, Name: "web", Weights: DefaultWeights} }
	chk := func(id, svc, status string) Check {
		return Check{CheckID: id, Name: id, ServiceID: svc, Status: status}
	}
	records := map[string]*NodeRecord{
		"adjacent": {
			Services: ListOf([]Service{svc("a"), svc("b")}),
			Checks: ListOf([]Check{chk("mem", "", HealthPassing), chk("service:a", "a", HealthPassing), chk("service:a:ttl", "a", HealthWarning),
				chk("service:b", "b", HealthCritical)}),
		},
		"scattered": {
			// "service:web-1" and "service:web-1:ttl" have "service:web-10" between them.
			Services: ListOf([]Service{svc("web-1"), svc("web-10")}),
			Checks: ListOf([]Check{chk("aaa", "", HealthWarning), chk("service:web-1", "web-1", HealthPassing), chk("service:web-10", "web-10", HealthPassing),
				chk("service:web-1:ttl", "web-1", HealthCritical), chk("zzz", "", HealthPassing)}),
		},
		"orphan": {
			Services: ListOf([]Service{svc("a")}),
			Checks:   ListOf([]Check{chk("c-a", "a", HealthPassing), chk("c-gone", "gone", HealthCritical)}),
		},
		"unsorted": {
			Services: ListOf([]Service{svc("a"), svc("b")}),
			Checks:   ListOf([]Check{chk("z", "b", HealthWarning), chk("m", "", HealthPassing), chk("a", "a", HealthPassing), chk("b2", "a", HealthCritical)}),
		},
		"external": {
			Owner:    "agent-1",
			Services: ListOf([]Service{svc("a")}),
			Checks:   ListOf([]Check{chk("alive", "", HealthPassing), chk("service:a", "a", HealthWarning)}),
		},
	}
	for name, rec := range records {
		rec.Node = Node{Name: "n1", Address: "10.0.0.1"}
		rec.Version = 1
		for _, status := range []MemberStatus{MemberAlive, MemberFailed} {
			n := buildNode("n1", "10.0.0.1", rec, status, 1, nil)
			// AllChecks: the node's checks and those of held services, by CheckID.
			var want []Check
			want = append(want, n.Checks...)
			for _, c := range rec.Checks.All() {
				if c.ServiceID != "" && rec.FindService(c.ServiceID) != nil {
					want = append(want, *c)
				}
			}
			slices.SortStableFunc(want, func(a, b Check) int { return strings.Compare(a.CheckID, b.CheckID) })
			if got := checkValues(n.AllChecks()); !slices.Equal(got, want) {
				t.Errorf("%s/%v: AllChecks\n got %+v\nwant %+v", name, status, got, want)
			}
			if (rec.Owner == "") != slices.ContainsFunc(n.Checks, func(c Check) bool { return c.CheckID == SerfCheckID }) {
				t.Errorf("%s/%v: node checks %+v: serfHealth present on an agent's node only", name, status, n.Checks)
			}
			for _, inst := range n.Instances.Values() {
				var own []Check
				for _, c := range rec.Checks.All() {
					if c.ServiceID == inst.Service.ID {
						own = append(own, *c)
					}
				}
				wantI := append(slices.Clone(n.Checks), own...)
				if got := checkValues(inst.Checks()); !slices.Equal(got, wantI) || inst.NumChecks() != len(wantI) || !slices.Equal(inst.OwnChecks(), own) {
					t.Errorf("%s/%v: instance %s checks\n got %+v\nwant %+v", name, status, inst.Service.ID, got, wantI)
				}
				if h := AggregateHealth(wantI); inst.Health != h {
					t.Errorf("%s/%v: instance %s health %s, want %s", name, status, inst.Service.ID, inst.Health, h)
				}
			}
		}
	}
	// Adjacent own checks are the record's, not copies.
	n := buildNode("n1", "10.0.0.1", records["adjacent"], MemberAlive, 1, nil)
	if &n.Instances.Get(0).OwnChecks()[0] != &*records["adjacent"].Checks.At(1) {
		t.Error("adjacent own checks were copied")
	}
}
