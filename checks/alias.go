package checks

import (
	"context"
	"fmt"
)

// Catalog is the read-only view of the cluster's catalog that alias checks
// follow. The agent implements it over its catalog snapshots; it must be
// safe for concurrent use.
type Catalog interface {
	// AliasNode returns what the catalog holds now of the node named node
	// ("" means this agent's own node), and a channel that is closed when
	// the catalog changes after that view was taken.
	AliasNode(node string) (NodeView, <-chan struct{})
}

// NodeView is one node as an alias check sees it.
type NodeView struct {
	// Name is the node's name ("" resolved to this agent's node).
	Name string
	// Known is false when the catalog holds no such node.
	Known bool
	// Local is true for this agent's own node.
	Local bool
	// ServiceIDs are the IDs of the node's service instances.
	ServiceIDs []string
	// Checks are every check of the node: node-level ones (including
	// the node's liveness check) and those of every service instance.
	Checks []CheckView
}

// CheckView is one check of a NodeView.
type CheckView struct {
	ID        string
	Name      string
	ServiceID string // "" for a node-level check
	Status    string
	Output    string
}

// aliasStatus computes an alias check's status from a view of the aliased
// node, as Consul's CheckAlias.processChecks does: the node-level checks
// and, with serviceID set, that instance's checks; critical wins, then
// warning; no checks at all is passing. self is the alias check's own ID,
// which is never counted on its own node (it would follow itself).
//
// Unlike Consul, which answers "No checks found." (passing) for a node
// its servers do not know, a node the catalog does not hold is critical:
// a node that has left is not healthy.
func aliasStatus(v NodeView, serviceID, self string) (string, string) {
	if !v.Known {
		return StatusCritical, fmt.Sprintf("Node %s could not be found", v.Name)
	}
	status, msg := StatusPassing, "No checks found."
	serviceFound := false
	for _, c := range v.Checks {
		if v.Local && c.ID == self {
			continue
		}
		match := serviceID != "" && c.ServiceID == serviceID
		if c.ServiceID != "" && !match {
			continue
		}
		if match {
			serviceFound = true
		}
		switch c.Status {
		case StatusCritical, StatusWarning:
			status = c.Status
			msg = fmt.Sprintf("Aliased check %q failing: %s", c.Name, c.Output)
		default:
			if status == StatusPassing {
				msg = "All checks passing."
			}
		}
		if status == StatusCritical {
			break
		}
	}
	if serviceID != "" && !serviceFound {
		exists := false
		for _, id := range v.ServiceIDs {
			if id == serviceID {
				exists = true
				break
			}
		}
		if !exists {
			return StatusCritical, fmt.Sprintf("Service %s could not be found on node %s", serviceID, v.Name)
		}
	}
	return status, msg
}

// runAlias reports the alias check's status now and again whenever the
// catalog changes it, until ctx is done. A catalog change that leaves the
// status and output as they were reports nothing.
func (r *runner) runAlias(ctx context.Context, m *Manager, cat Catalog) {
	var lastStatus, lastOutput string
	first := true
	for {
		view, changed := cat.AliasNode(r.def.AliasNode)
		status, output := aliasStatus(view, r.def.AliasService, r.def.ID)
		if first || status != lastStatus || output != lastOutput {
			r.report(m, status, output)
			first, lastStatus, lastOutput = false, status, output
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}
