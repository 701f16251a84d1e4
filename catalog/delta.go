package catalog

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// A delta carries a node record's new version as the changes from one
// earlier version (its base): the record's header with the new signature,
// the services and checks added or changed, and the IDs of those removed.
// A receiver that holds the base applies it (ApplyDelta) at the cost of
// the change (the chunks of the record's Lists it touches), and checks the
// signature over the hash tree it derives from the base's tree and the
// delta's pieces; one that does not hold the base fetches the whole
// record.
//
// Encoding: deltaFormat, then uvarints of the node name's length, the
// name, the base version and the new version (readable without
// decompressing), then the DEFLATE-compressed JSON of deltaBody.
const deltaFormat byte = 'd'

type deltaBody struct {
	// Head is the new record without services and checks; it carries the
	// signature.
	Head        NodeRecord
	Services    []Service `json:",omitempty"`
	Checks      []Check   `json:",omitempty"`
	DelServices []string  `json:",omitempty"`
	DelChecks   []string  `json:",omitempty"`
}

// IsDelta reports whether b starts like an encoded delta (not a record).
func IsDelta(b []byte) bool { return len(b) > 0 && b[0] == deltaFormat }

// DeltaHeader returns the node, base version and new version of an
// encoded delta without decompressing it.
func DeltaHeader(b []byte) (node string, base, version uint64, err error) {
	node, base, version, _, err = deltaHeader(b)
	return
}

