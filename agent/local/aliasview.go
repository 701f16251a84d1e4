package local

import (
	"github.com/chorusdns/chorus/catalog"
	"github.com/chorusdns/chorus/checks"
)

// AliasView is the read-only view of the catalog that alias checks
// follow (checks.Catalog), over the catalog's snapshots; Self is this
// agent's node name (an alias check with no node follows it).
type AliasView struct {
	Store *catalog.Store
	Self  string
}

var _ checks.Catalog = AliasView{}

// AliasNode implements checks.Catalog: the node's checks as the current
// snapshot holds them (serfHealth included), and the snapshot's Changed
// channel.
func (v AliasView) AliasNode(node string) (checks.NodeView, <-chan struct{}) {
	if node == "" {
		node = v.Self
	}
	snap := v.Store.Snapshot()
	view := checks.NodeView{Name: node}
	n, ok := snap.Node(node)
	if !ok || n.Record() == nil {
		return view, snap.Changed()
	}
	view.Name = n.Node.Name
	view.Known = true
	view.Local = n.Node.Name == v.Self
	view.ServiceIDs = make([]string, n.Instances.Len())
	for i, inst := range n.Instances.Values() {
		view.ServiceIDs[i] = inst.Service.ID
	}
	view.Checks = make([]checks.CheckView, 0, len(n.Checks)+n.Record().Checks.Len())
	for c := range n.AllChecks() {
		view.Checks = append(view.Checks, checks.CheckView{ID: c.CheckID, Name: c.Name, ServiceID: c.ServiceID, Status: c.Status, Output: c.Output})
	}
	return view, snap.Changed()
}
