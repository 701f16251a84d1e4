package local

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/chorusdns/chorus/agent/local/journal"
)

// Files of the local state in the data dir.
const (
	// journalDir holds the journal (snapshot, log, lock) of the local
	// state.
	journalDir = "local"
	// legacyFile is the whole-file store of older agents, read once into
	// the journal's first snapshot and then renamed with migratedSuffix.
	legacyFile     = "local.json"
	migratedSuffix = ".migrated"
)

// persistedState is the persisted form of the local state: the journal's
// snapshot payload (JSON), and the whole local.json of older agents.
// Config-file services and their checks are not in it: the files are their
// source of truth. CheckStates holds the status of every TTL check.
type persistedState struct {
	Version     uint64
	Services    []persistedService         `json:",omitempty"`
	Checks      []persistedCheck           `json:",omitempty"`
	NodeMaint   *string                    `json:",omitempty"`
	CheckStates map[string]persistedStatus `json:",omitempty"`
	// Migrated is the SHA-256 (hex) of the local.json this state was
	// migrated from, so that a migration cut short by a crash is finished,
	// not refused, at the next start.
	Migrated string `json:",omitempty"`
}

type persistedService struct {
	Source     string
	Definition ServiceDefinition
	Maint      *string `json:",omitempty"`
}

type persistedCheck struct {
	Source     string
	Definition CheckDefinition
}

type persistedStatus struct {
	Status string
	Output string `json:",omitempty"`
}

// entry is one journal entry: the persisted form, after one change, of
// everything that change touched. A nil value in a map means "absent"
// (removed, or not persisted, like a config-file service). Because an entry
// carries values and not operations, replaying it needs nothing but the
// entry, and changes of disjoint keys commute.
type entry struct {
	// Version is the record version when the entry was made; replay keeps
	// the highest.
	Version   uint64
	Services  map[string]*persistedService `json:",omitempty"`
	Checks    map[string]*persistedCheck   `json:",omitempty"`
	States    map[string]*persistedStatus  `json:",omitempty"`
	NodeMaint *nodeMaint                   `json:",omitempty"`
}

// nodeMaint is a change of the node's maintenance mode; a nil Reason turns
// it off.
type nodeMaint struct {
	Reason *string
}

// image is persistedState keyed by ID, the form entries are folded into.
type image struct {
	version   uint64
	services  map[string]persistedService
	checks    map[string]persistedCheck
	states    map[string]persistedStatus
	nodeMaint *string
	migrated  string
}

func newImage() *image {
	return &image{services: map[string]persistedService{}, checks: map[string]persistedCheck{}, states: map[string]persistedStatus{}}
}

// serviceKey is the ID a persisted service is registered under (Build's
// default: the name).
func serviceKey(d ServiceDefinition) string {
	if d.ID != "" {
		return d.ID
	}
	return d.Name
}

// checkKey is the ID a persisted standalone check is registered under.
func checkKey(d CheckDefinition) string {
	if id := d.checkID(); id != "" {
		return id
	}
	return d.Name
}

// load replaces the image with p.
func (im *image) load(p persistedState) {
	*im = *newImage()
	im.version, im.nodeMaint, im.migrated = p.Version, p.NodeMaint, p.Migrated
	for _, s := range p.Services {
		im.services[serviceKey(s.Definition)] = s
	}
	for _, c := range p.Checks {
		im.checks[checkKey(c.Definition)] = c
	}
	for id, st := range p.CheckStates {
		im.states[id] = st
	}
}

// apply folds one entry into the image.
func (im *image) apply(e *entry) {
	im.version = max(im.version, e.Version)
	for id, s := range e.Services {
		if s == nil {
			delete(im.services, id)
		} else {
			im.services[id] = *s
		}
	}
	for id, c := range e.Checks {
		if c == nil {
			delete(im.checks, id)
		} else {
			im.checks[id] = *c
		}
	}
	for id, st := range e.States {
		if st == nil {
			delete(im.states, id)
		} else {
			im.states[id] = *st
		}
	}
	if e.NodeMaint != nil {
		im.nodeMaint = e.NodeMaint.Reason
	}
}

// state returns the image as a persistedState, sorted by ID.
func (im *image) state() persistedState {
	p := persistedState{Version: im.version, NodeMaint: im.nodeMaint, Migrated: im.migrated}
	for _, id := range slices.Sorted(maps.Keys(im.services)) {
		p.Services = append(p.Services, im.services[id])
	}
	for _, id := range slices.Sorted(maps.Keys(im.checks)) {
		p.Checks = append(p.Checks, im.checks[id])
	}
	if len(im.states) > 0 {
		p.CheckStates = make(map[string]persistedStatus, len(im.states))
		for id, st := range im.states {
			p.CheckStates[id] = st
		}
	}
	return p
}

// decodeState decodes a persisted state and rejects one that no agent can
// have written: every state an agent writes carries a version (a wall
// clock in milliseconds), so "{}" is damage, not an empty state.
func decodeState(b []byte) (persistedState, error) {
	var p persistedState
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode: %v", err)
	}
	if p.Version == 0 {
		return p, errors.New("it holds no record version, so no agent wrote it")
	}
	return p, nil
}

// fold is the journal's Options.Fold: the snapshot with entries applied.
func fold(snapshot []byte, entries [][]byte) ([]byte, error) {
	im := newImage()
	if snapshot != nil {
		p, err := decodeState(snapshot)
		if err != nil {
			return nil, fmt.Errorf("snapshot: %v", err)
		}
		im.load(p)
	}
	for i, b := range entries {
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("entry %d after the snapshot: %v", i+1, err)
		}
		im.apply(&e)
	}
	return json.Marshal(im.state())
}

