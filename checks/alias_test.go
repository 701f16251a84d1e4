package checks

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// memCatalog is an in-memory Catalog: set replaces a node's view and wakes
// every alias check following the catalog. (The agent's tests run alias
// checks over the real catalog.)
type memCatalog struct {
	mu      sync.Mutex
	local   string
	nodes   map[string]NodeView
	changed chan struct{}
}

func newMemCatalog(local string) *memCatalog {
	return &memCatalog{local: local, nodes: map[string]NodeView{}, changed: make(chan struct{})}
}

func (c *memCatalog) AliasNode(node string) (NodeView, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if node == "" {
		node = c.local
	}
	v, ok := c.nodes[node]
	v.Name, v.Known, v.Local = node, ok, node == c.local
	return v, c.changed
}

func (c *memCatalog) set(node string, v NodeView) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[node] = v
	close(c.changed)
	c.changed = make(chan struct{})
}

func TestAliasStatus(t *testing.T) {
	node := NodeView{Name: "n1", Known: true, ServiceIDs: []string{"web", "db", "bare"}, Checks: []CheckView{
		{ID: "serfHealth", Name: "Serf Health Status", Status: StatusPassing},
		{ID: "web-1", Name: "web http", ServiceID: "web", Status: StatusPassing},
		{ID: "web-2", Name: "web tcp", ServiceID: "web", Status: StatusWarning, Output: "slow"},
		{ID: "db-1", Name: "db", ServiceID: "db", Status: StatusCritical, Output: "down"},
	}}
	failedNode := node
	failedNode.Checks = append([]CheckView{{ID: "serfHealth", Name: "Serf Health Status", Status: StatusCritical, Output: "Agent not live or unreachable"}}, node.Checks[1:]...)
	selfNode := NodeView{Name: "me", Known: true, Local: true, Checks: []CheckView{
		{ID: "alias", Name: "me", Status: StatusCritical},
		{ID: "serfHealth", Name: "Serf Health Status", Status: StatusPassing},
	}}
	for _, tc := range []struct {
		name      string
		view      NodeView
		service   string
		status    string
		outSubstr string
	}{
		{"warning service", node, "web", StatusWarning, `Aliased check "web tcp" failing: slow`},
		{"critical service", node, "db", StatusCritical, `Aliased check "db" failing: down`},
		{"service without checks", node, "bare", StatusPassing, "All checks passing."},
		{"node only", node, "", StatusPassing, "All checks passing."},
		{"failed node", failedNode, "web", StatusCritical, "Serf Health Status"},
		{"unknown service", node, "nope", StatusCritical, "Service nope could not be found on node n1"},
		{"unknown node", NodeView{Name: "gone"}, "web", StatusCritical, "Node gone could not be found"},
		{"no checks", NodeView{Name: "x", Known: true}, "", StatusPassing, "No checks found."},
		{"own check skipped", selfNode, "", StatusPassing, "All checks passing."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := aliasStatus(tc.view, tc.service, "alias")
			if status != tc.status || !strings.Contains(out, tc.outSubstr) {
				t.Fatalf("got %s %q, want %s with %q", status, out, tc.status, tc.outSubstr)
			}
		})
	}
}

// TestAliasCheckFollows: an alias check reports at once and again on every
// catalog change that changes its status, with no Interval.
func TestAliasCheckFollows(t *testing.T) {
	cat := newMemCatalog("me")
	view := func(status string) NodeView {
		return NodeView{ServiceIDs: []string{"web"}, Checks: []CheckView{
			{ID: "serfHealth", Name: "Serf Health Status", Status: StatusPassing},
			{ID: "web-ttl", Name: "web ttl", ServiceID: "web", Status: status, Output: "out-" + status},
		}}
	}
	cat.set("other", view(StatusPassing))
	cat.set("me", NodeView{})
	m, rec := startManager(t, Config{Catalog: cat})
	mustAdd(t, m, Definition{ID: "a", AliasNode: "other", AliasService: "web"})
	mustAdd(t, m, Definition{ID: "local", AliasService: "web"}) // on "me", which has no web

	waitStatus(t, m, "a", StatusPassing, 5*time.Second)
	waitOutput(t, m, "local", StatusCritical, "could not be found on node me", 5*time.Second)
	cat.set("other", view(StatusCritical))
	waitOutput(t, m, "a", StatusCritical, "out-critical", 5*time.Second)
	cat.set("me", view(StatusWarning))
	waitStatus(t, m, "local", StatusWarning, 5*time.Second)
	cat.set("other", view(StatusPassing))
	waitStatus(t, m, "a", StatusPassing, 5*time.Second)
	if got := rec.statuses("a"); strings.Join(got, ",") != "passing,critical,passing" {
		t.Fatalf("alias reported %v: a change that leaves it as it was must report nothing", got)
	}

	// Without a catalog, alias checks are refused.
	m2, _ := startManager(t, Config{})
	if err := m2.Add(Definition{ID: "a", AliasNode: "other"}); err == nil || !strings.Contains(err.Error(), "AliasService") {
		t.Fatalf("alias without a catalog: %v", err)
	}
}
