package catalog

// treeKeptPieces is the number of pieces from which the store keeps a
// record's hash tree. A smaller record is kept without it: its tree
// (about 130 bytes a piece, a quarter of a small record's memory) is
// computed again when a delta against it arrives or its signature is
// checked, which costs a few microseconds a piece, and a node of so few
// instances is rebuilt whole on a change at about that cost anyway.
const treeKeptPieces = 64

// kept returns what the store keeps of rec: rec itself, or a copy of it
// without its hash tree when it has fewer than treeKeptPieces pieces. The
// copy shares rec's services and checks (rec is not modified).
func kept(rec *NodeRecord) *NodeRecord {
	if rec.tree == nil || rec.Services.Len()+rec.Checks.Len() >= treeKeptPieces {
		return rec
	}
	c := *rec
	c.tree = nil
	return &c
}
