package aggregator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/internal/atomicfile"
	"github.com/fedclaims/fedclaims/model"
)

// The state directory:
//
//	CURRENT             names the latest complete checkpoint directory
//	ckpt-<version>/     model.safetensors, config.json, vocab.json (model.Save),
//	                    optimizer.bin, checkpoint.json
//	round.json          the round machine's State, rewritten when a round opens
//	seqs.json           the last assignment seq given to each site
//	setup.json          the setup machine's SetupState
//	setup/              blobs received during setup: enrolment share keys, public-key
//	                    shares, sealed Shamir shares, count tables, the collective key
//
// Every file is written to a temporary name in its directory, synced and renamed,
// and the directory synced; a checkpoint directory is complete before CURRENT names
// it. A crash therefore leaves the previous checkpoint or the new one, never a mix.
type store struct{ dir string }

const (
	currentFile   = "CURRENT"
	roundFile     = "round.json"
	seqsFile      = "seqs.json"
	setupFile     = "setup.json"
	setupDir      = "setup"
	optimizerFile = "optimizer.bin"
	ckptMetaFile  = "checkpoint.json"
)

func openStore(dir string) (store, error) {
	if err := os.MkdirAll(filepath.Join(dir, setupDir), 0o700); err != nil {
		return store{}, fmt.Errorf("state dir: %w", err)
	}
	return store{dir: dir}, nil
}

func (s store) path(name string) string { return filepath.Join(s.dir, name) }

func (s store) writeJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return atomicfile.WriteFile(s.path(name), append(b, '\n'), 0o600)
}

// readJSON decodes name into v, reporting false when the file does not exist.
func (s store) readJSON(name string, v any) (bool, error) {
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return false, fmt.Errorf("state %s: %w", s.path(name), err)
	}
	return true, nil
}

// putBlob and getBlob keep setup blobs under setup/.
func (s store) putBlob(name string, data []byte) error {
	return atomicfile.WriteFile(filepath.Join(s.dir, setupDir, name), data, 0o600)
}

func (s store) getBlob(name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, setupDir, name))
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return b, nil
}

func (s store) hasBlob(name string) bool {
	_, err := os.Stat(filepath.Join(s.dir, setupDir, name))
	return err == nil
}

// checkpoint is the federation after an applied round (or after setup, at version 0).
type checkpoint struct {
	// AuditHead is the audit log's head when the checkpoint was written: a log
	// that no longer reaches it lost entries (audit.Options.Expect).
	AuditHead audit.Head
	State     State
	Model     *model.Model
	Vocab     []byte
	Optimizer []byte
	History   []RoundRecord
}

// ckptMeta is checkpoint.json.
type ckptMeta struct {
	AuditHead audit.Head    `json:"audit_head"`
	State     State         `json:"state"`
	History   []RoundRecord `json:"history"`
}

// staged is a checkpoint written to its directory but not yet current.
type staged struct {
	name string
	// model is the checkpoint's model.safetensors bytes, the global model blob once
	// committed; read back once here, so the commit need not read it again.
	model       []byte
	modelSHA256 string
}

// saveCheckpoint writes ck to a new directory and then points CURRENT at it, removing
// older checkpoint directories only after that.
func (s store) saveCheckpoint(ck *checkpoint) error {
	st, err := s.stageCheckpoint(ck)
	if err != nil {
		return err
	}
	return s.commitCheckpoint(st)
}

// stageCheckpoint writes ck to its own directory, synced, without touching CURRENT:
// a restart still loads the previous checkpoint until commitCheckpoint.
func (s store) stageCheckpoint(ck *checkpoint) (staged, error) {
	tmp, err := os.MkdirTemp(s.dir, ".ckpt-tmp-")
	if err != nil {
		return staged{}, fmt.Errorf("checkpoint: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := ck.Model.Save(tmp, ck.Vocab); err != nil {
		return staged{}, fmt.Errorf("checkpoint: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, optimizerFile), ck.Optimizer, 0o600); err != nil {
		return staged{}, fmt.Errorf("checkpoint: %w", err)
	}
	meta, err := json.MarshalIndent(ckptMeta{AuditHead: ck.AuditHead, State: ck.State, History: ck.History}, "", " ")
	if err != nil {
		return staged{}, fmt.Errorf("checkpoint: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, ckptMetaFile), meta, 0o600); err != nil {
		return staged{}, fmt.Errorf("checkpoint: %w", err)
	}
	// model.Save renames its files into place but leaves syncing to us.
	for _, f := range []string{model.ModelFile, model.ConfigFile, model.VocabFile} {
		if err := syncFile(filepath.Join(tmp, f)); err != nil {
			return staged{}, fmt.Errorf("checkpoint: %w", err)
		}
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return staged{}, fmt.Errorf("checkpoint: %w", err)
	}
	mb, err := os.ReadFile(filepath.Join(tmp, model.ModelFile))
	if err != nil {
		return staged{}, fmt.Errorf("checkpoint: %w", err)
	}
	sum := sha256.Sum256(mb)
	// The staged name differs from CURRENT's even at the same version (a retried
	// stage after a failed audit), so staging never overwrites the live checkpoint.
	name := fmt.Sprintf("ckpt-%06d-%x", ck.State.Version, sum[:4])
	final := s.path(name)
	if err := os.RemoveAll(final); err != nil {
		return staged{}, fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return staged{}, fmt.Errorf("checkpoint: %w", err)
	}
	if err := atomicfile.SyncDir(s.dir); err != nil {
		return staged{}, fmt.Errorf("checkpoint: %w", err)
	}
	return staged{name: name, model: mb, modelSHA256: hex.EncodeToString(sum[:])}, nil
}

// commitCheckpoint points CURRENT at a staged checkpoint and removes the others.
func (s store) commitCheckpoint(st staged) error {
	name := st.name
	if err := atomicfile.WriteFile(s.path(currentFile), []byte(name+"\n"), 0o600); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	for _, e := range entries {
		stale := strings.HasPrefix(e.Name(), "ckpt-") && e.Name() != name || strings.HasPrefix(e.Name(), ".ckpt-tmp-")
		if e.IsDir() && stale {
			os.RemoveAll(s.path(e.Name()))
		}
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer f.Close()
	return f.Sync()
}

// loadCheckpoint reads the checkpoint CURRENT names, or returns nil when there is none.
func (s store) loadCheckpoint() (*checkpoint, error) {
	b, err := os.ReadFile(s.path(currentFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	name := strings.TrimSpace(string(b))
	if !strings.HasPrefix(name, "ckpt-") || strings.ContainsAny(name, `/\`) {
		return nil, fmt.Errorf("checkpoint: %s names %q, not a checkpoint directory", s.path(currentFile), name)
	}
	dir := s.path(name)
	m, err := model.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	vocab, err := os.ReadFile(filepath.Join(dir, model.VocabFile))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	opt, err := os.ReadFile(filepath.Join(dir, optimizerFile))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var meta ckptMeta
	if _, err := (store{dir: dir}).readJSON(ckptMetaFile, &meta); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return &checkpoint{AuditHead: meta.AuditHead, State: meta.State, Model: m, Vocab: vocab, Optimizer: opt, History: meta.History}, nil
}

// setupJSON and roundJSON are setup.json and round.json: the machine's state and
// the audit log's head when it was written, which a restart checks the log against.
type setupJSON struct {
	SetupState
	AuditHead audit.Head `json:"audit_head"`
}

type roundJSON struct {
	State
	AuditHead audit.Head `json:"audit_head"`
}
