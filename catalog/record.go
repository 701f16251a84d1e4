package catalog

import (
	"bytes"
	"compress/flate"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
)

// MaxRecordSize bounds a node record, both compressed on the wire and
// decompressed, so a hostile peer cannot exhaust memory.
const MaxRecordSize = 16 << 20

// recordFormat is the first byte of an encoded record; it lets the format
// change later without ambiguity. Format 2 added the owner's signature;
// format 3 signs the record in pieces (pieces.go), so that a change costs
// what changed. Records of other formats are refused, so every agent of a
// cluster must run a version that writes format 3.
const recordFormat byte = 3

// signedPrefix starts the bytes a record's signature covers, so that the
// signature cannot be taken for one over anything else.
const signedPrefix = "chorus node record v3\n"

// NodeRecord is everything one agent publishes about its node: the node,
// its services and its checks with their current states. The owning agent
// is its only writer; Version strictly increases with every change, also
// across restarts, so the newest version always wins.
//
// A NodeRecord handed to a Store must not be modified afterwards.
type NodeRecord struct {
	Node    Node
	Version uint64
	// Services (sorted by ID) and Checks (sorted by CheckID) are
	// Lists, whose versions share what did not change.
	Services List[Service] `json:",omitzero"`
	Checks   List[Check]   `json:",omitzero"`
	// Gossip is the owner's gossip address (ip:port), so that an agent
	// holding the record while its Serf has not heard of the node can
	// join it. Not part of the HTTP or DNS views.
	Gossip string `json:",omitempty"`
	// Owner is set on an external node's record (a node that runs no
	// agent, registered through /v1/catalog/register): the name of the
	// agent that wrote this version and whose key signed it. Empty on an
	// agent's own record. See external.go.
	Owner string `json:",omitempty"`
	// Deleted marks an external node's tombstone: the node was
	// deregistered at this version. It carries no services or checks.
	Deleted bool `json:",omitempty"`
	// Signature is the owner's Ed25519 signature over SignedBytes: every
	// other field, canonically encoded. Set by Sign, checked by Verify.
	Signature []byte `json:"Sig,omitempty"`

	// tree is the hash tree of Services and Checks, when it is known to
	// hold (DecodeRecord, ApplyDelta, SetPieceTree); nil means it is
	// computed when needed.
	tree *PieceTree
}

// SetPieceTree attaches t, which must be the tree of r's services and
// checks (BuildTree over their leaves), so that Sign and Verify need not
// compute it: the owner's incremental path. r must not be modified
// afterwards.
func (r *NodeRecord) SetPieceTree(t *PieceTree) { r.tree = t }

// PieceTree returns the tree of r's services and checks (r must be in
// canonical order): the one attached, else a new one.
func (r *NodeRecord) PieceTree() (*PieceTree, error) {
	if r.tree != nil {
		return r.tree, nil
	}
	return computeTree(r)
}

// SignedBytes returns what the record's signature covers: a fixed prefix,
// the canonical JSON of every field but Services, Checks and Signature
// (the header), and the root of the hash tree of the services and checks
// (pieces.go), which must be in canonical order (the order Sort and
// DecodeRecord leave them in). JSON encoding of these types is
// deterministic, and decoding an encoded record and encoding it again
// yields the same bytes, so a receiver recomputes them from the record it
// decoded (strings with invalid UTF-8 are taken as the receiver decodes
// them).
func (r *NodeRecord) SignedBytes() ([]byte, error) {
	t, err := r.PieceTree()
	if err != nil {
		return nil, err
	}
	return r.signedBytes(t)
}

func (r *NodeRecord) signedBytes(t *PieceTree) ([]byte, error) {
	c := *r
	c.Services, c.Checks, c.Signature, c.tree = List[Service]{}, List[Check]{}, nil, nil
	raw, err := canonicalJSON(&c)
	if err != nil {
		return nil, fmt.Errorf("encode record %q: %w", r.Node.Name, err)
	}
	root := t.Root()
	b := make([]byte, 0, len(signedPrefix)+len(raw)+len(root))
	b = append(b, signedPrefix...)
	b = append(b, raw...)
	return append(b, root[:]...), nil
}

