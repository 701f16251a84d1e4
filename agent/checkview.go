package agent

import (
	"github.com/chorusdns/chorus/checks"
)

// aliasView is the read-only view of the catalog that alias checks
// follow (checks.Catalog), over the agent's catalog snapshots.
type aliasView struct{ a *Agent }

var _ checks.Catalog = aliasView{}

// AliasNode implements checks.Catalog: the node's checks as the current
// snapshot holds them (serfHealth included), and the snapshot's Changed
// channel.
func (v aliasView) AliasNode(node string) (checks.NodeView, <-chan struct{}) {
	self := v.a.cfg.Load().NodeName
	if node == "" {
		node = self
	}
	snap := v.a.store.Snapshot()
	view := checks.NodeView{Name: node}
	n, ok := snap.Node(node)
	if !ok || n.Record() == nil {
		return view, snap.Changed()
	}
	view.Name = n.Node.Name
	view.Known = true
	view.Local = n.Node.Name == self
	view.ServiceIDs = make([]string, len(n.Instances))
	for i, inst := range n.Instances {
		view.ServiceIDs[i] = inst.Service.ID
	}
	view.Checks = make([]checks.CheckView, 0, len(n.Checks)+len(n.Record().Checks))
	for c := range n.AllChecks() {
		view.Checks = append(view.Checks, checks.CheckView{ID: c.CheckID, Name: c.Name, ServiceID: c.ServiceID, Status: c.Status, Output: c.Output})
	}
	return view, snap.Changed()
}
