package wan

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	"github.com/chorusdns/chorus/catalog"
)

// MaxSummarySize bounds an encoded summary, compressed on the wire and
// decompressed, so that a hostile peer cannot exhaust memory.
const MaxSummarySize = 16 << 20

// summaryFormat is the first byte of an encoded summary.
const summaryFormat byte = 1

// remoteCheckID is the one check an instance of a remote datacenter
// carries in this agent's catalog: its aggregated health as the summary
// states it.
const remoteCheckID = "chorus-remote-health"

// Summary is what crosses sites: every node of a datacenter that has
// instances, with each instance's address, port, tags, meta, weights and
// aggregated health. A Summary handed to a Node or decoded by Decode must
// not be modified afterwards.
type Summary struct {
	Datacenter string
	// Version increases with every change of the content; newest wins.
	Version uint64
	// Speakers are the WAN addresses (ip:port) of the datacenter's
	// speakers when the summary was built, so that an agent of another
	// datacenter that becomes a speaker knows where the WAN pool is.
	Speakers []string `json:",omitempty"`
	Nodes    []SummaryNode
}

// SummaryNode is one node of a summary.
type SummaryNode struct {
	Name      string
	Address   string
	Zone      string            `json:",omitempty"`
	Meta      map[string]string `json:",omitempty"`
	Instances []SummaryInstance `json:",omitempty"`
}

// SummaryInstance is one service instance of a summary.
type SummaryInstance struct {
	ID      string
	Name    string
	Tags    []string          `json:",omitempty"`
	Address string            `json:",omitempty"`
	Port    int               `json:",omitempty"`
	Meta    map[string]string `json:",omitempty"`
	Weights catalog.Weights
	// Health is the instance's aggregated health: passing, warning,
	// critical or maintenance.
	Health string
}

// BuildSummary summarises snap, the catalog of datacenter dc: every node
// of dc that has an instance, in name order, and node-less data left out
// (checks' outputs, load figures). Version and Speakers are left for the
// caller to set.
func BuildSummary(dc string, snap *catalog.Snapshot) *Summary {
	s := &Summary{Datacenter: dc}
	for n := range snap.AllNodes() {
		if n.Instances.Len() == 0 {
			continue
		}
		if ndc := n.Node.Datacenter; ndc != "" && !strings.EqualFold(ndc, dc) {
			continue
		}
		sn := SummaryNode{Name: n.Node.Name, Address: n.Node.Address, Zone: n.Node.Zone, Meta: n.Node.Meta}
		for _, inst := range n.Instances.Values() {
			svc := inst.Service
			sn.Instances = append(sn.Instances, SummaryInstance{
				ID: svc.ID, Name: svc.Name, Tags: svc.Tags, Address: svc.Address, Port: svc.Port,
				Meta: svc.Meta, Weights: svc.Weights, Health: inst.Health,
			})
		}
		s.Nodes = append(s.Nodes, sn)
	}
	return s
}

// ContentHash fingerprints everything in s but its version and speakers,
// so that a speaker bumps the version only when the content changed.
func (s *Summary) ContentHash() uint64 {
	h := catalog.NewHasher()
	h.Str(s.Datacenter)
	for i := range s.Nodes {
		n := &s.Nodes[i]
		h.Str(n.Name).Str(n.Address).Str(n.Zone).StrMap(n.Meta)
		h.U64(uint64(len(n.Instances)))
		for j := range n.Instances {
			in := &n.Instances[j]
			h.Str(in.ID).Str(in.Name).Strs(in.Tags).Str(in.Address).U64(uint64(in.Port)).StrMap(in.Meta)
			h.U64(uint64(in.Weights.Passing)<<32 | uint64(uint32(in.Weights.Warning))).Str(in.Health)
		}
	}
	return h.Sum()
}

// Encode returns the wire form of s: a format byte and the DEFLATE of its
// JSON.
func (s *Summary) Encode() ([]byte, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode summary of %q: %w", s.Datacenter, err)
	}
	var buf bytes.Buffer
	buf.WriteByte(summaryFormat)
	zw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	zw.Write(raw)
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress summary of %q: %w", s.Datacenter, err)
	}
	if buf.Len() > MaxSummarySize {
		return nil, fmt.Errorf("summary of %q is %d bytes compressed, over the %d-byte limit: %w", s.Datacenter, buf.Len(), MaxSummarySize, ErrSummary)
	}
	return buf.Bytes(), nil
}