// Sign sorts the record and sets its Signature with key (the owner's).
// Call it before the record is handed to a Store or encoded. It signs
// over the tree attached with SetPieceTree, else over one it computes
// (hashing every piece). A record whose tree is attached must be sorted
// already: Sign leaves its order as it is, so that signing costs what
// changed.
func (r *NodeRecord) Sign(key ed25519.PrivateKey) error {
	if r.tree == nil {
		r.Sort()
	}
	b, err := r.SignedBytes()
	if err != nil {
		return err
	}
	r.Signature = ed25519.Sign(key, b)
	return nil
}

// Verify reports, as an error wrapping ErrSignature, whether the record
// is not signed by the holder of the private key of pub. The record must
// be in canonical order (as DecodeRecord returns it). It does not modify
// the record and is safe for concurrent use.
func (r *NodeRecord) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: no valid key for node %q", ErrSignature, r.Node.Name)
	}
	if len(r.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("%w: record of %q is not signed", ErrSignature, r.Node.Name)
	}
	b, err := r.SignedBytes()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	if !ed25519.Verify(pub, b, r.Signature) {
		return fmt.Errorf("%w: record of %q", ErrSignature, r.Node.Name)
	}
	return nil
}

// Sort orders services by ID and checks by CheckID, the canonical order.
// A sorted record (the agent's own are) costs one pass.
func (r *NodeRecord) Sort() {
	r.Services = r.Services.SortFunc(func(a, b *Service) int { return strings.Compare(a.ID, b.ID) })
	r.Checks = r.Checks.SortFunc(func(a, b *Check) int { return strings.Compare(a.CheckID, b.CheckID) })
}

// FindService returns the service with ID id, or nil (r must be sorted).
func (r *NodeRecord) FindService(id string) *Service {
	if i, ok := r.Services.Search(func(s *Service) int { return strings.Compare(s.ID, id) }); ok {
		return r.Services.At(i)
	}
	return nil
}

// FindCheck returns the check with CheckID id, or nil (r must be sorted).
func (r *NodeRecord) FindCheck(id string) *Check {
	if i, ok := r.Checks.Search(func(c *Check) int { return strings.Compare(c.CheckID, id) }); ok {
		return r.Checks.At(i)
	}
	return nil
}

// Validate checks a record received from elsewhere: a valid node name,
// valid services with unique IDs, checks that name existing services and
// carry a known status.
func (r *NodeRecord) Validate() error {
	if err := ValidateNodeName(r.Node.Name); err != nil {
		return err
	}
	if r.Gossip != "" {
		if ap, err := netip.ParseAddrPort(r.Gossip); err != nil || ap.Port() == 0 {
			return fmt.Errorf("gossip address %q is not ip:port: %w", r.Gossip, ErrInvalid)
		}
	}
	if err := r.validateExternal(); err != nil {
		return err
	}
	if r.Signature != nil && len(r.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("signature of %d bytes, want %d: %w", len(r.Signature), ed25519.SignatureSize, ErrInvalid)
	}
	ids := make(map[string]bool, r.Services.Len())
	for _, sp := range r.Services.All() {
		s := *sp
		if err := s.Validate(); err != nil {
			return fmt.Errorf("service %q: %w", sp.ID, err)
		}
		if s.ID != sp.ID {
			return fmt.Errorf("service %q has no ID: %w", s.Name, ErrInvalid)
		}
		if ids[s.ID] {
			return fmt.Errorf("service ID %q appears twice: %w", s.ID, ErrInvalid)
		}
		ids[s.ID] = true
	}
	cids := make(map[string]bool, r.Checks.Len())
	for _, c := range r.Checks.All() {
		if c.CheckID == "" {
			return fmt.Errorf("check without CheckID: %w", ErrInvalid)
		}
		if cids[c.CheckID] {
			return fmt.Errorf("check ID %q appears twice: %w", c.CheckID, ErrInvalid)
		}
		cids[c.CheckID] = true
		if !ValidStatus(c.Status) && c.Status != HealthMaintenance {
			return fmt.Errorf("check %q has unknown status %q: %w", c.CheckID, c.Status, ErrInvalid)
		}
		if c.ServiceID != "" && !ids[c.ServiceID] {
			return fmt.Errorf("check %q names unknown service %q: %w", c.CheckID, c.ServiceID, ErrInvalid)
		}
	}
	return nil
}

// recordJSON is a record's JSON form for EncodeRecord and DecodeRecord:
// the record's own fields, with its services and checks as plain slices
// (the outer fields hide the record's Lists), so that encoding/json
// encodes and decodes them at its own speed rather than through the
// Lists' MarshalJSON and UnmarshalJSON (whose output it scans again).
// Fields appear in another order than json.Marshal(r) gives; JSON
// objects are unordered and signatures do not cover this encoding.
type recordJSON struct {
	*NodeRecord
	Services []Service `json:",omitempty"`
	Checks   []Check   `json:",omitempty"`
}

