package replication

import (
	"crypto/ed25519"
	"net"
	"time"

	"github.com/chorusdns/chorus/catalog"
)

// Store is the catalog as the replication reads and changes it.
// *catalog.Store implements it.
type Store interface {
	// Version is the version of the record held for node, 0 if none.
	Version(node string) uint64
	// Record is the record held for node, or nil.
	Record(node string) *catalog.NodeRecord
	// Snapshot is the current catalog snapshot.
	Snapshot() *catalog.Snapshot
	// Update applies several changes as one snapshot.
	Update(fn func(tx *catalog.Tx))
	// Unmembered lists records of nodes that have no member status.
	Unmembered() []*catalog.NodeRecord
}

// Member is one member of the gossip pool as the replication sees it.
type Member struct {
	Name string
	// Addr is the member's gossip address ("ip:port"), where its notices
	// come from and its records are pulled.
	Addr string
	// IP is the member's advertised address (the catalog's node address).
	IP     string
	Status catalog.MemberStatus
	// Version is the record version in the member's version tag.
	Version uint64
	// Key is the Ed25519 public key the member signs its records with,
	// from its tags; nil when it has none.
	Key ed25519.PublicKey
}

// Members is the gossip layer: its member list and the two things the
// replication asks of it.
type Members interface {
	// Members lists every known member, this agent included.
	Members() []Member
	// NumMembers counts the known members.
	NumMembers() int
	// LocalAddr is this agent's gossip address.
	LocalAddr() string
	// Join contacts a member at addr and syncs the member list with it.
	Join(addr string) error
}

// Network carries the replication's packets and streams to peers' gossip
// ports. The gossip-port transport implements it; tests use an in-memory
// one.
type Network interface {
	// WriteTo sends one datagram to addr.
	WriteTo(b []byte, addr string) (time.Time, error)
	// DialTimeout opens a stream to addr.
	DialTimeout(addr string, timeout time.Duration) (net.Conn, error)
}

var (
	_ Store   = (*catalog.Store)(nil)
	_ Network = (*Transport)(nil)
)
