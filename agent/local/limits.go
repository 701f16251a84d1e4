package local

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/chorusdns/chorus/catalog"
)

// Limits on one service's registration, Consul's. They keep a record sane
// and apply to every new registration (agent API, catalog API, config
// files); services persisted before the limits existed are kept. Tags are
// further bounded by catalog.Service.Validate: each is a DNS label, at most
// 63 bytes (Consul allows 255).
const (
	MaxServiceMetaKeys       = 64
	MaxServiceMetaKeyBytes   = 128
	MaxServiceMetaValueBytes = 512
	MaxServiceTagBytes       = 255
)

// checkServiceLimits refuses a registration over the per-service limits
// with an error wrapping ErrInvalid.
func checkServiceLimits(meta map[string]string, tags []string) error {
	if len(meta) > MaxServiceMetaKeys {
		return fmt.Errorf("Meta has %d keys, over the limit of %d: %w", len(meta), MaxServiceMetaKeys, ErrInvalid)
	}
	for k, v := range meta {
		if len(k) > MaxServiceMetaKeyBytes {
			return fmt.Errorf("Meta key %.40q… is %d bytes, over the limit of %d: %w", k, len(k), MaxServiceMetaKeyBytes, ErrInvalid)
		}
		if len(v) > MaxServiceMetaValueBytes {
			return fmt.Errorf("Meta value of key %q is %d bytes, over the limit of %d: %w", k, len(v), MaxServiceMetaValueBytes, ErrInvalid)
		}
	}
	for _, t := range tags {
		if len(t) > MaxServiceTagBytes {
			return fmt.Errorf("tag %.40q… is %d bytes, over the limit of %d: %w", t, len(t), MaxServiceTagBytes, ErrInvalid)
		}
	}
	return nil
}

// checkRecordSizeLocked refuses a state whose record peers would not
// accept: catalog.DecodeRecord refuses a record over catalog.MaxRecordSize
// decompressed (its JSON) and catalog.EncodeRecord one over it compressed.
// The JSON size is summed from per-service and per-check sizes cached
// until they change, so a change costs O(services) additions, not an
// encoding of the record; the record is compressed only when its JSON is
// within a hair of the limit.
func (l *State) checkRecordSizeLocked() error {
	size := l.recordJSONSizeLocked()
	if size > catalog.MaxRecordSize {
		return fmt.Errorf("this node's record would be %d bytes, over the limit of %d bytes (catalog.MaxRecordSize) that peers accept: %w",
			size, catalog.MaxRecordSize, ErrTooLarge)
	}
	// DEFLATE expands incompressible data by 5 bytes per 64 KiB block at
	// most, plus the format byte.
	if size+size/4096+64 <= catalog.MaxRecordSize {
		return nil
	}
	b, err := catalog.EncodeRecord(l.recordLocked())
	if errors.Is(err, catalog.ErrRecordTooLarge) {
		return fmt.Errorf("this node's record would be over the limit of %d bytes (catalog.MaxRecordSize) compressed: %w", catalog.MaxRecordSize, ErrTooLarge)
	}
	if err != nil {
		return err
	}
	if len(b) > catalog.MaxRecordSize {
		return fmt.Errorf("this node's record would be %d bytes compressed, over the limit of %d bytes (catalog.MaxRecordSize): %w", len(b), catalog.MaxRecordSize, ErrTooLarge)
	}
	return nil
}

// sizeMargin is how far below catalog.MaxRecordSize the running estimate
// of the record's size must stay for a change to pass without an exact
// count (checkGrowthLocked). Changes that bypass the estimate (a check's
// output, a load figure) cannot add this much between two records.
const sizeMargin = 1 << 20

// checkGrowthLocked refuses a change that would make the record larger
// than peers accept. It keeps a running upper bound of the record's JSON
// size: the exact size at the last record built (sizeBase, from the same
// cached piece sizes) plus what the changes committed since added
// (sizeDrift). A change adds the size of the pieces it touched now minus
// their size before, an O(change) sum; only when the bound comes within
// sizeMargin of the limit is the record counted exactly
// (checkRecordSizeLocked, O(services)).
func (l *State) checkGrowthLocked(t *txn) error {
	growth := 0
	for id, old := range t.svcs {
		if s := l.services[id]; s != nil {
			growth += l.serviceSizeLocked(s)
		}
		if old != nil {
			growth -= l.serviceSizeLocked(old)
		}
	}
	for id, old := range t.chks {
		if c := l.checks[id]; c != nil {
			_, n := l.checkRecordLocked(c)
			growth += n + 1
		}
		if old != nil {
			_, n := l.checkRecordLocked(old)
			growth -= n + 1
		}
	}
	if t.maint && l.nodeMaint != nil {
		growth += jsonLen(l.nodeMaintCheck()) + 1
	}
	if l.sizeKnown && l.sizeBase+l.sizeDrift+growth+sizeMargin <= catalog.MaxRecordSize {
		l.sizeDrift += max(growth, 0)
		return nil
	}
	if err := l.checkRecordSizeLocked(); err != nil {
		return err
	}
	l.sizeBase, l.sizeDrift, l.sizeKnown = l.recordJSONSizeLocked(), 0, true
	return nil
}

// serviceSizeLocked is what service s adds to the record's JSON: the
// service and its maintenance check, if any.
func (l *State) serviceSizeLocked(s *localService) int {
	_, n := l.serviceLeafLocked(s)
	n++
	if s.Maint != nil {
		n += jsonLen(l.serviceMaintCheck(s)) + 1
	}
	return n
}

// recordJSONSizeLocked returns an upper bound of the length of the JSON of
// this node's signed record, exact but for the version's digits.
func (l *State) recordJSONSizeLocked() int {
	size, nsvc, nchk := 0, 0, 0
	for _, s := range l.services {
		_, n := l.serviceLeafLocked(s)
		size += n + 1
		nsvc++
		if s.Maint != nil {
			size += jsonLen(l.serviceMaintCheck(s)) + 1
			nchk++
		}
	}
	for i := range l.builtin {
		if _, taken := l.services[l.builtin[i].svc.ID]; !taken {
			size += l.builtin[i].size + 1
			nsvc++
		}
	}
	if l.nodeMaint != nil {
		size += jsonLen(l.nodeMaintCheck()) + 1
		nchk++
	}
	for _, c := range l.checks {
		_, n := l.checkRecordLocked(c)
		size += n + 1
		nchk++
	}
	return size + l.recordOverheadLocked(nsvc, nchk)
}

// recordOverheadLocked is the size of the record's JSON without its
// pieces: the signed header and the lists' brackets.
func (l *State) recordOverheadLocked(nsvc, nchk int) int {
	// The agent signs each record: count an Ed25519 signature.
	head := catalog.NodeRecord{Node: l.node, Version: math.MaxUint64, Gossip: l.gossip, Signature: make([]byte, ed25519.SignatureSize)}
	size := jsonLen(head)
	if nsvc > 0 {
		size += len(`,"Services":[]`) - 1
	}
	if nchk > 0 {
		size += len(`,"Checks":[]`) - 1
	}
	return size
}

// checkSizeKey is what a check's cached JSON size depends on besides its
// definition, which never changes for one localCheck.
type checkSizeKey struct {
	status, output, serviceName string
}

func jsonLen(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	return len(b)
}