// RecordJSON returns r's JSON as EncodeRecord encodes it before
// compressing it: json.Marshal(r) holds the same fields, at about twice
// the cost for a large record (see recordJSON).
func RecordJSON(r *NodeRecord) ([]byte, error) {
	return json.Marshal(recordJSON{NodeRecord: r, Services: r.Services.Slice(), Checks: r.Checks.Slice()})
}

// EncodeRecord serialises r compactly (JSON, DEFLATE-compressed) for the
// wire and for disk.
func EncodeRecord(r *NodeRecord) ([]byte, error) {
	raw, err := RecordJSON(r)
	if err != nil {
		return nil, fmt.Errorf("encode record %q: %w", r.Node.Name, err)
	}
	var buf bytes.Buffer
	buf.Grow(len(raw)/3 + 16)
	buf.WriteByte(recordFormat)
	if err := deflateTo(&buf, raw); err != nil {
		return nil, err
	}
	if buf.Len() > MaxRecordSize {
		return nil, fmt.Errorf("encode record %q: %d bytes: %w", r.Node.Name, buf.Len(), ErrRecordTooLarge)
	}
	return buf.Bytes(), nil
}

// DecodeRecord parses and validates an encoded record. Anything that does
// not decode, is too large, is of another format or fails Validate is an
// error wrapping ErrRecordCorrupt or ErrRecordTooLarge. It does not check
// the signature (see Verify): that needs the owner's key.
func DecodeRecord(b []byte) (*NodeRecord, error) { return DecodeRecordLimit(b, MaxRecordSize) }

// DecodeRecordLimit is DecodeRecord refusing a record of more than
// maxJSON bytes of JSON (ErrRecordTooLarge) before decoding any of it:
// for records that must be small, such as those inlined in a datagram,
// whose few bytes could otherwise inflate to MaxRecordSize.
func DecodeRecordLimit(b []byte, maxJSON int) (*NodeRecord, error) {
	maxJSON = min(maxJSON, MaxRecordSize)
	if len(b) > MaxRecordSize {
		return nil, ErrRecordTooLarge
	}
	if len(b) < 2 || b[0] != recordFormat {
		return nil, fmt.Errorf("%w: unknown format", ErrRecordCorrupt)
	}
	var r NodeRecord
	// Unknown fields are ignored. They are not in what SignedBytes
	// re-encodes either, so a record carrying one fails Verify: a new
	// field needs a new format.
	w := recordJSON{NodeRecord: &r}
	if err := inflateJSONLimit(b[1:], &w, maxJSON); err != nil {
		return nil, err
	}
	// The decoder grows slices by half again; a store holds every
	// node's record, so keep them at their length.
	r.Services, r.Checks = ListOf(clipped(w.Services)), ListOf(clipped(w.Checks))
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRecordCorrupt, err)
	}
	r.Sort()
	internRecord(&r)
	// The tree is computed here, from what was decoded, so that Verify
	// and a later delta (ApplyDelta) start from it.
	t, err := computeTree(&r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRecordCorrupt, err)
	}
	r.tree = t
	return &r, nil
}

// clipped returns s, copied to a new array of its length when the
// array it is in is longer.
func clipped[T any](s []T) []T {
	if cap(s) > len(s) {
		return slices.Clone(s)
	}
	return s
}

// inflateJSON decodes one JSON value from DEFLATE-compressed b into v. It
// refuses more than MaxRecordSize bytes of JSON (ErrRecordTooLarge, so a
// small input cannot inflate without bound), and damage, a second value
// or trailing data (ErrRecordCorrupt).
func inflateJSON(b []byte, v any) error { return inflateJSONLimit(b, v, MaxRecordSize) }

// inflateJSONLimit is inflateJSON with max bytes of JSON at most.
func inflateJSONLimit(b []byte, v any, max int) error {
	zr := flate.NewReader(bytes.NewReader(b))
	defer zr.Close()
	raw, err := io.ReadAll(io.LimitReader(zr, int64(max)+1))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRecordCorrupt, err)
	}
	if len(raw) > max {
		return ErrRecordTooLarge
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrRecordCorrupt, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data", ErrRecordCorrupt)
	}
	return nil
}