func deltaHeader(b []byte) (node string, base, version uint64, rest []byte, err error) {
	if len(b) > MaxRecordSize {
		return "", 0, 0, nil, ErrRecordTooLarge
	}
	if !IsDelta(b) {
		return "", 0, 0, nil, fmt.Errorf("%w: not a delta", ErrRecordCorrupt)
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > 255 || uint64(len(b)-k) < n {
		return "", 0, 0, nil, fmt.Errorf("%w: delta node name", ErrRecordCorrupt)
	}
	node, b = string(b[k:k+int(n)]), b[k+int(n):]
	if base, k = binary.Uvarint(b); k <= 0 {
		return "", 0, 0, nil, fmt.Errorf("%w: delta base version", ErrRecordCorrupt)
	}
	b = b[k:]
	if version, k = binary.Uvarint(b); k <= 0 || version <= base {
		return "", 0, 0, nil, fmt.Errorf("%w: delta version", ErrRecordCorrupt)
	}
	return node, base, version, b[k:], nil
}

// EncodeDelta encodes r as a delta against base, an earlier signed
// version of the same node's record. Both must be sorted; their hash
// trees are the attached ones (SetPieceTree, DecodeRecord) or computed.
// Its cost is that of the pieces that differ.
func EncodeDelta(base, r *NodeRecord) ([]byte, error) {
	if base.Node.Name != r.Node.Name || base.Version >= r.Version {
		return nil, fmt.Errorf("delta of %q %d against %q %d: %w", r.Node.Name, r.Version, base.Node.Name, base.Version, ErrDeltaBase)
	}
	bt, err := base.PieceTree()
	if err != nil {
		return nil, err
	}
	rt, err := r.PieceTree()
	if err != nil {
		return nil, err
	}
	set, del := DiffTrees(bt, rt)
	body := deltaBody{Head: *r}
	body.Head.Services, body.Head.Checks, body.Head.tree = List[Service]{}, List[Check]{}, nil
	for _, l := range set {
		switch l.Kind {
		case PieceService:
			s := r.FindService(l.ID)
			if s == nil {
				return nil, fmt.Errorf("delta of %q: service %q not in the record", r.Node.Name, l.ID)
			}
			body.Services = append(body.Services, *s)
		case PieceCheck:
			c := r.FindCheck(l.ID)
			if c == nil {
				return nil, fmt.Errorf("delta of %q: check %q not in the record", r.Node.Name, l.ID)
			}
			body.Checks = append(body.Checks, *c)
		}
	}
	for _, l := range del {
		if l.Kind == PieceService {
			body.DelServices = append(body.DelServices, l.ID)
		} else {
			body.DelChecks = append(body.DelChecks, l.ID)
		}
	}
	// Leaves come bucket by bucket; the receiver merges in ID order.
	slices.SortFunc(body.Services, func(a, b Service) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(body.Checks, func(a, b Check) int { return strings.Compare(a.CheckID, b.CheckID) })
	slices.Sort(body.DelServices)
	slices.Sort(body.DelChecks)
	raw, err := json.Marshal(&body)
	if err != nil {
		return nil, fmt.Errorf("encode delta %q: %w", r.Node.Name, err)
	}
	var buf bytes.Buffer
	buf.WriteByte(deltaFormat)
	buf.Write(binary.AppendUvarint(nil, uint64(len(r.Node.Name))))
	buf.WriteString(r.Node.Name)
	buf.Write(binary.AppendUvarint(nil, base.Version))
	buf.Write(binary.AppendUvarint(nil, r.Version))
	if err := deflateTo(&buf, raw); err != nil {
		return nil, err
	}
	if buf.Len() > MaxRecordSize {
		return nil, fmt.Errorf("encode delta %q: %d bytes: %w", r.Node.Name, buf.Len(), ErrRecordTooLarge)
	}
	return buf.Bytes(), nil
}

// flateWriters keeps DEFLATE writers for reuse: each holds about 1 MB
// of state, which a delta of a few hundred bytes would otherwise
// allocate every time.
var flateWriters = sync.Pool{New: func() any {
	zw, _ := flate.NewWriter(nil, flate.BestSpeed) // a valid level: no error
	return zw
}}

// deflateTo appends raw, DEFLATE-compressed, to buf.
func deflateTo(buf *bytes.Buffer, raw []byte) error {
	zw := flateWriters.Get().(*flate.Writer)
	defer func() {
		zw.Reset(io.Discard) // hold no reference to buf in the pool
		flateWriters.Put(zw)
	}()
	zw.Reset(buf)
	if _, err := zw.Write(raw); err != nil {
		return err
	}
	return zw.Close()
}

// ApplyDelta returns the record that delta b makes of base, the record
// held for its node. A delta against another version fails with
// ErrDeltaBase; one that does not decode, or whose result would not be a
// valid record (a piece removed that base lacks, a check naming a service
// the result lacks…), with ErrRecordCorrupt. The result carries the hash
// tree derived from base's tree and the delta's pieces as decoded, so its
// Verify checks the owner's signature over exactly the result; it does
// not check the signature itself. base is not modified.
func ApplyDelta(base *NodeRecord, b []byte) (*NodeRecord, error) {
	node, bv, version, rest, err := deltaHeader(b)
	if err != nil {
		return nil, err
	}
	if node != base.Node.Name || bv != base.Version {
		return nil, fmt.Errorf("%w: delta of %q against %d, holding %q %d", ErrDeltaBase, node, bv, base.Node.Name, base.Version)
	}
	var d deltaBody
	if err := inflateJSON(rest, &d); err != nil {
		return nil, err
	}
	rec, err := d.apply(base, node, version)
	if err != nil {
		return nil, fmt.Errorf("%w: delta of %q: %v", ErrRecordCorrupt, node, err)
	}
	return rec, nil
}

func (d *deltaBody) apply(base *NodeRecord, node string, version uint64) (*NodeRecord, error) {
	h := d.Head
	if h.Node.Name != node || h.Version != version {
		return nil, errors.New("header does not match the delta's node and version")
	}
	if h.Services.Len() > 0 || h.Checks.Len() > 0 {
		return nil, errors.New("header carries services or checks")
	}
	// The header's own fields (node, gossip, signature size…).
	if err := h.Validate(); err != nil {
		return nil, err
	}
	byID := func(s *Service) string { return s.ID }
	checkID := func(c *Check) string { return c.CheckID }
	self := func(s *string) string { return *s }
	if !sortedUnique(d.Services, byID) || !sortedUnique(d.Checks, checkID) ||
		!sortedUnique(d.DelServices, self) || !sortedUnique(d.DelChecks, self) {
		return nil, errors.New("pieces not sorted by ID or repeated")
	}
	set := make([]Leaf, 0, len(d.Services)+len(d.Checks))
	for i := range d.Services {
		s := &d.Services[i]
		if s.ID == "" {
			return nil, errors.New("service without ID")
		}
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("service %q: %w", s.ID, err)
		}
		if _, gone := slices.BinarySearch(d.DelServices, s.ID); gone {
			return nil, fmt.Errorf("service %q both changed and removed", s.ID)
		}
		l, _, err := ServiceLeaf(s)
		if err != nil {
			return nil, err
		}
		set = append(set, l)
	}
	for i := range d.Checks {
		c := &d.Checks[i]
		if c.CheckID == "" {
			return nil, errors.New("check without CheckID")
		}
		if !ValidStatus(c.Status) && c.Status != HealthMaintenance {
			return nil, fmt.Errorf("check %q has unknown status %q", c.CheckID, c.Status)
		}
		if _, gone := slices.BinarySearch(d.DelChecks, c.CheckID); gone {
			return nil, fmt.Errorf("check %q both changed and removed", c.CheckID)
		}
		l, _, err := CheckLeaf(c)
		if err != nil {
			return nil, err
		}
		set = append(set, l)
	}
	services, err := mergePieces(base.Services, d.Services, d.DelServices, byID)
	if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	checks, err := mergePieces(base.Checks, d.Checks, d.DelChecks, checkID)
	if err != nil {
		return nil, fmt.Errorf("checks: %w", err)
	}
	hasService := func(id string) bool {
		_, ok := services.Search(func(s *Service) int { return strings.Compare(s.ID, id) })
		return ok
	}
	for i := range d.Checks {
		if id := d.Checks[i].ServiceID; id != "" && !hasService(id) {
			return nil, fmt.Errorf("check %q names unknown service %q", d.Checks[i].CheckID, id)
		}
	}
	if len(d.DelServices) > 0 {
		for _, c := range checks.All() {
			if id := c.ServiceID; id != "" {
				if _, gone := slices.BinarySearch(d.DelServices, id); gone {
					return nil, fmt.Errorf("check %q names removed service %q", c.CheckID, id)
				}
			}
		}
	}
	del := make([]Leaf, 0, len(d.DelServices)+len(d.DelChecks))
	for _, id := range d.DelServices {
		del = append(del, Leaf{Kind: PieceService, ID: id})
	}
	for _, id := range d.DelChecks {
		del = append(del, Leaf{Kind: PieceCheck, ID: id})
	}
	bt, err := base.PieceTree()
	if err != nil {
		return nil, err
	}
	rec := h
	rec.Services, rec.Checks = services, checks
	rec.tree = bt.With(set, del)
	return &rec, nil
}

// sortedUnique reports whether xs is sorted by key with no key twice.
func sortedUnique[T any](xs []T, key func(*T) string) bool {
	for i := 1; i < len(xs); i++ {
		if key(&xs[i-1]) >= key(&xs[i]) {
			return false
		}
	}
	return true
}

// mergePieces returns base (sorted by key) with the pieces of set added
// or replaced and those named in del removed; removing a piece base lacks
// is an error. set and del are sorted by key and name no piece twice
// between them. It costs what List.Apply costs: the chunks the changes
// fall in.
func mergePieces[T any](base List[T], set []T, del []string, key func(*T) string) (List[T], error) {
	edits := make([]Edit[T], 0, len(set)+len(del))
	i, k := 0, 0
	for i < len(set) || k < len(del) {
		if k >= len(del) || i < len(set) && key(&set[i]) < del[k] {
			edits = append(edits, Edit[T]{ID: key(&set[i]), Value: set[i]})
			i++
			continue
		}
		id := del[k]
		if _, ok := base.Search(func(x *T) int { return strings.Compare(key(x), id) }); !ok {
			return List[T]{}, fmt.Errorf("%q removed but not held", id)
		}
		edits = append(edits, Edit[T]{ID: id, Delete: true})
		k++
	}
	return base.Apply(key, edits), nil
}
