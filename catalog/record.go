package catalog

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
)

// MaxRecordSize bounds a node record, both compressed on the wire and
// decompressed, so a hostile peer cannot exhaust memory.
const MaxRecordSize = 16 << 20

// recordFormat is the first byte of an encoded record; it lets the format
// change later without ambiguity.
const recordFormat byte = 1

// NodeRecord is everything one agent publishes about its node: the node,
// its services and its checks with their current states. The owning agent
// is its only writer; Version strictly increases with every change, also
// across restarts, so the newest version always wins.
//
// A NodeRecord handed to a Store must not be modified afterwards.
type NodeRecord struct {
	Node     Node
	Version  uint64
	Services []Service `json:",omitempty"`
	Checks   []Check   `json:",omitempty"`
	// Gossip is the owner's gossip address (ip:port), so that an agent
	// holding the record while its Serf has not heard of the node can
	// join it. Not part of the HTTP or DNS views.
	Gossip string `json:",omitempty"`
}

// Sort orders services by ID and checks by CheckID, the canonical order.
func (r *NodeRecord) Sort() {
	sort.Slice(r.Services, func(i, j int) bool { return r.Services[i].ID < r.Services[j].ID })
	sort.Slice(r.Checks, func(i, j int) bool { return r.Checks[i].CheckID < r.Checks[j].CheckID })
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
	ids := make(map[string]bool, len(r.Services))
	for i := range r.Services {
		s := r.Services[i]
		if err := s.Validate(); err != nil {
			return fmt.Errorf("service %q: %w", r.Services[i].ID, err)
		}
		if s.ID != r.Services[i].ID {
			return fmt.Errorf("service %q has no ID: %w", s.Name, ErrInvalid)
		}
		if ids[s.ID] {
			return fmt.Errorf("service ID %q appears twice: %w", s.ID, ErrInvalid)
		}
		ids[s.ID] = true
	}
	cids := make(map[string]bool, len(r.Checks))
	for _, c := range r.Checks {
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

// EncodeRecord serialises r compactly (JSON, DEFLATE-compressed) for the
// wire and for disk.
func EncodeRecord(r *NodeRecord) ([]byte, error) {
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode record %q: %w", r.Node.Name, err)
	}
	var buf bytes.Buffer
	buf.Grow(len(raw)/3 + 16)
	buf.WriteByte(recordFormat)
	zw, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if buf.Len() > MaxRecordSize {
		return nil, fmt.Errorf("encode record %q: %d bytes: %w", r.Node.Name, buf.Len(), ErrRecordTooLarge)
	}
	return buf.Bytes(), nil
}

// DecodeRecord parses and validates an encoded record. Anything that does
// not decode, is too large or fails Validate is an error wrapping
// ErrRecordCorrupt or ErrRecordTooLarge.
func DecodeRecord(b []byte) (*NodeRecord, error) {
	if len(b) > MaxRecordSize {
		return nil, ErrRecordTooLarge
	}
	if len(b) < 2 || b[0] != recordFormat {
		return nil, fmt.Errorf("%w: unknown format", ErrRecordCorrupt)
	}
	zr := flate.NewReader(bytes.NewReader(b[1:]))
	defer zr.Close()
	raw, err := io.ReadAll(io.LimitReader(zr, MaxRecordSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRecordCorrupt, err)
	}
	if len(raw) > MaxRecordSize {
		return nil, ErrRecordTooLarge
	}
	var r NodeRecord
	// Unknown fields are ignored so that agents of different versions can
	// run side by side during a rolling upgrade.
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRecordCorrupt, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrRecordCorrupt)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRecordCorrupt, err)
	}
	r.Sort()
	// The decoder grows slices by half again; a store holds every
	// node's record, so keep them at their length.
	r.Services = slices.Clone(r.Services)
	r.Checks = slices.Clone(r.Checks)
	return &r, nil
}
