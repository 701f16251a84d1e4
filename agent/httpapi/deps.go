package httpapi

import (
	"github.com/chorusdns/chorus/agent/local"
	"github.com/chorusdns/chorus/catalog"
)

// The API's view of this agent's own node. local.State implements both
// halves; the API never takes its lock or sees its fields. The
// definitions a write carries (local.ServiceDefinition,
// local.CheckDefinition, local.NodeRegistration) and the check view are
// the local state's types: it validates and builds them for config files
// too, so they have one owner.

// LocalReader reads this agent's own node: what /v1/agent/* lists.
// Every method returns copies and is safe for concurrent use.
type LocalReader interface {
	Node() catalog.Node
	Services() []catalog.Service
	Service(id string) (catalog.Service, bool)
	Checks() []local.CheckView
	// IsExternal and CheckIsExternal report whether a service or check
	// of this node was registered through the catalog endpoints.
	IsExternal(serviceID string) bool
	CheckIsExternal(checkID string) bool
}

// Registrar changes this agent's own services and checks. A change is
// durable when the method returns nil; errors wrap local's sentinels
// (ErrInvalid, ErrNotFound, ErrNotTTL, ErrTooLarge), which the API maps
// to statuses.
type Registrar interface {
	RegisterService(def local.ServiceDefinition) error
	DeregisterService(id string) error
	RegisterCheck(def local.CheckDefinition) error
	DeregisterCheck(id string) error
	UpdateTTL(id, status, output string) error
	SetNodeMaintenance(enable bool, reason string) error
	SetServiceMaintenance(id string, enable bool, reason string) error
	SetServiceLoad(id string, load float64) error
}

// Local is this agent's own node as the API reads and changes it.
type Local interface {
	LocalReader
	Registrar
}

// Externals writes the external nodes (those that run no agent) through
// this agent, which becomes the writer of the version it writes.
type Externals interface {
	Register(reg local.NodeRegistration) error
	Deregister(node, serviceID, checkID string) error
}

var (
	_ Local     = (*local.State)(nil)
	_ Externals = (*local.Externals)(nil)
)