// tornEndCause is what a journal's torn end may be. A crash during a
// write leaves one (that write was never acknowledged); damage confined to
// the last write that was acknowledged looks the same, and nothing in the
// file tells them apart. Refusing to start after every crash during a
// write would make a routine crash need an operator, so the agent starts
// without it, logs at ERROR naming the file and reports the bytes dropped
// in chorus_state_dropped_bytes.
const tornEndCause = "a write cut short by a crash (never acknowledged), or damage to the last acknowledged write, whose changes are then lost"

// DroppedAtStart returns how many bytes of a torn end Restore cut off the
// local state journal (0 if none; see tornEndCause). It is safe for
// concurrent use.
func (l *State) DroppedAtStart() int64 { return l.dropped.Load() }

// Recovery advice for damage the journal's own checks cannot see (its
// checksums hold, but the content does not decode).
const adviceUndecodable = "restore the data dir from a backup, or move the directory away to start with an empty local state (services registered over the API must then be registered again)"

// openJournal opens the journal in the data dir, migrates an older agent's
// local.json into it, and returns the persisted state. Damage is an error
// naming the file and how to recover; a torn final write (never
// acknowledged) is cut off and logged.
func (l *State) openJournal() (persistedState, error) {
	dir := filepath.Join(l.dataDir, journalDir)
	j, err := journal.Open(dir, journal.Options{Fold: fold, Logger: l.logger})
	if err != nil {
		return persistedState{}, err
	}
	if tt := j.TornTail(); tt != nil {
		l.dropped.Store(tt.Bytes)
		l.logger.Error("dropped the torn end of the local state journal: "+tornEndCause+"; check what this agent serves",
			"file", tt.File, "offset", tt.Offset, "bytes", tt.Bytes, "reason", tt.Reason)
	}
	im := newImage()
	empty := true
	err = j.Replay(func(r journal.Record) error {
		empty = false
		if r.Snapshot {
			p, err := decodeState(r.Data)
			if err != nil {
				return &journal.CorruptError{File: filepath.Join(dir, "snapshot"), Reason: err.Error(), Recovery: adviceUndecodable}
			}
			im.load(p)
			return nil
		}
		var e entry
		if err := json.Unmarshal(r.Data, &e); err != nil {
			return &journal.CorruptError{File: filepath.Join(dir, "log"),
				Reason: fmt.Sprintf("entry %d does not decode: %v", r.Seq, err), Recovery: adviceUndecodable}
		}
		im.apply(&e)
		return nil
	})
	if err == nil {
		err = l.migrate(j, im, empty)
	}
	if err != nil {
		j.Close()
		return persistedState{}, err
	}
	l.jnl = j
	return im.state(), nil
}

// migrate reads the local.json of an older agent into the journal's first
// snapshot and renames it (and its .prev) with the suffix ".migrated". A
// migration cut short by a crash after the snapshot is finished. A
// local.json beside a journal that did not come from it is refused: one of
// the two would be lost.
func (l *State) migrate(j *journal.Journal, im *image, empty bool) error {
	path := filepath.Join(l.dataDir, legacyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	sum := sha256.Sum256(b)
	hash := hex.EncodeToString(sum[:])
	switch {
	case !empty && im.migrated == hash:
		// Migrated before a crash cut the renames short.
	case !empty:
		return fmt.Errorf("%s (from an older Chorus) and the journal %s both hold local state and the journal did not come from it: "+
			"remove %s to keep the journal's state, or move %s away to migrate %s again",
			path, filepath.Join(l.dataDir, journalDir), path, filepath.Join(l.dataDir, journalDir), path)
	default:
		p, err := decodeState(b)
		if err != nil {
			return fmt.Errorf("%s is damaged (%v), so it cannot be migrated: %s.prev holds the state before its last change; "+
				"rename %s.prev to %s to start from it (that last change is lost), or move both away to start with an empty local state",
				path, err, path, path, path)
		}
		p.Migrated = hash
		data, err := json.Marshal(p)
		if err != nil {
			return err
		}
		if err := j.Compact(0, data); err != nil {
			return fmt.Errorf("migrate %s into the journal: %w", path, err)
		}
		im.load(p)
		l.logger.Info("migrated the local state into the journal", "from", path, "services", len(p.Services), "checks", len(p.Checks))
	}
	for _, name := range []string{path, path + ".prev"} {
		if err := os.Rename(name, name+migratedSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("migrate %s: %w", path, err)
		}
	}
	if err := syncDir(l.dataDir); err != nil {
		return fmt.Errorf("migrate %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteFileAtomic replaces path with data durably: the data goes to a
// temporary file that is fsynced and renamed over path, the old file is
// kept as path.prev, and the directory is fsynced.
func WriteFileAtomic(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if _, err := os.Stat(path); err == nil {
		os.Remove(path + ".prev")
		if err := os.Link(path, path+".prev"); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// WriteFileOnce creates path with data durably unless path exists: the
// data goes to a temporary file (mode 0600) that is fsynced and linked to
// path, and the directory is fsynced. An existing path is left as it is
// and is no error, so of writers racing to create one file the first
// one's stays whole and every one of them reads it back.
func WriteFileOnce(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// writeTemp writes data to a new temporary file (mode 0600) beside path,
// fsyncs and closes it, and returns its name; the caller removes it.
func writeTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}