// DecodeSummary parses and validates an encoded summary. Anything that
// does not decode, exceeds MaxSummarySize (compressed or not) or breaks
// the rules of the catalog's names is refused with an error wrapping
// ErrSummary.
func DecodeSummary(b []byte) (*Summary, error) {
	if len(b) == 0 || b[0] != summaryFormat {
		return nil, fmt.Errorf("%w: unknown format", ErrSummary)
	}
	if len(b) > MaxSummarySize {
		return nil, fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrSummary, len(b), MaxSummarySize)
	}
	zr := flate.NewReader(bytes.NewReader(b[1:]))
	raw, err := io.ReadAll(io.LimitReader(zr, MaxSummarySize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: decompress: %v", ErrSummary, err)
	}
	if len(raw) > MaxSummarySize {
		return nil, fmt.Errorf("%w: over %d bytes decompressed", ErrSummary, MaxSummarySize)
	}
	var s Summary
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSummary, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the summary", ErrSummary)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate checks a summary as DecodeSummary does: the datacenter is a
// DNS label, the version is set, node names are valid and unique, addresses are IP addresses, every instance passes the catalog's
// own service validation and has a known health, and instance IDs are
// unique per node.
func (s *Summary) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrSummary, fmt.Sprintf(format, a...))
	}
	if err := catalog.ValidateLabel("datacenter", s.Datacenter); err != nil {
		return bad("%v", err)
	}
	if s.Version == 0 {
		return bad("version 0")
	}
	if len(s.Speakers) > 64 {
		return bad("%d speakers, more than 64", len(s.Speakers))
	}
	for _, a := range s.Speakers {
		if _, _, err := net.SplitHostPort(a); err != nil || len(a) > 64 {
			return bad("speaker address %q is not ip:port", a)
		}
	}
	// Node names are unique without regard to case, as the catalog looks
	// them up.
	names := make(map[string]struct{}, len(s.Nodes))
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if err := catalog.ValidateNodeName(n.Name); err != nil {
			return bad("%v", err)
		}
		lk := strings.ToLower(n.Name)
		if _, dup := names[lk]; dup {
			return bad("node %q repeated", n.Name)
		}
		names[lk] = struct{}{}
		if net.ParseIP(n.Address) == nil {
			return bad("node %q: address %q is not an IP address", n.Name, n.Address)
		}
		if n.Zone != "" {
			if err := catalog.ValidateLabel("zone", n.Zone); err != nil {
				return bad("node %q: %v", n.Name, err)
			}
		}
		if len(n.Instances) == 0 {
			return bad("node %q has no instance", n.Name)
		}
		ids := make(map[string]struct{}, len(n.Instances))
		for j := range n.Instances {
			in := &n.Instances[j]
			svc := catalog.Service{ID: in.ID, Name: in.Name, Tags: in.Tags, Address: in.Address, Port: in.Port, Meta: in.Meta, Weights: in.Weights}
			if in.ID == "" || in.Weights == (catalog.Weights{}) {
				return bad("node %q: instance %q: ID and weights are required", n.Name, in.ID)
			}
			if err := svc.Validate(); err != nil {
				return bad("node %q: instance %q: %v", n.Name, in.ID, err)
			}
			switch in.Health {
			case catalog.HealthPassing, catalog.HealthWarning, catalog.HealthCritical, catalog.HealthMaintenance:
			default:
				return bad("node %q: instance %q: health %q", n.Name, in.ID, in.Health)
			}
			if _, dup := ids[in.ID]; dup {
				return bad("node %q: instance ID %q repeated", n.Name, in.ID)
			}
			ids[in.ID] = struct{}{}
		}
	}
	return nil
}

// records returns one node record per summarised node, for a catalog
// store of the remote datacenter: the node (its datacenter set to the
// summary's), its services, and per instance one check carrying the
// instance's health. A maintenance instance gets a maintenance check, so
// that its aggregated health stays maintenance.
func (s *Summary) records() []*catalog.NodeRecord {
	out := make([]*catalog.NodeRecord, 0, len(s.Nodes))
	for i := range s.Nodes {
		n := &s.Nodes[i]
		rec := &catalog.NodeRecord{
			Node:    catalog.Node{Name: n.Name, Address: n.Address, Datacenter: s.Datacenter, Zone: n.Zone, Meta: n.Meta},
			Version: s.Version,
		}
		services := make([]catalog.Service, 0, len(n.Instances))
		checks := make([]catalog.Check, 0, len(n.Instances))
		for _, in := range n.Instances {
			services = append(services, catalog.Service{
				ID: in.ID, Name: in.Name, Tags: slices.Clone(in.Tags), Address: in.Address, Port: in.Port,
				Meta: in.Meta, Weights: in.Weights,
			})
			c := catalog.Check{
				CheckID: remoteCheckID + ":" + in.ID, Name: "Health in datacenter " + s.Datacenter,
				Status: in.Health, ServiceID: in.ID, ServiceName: in.Name, Type: "remote",
			}
			if in.Health == catalog.HealthMaintenance {
				c.CheckID = catalog.ServiceMaintCheckPrefix + in.ID
				c.Status = catalog.HealthCritical
			}
			checks = append(checks, c)
		}
		rec.Services, rec.Checks = catalog.ListOf(services), catalog.ListOf(checks)
		out = append(out, rec)
	}
	return out
}

// snapshot builds the catalog of the summarised datacenter: every node
// alive (the summary's health already accounts for failed nodes).
func (s *Summary) snapshot() *catalog.Snapshot {
	st := catalog.NewStore()
	st.Update(func(tx *catalog.Tx) {
		for _, rec := range s.records() {
			tx.ApplyRecord(rec)
			tx.SetMember(rec.Node.Name, rec.Node.Address, catalog.MemberAlive)
		}
	})
	return st.Snapshot()
}
