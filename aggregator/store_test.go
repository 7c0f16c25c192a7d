package aggregator

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/model"
)

func tinyModel(t *testing.T, seed uint64) *model.Model {
	t.Helper()
	m, err := model.New(model.Config{Vocab: 12, Hidden: 8, Layers: 1, Heads: 2, MaxLen: 16, Segments: 3, Dropout: 0.1, LNEps: 1e-5}, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCheckpointRoundTrip(t *testing.T) {
	st, err := openStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if ck, err := st.loadCheckpoint(); err != nil || ck != nil {
		t.Fatalf("empty state dir: %v, %v", ck, err)
	}
	opt := &FedAdam{LR: 0.1, Beta1: 0.9, Beta2: 0.99, Eps: 1e-3}
	m := tinyModel(t, 1)
	if err := opt.Apply(m.Params(), make([]float32, len(m.Params()))); err != nil {
		t.Fatal(err)
	}
	ob, _ := opt.MarshalBinary()
	want := &checkpoint{State: State{Round: 4, Version: 3, Paused: true}, Model: m, Vocab: []byte(`{"tokens":[]}`), Optimizer: ob,
		History: []RoundRecord{{Round: 4, Version: 3, Contributors: []string{"a", "b"}, TrainLoss: 1.5, Duration: time.Second, UploadBytes: 99, Finished: time.Unix(5, 0).UTC()}}}
	if err := st.saveCheckpoint(want); err != nil {
		t.Fatal(err)
	}
	got, err := st.loadCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.State, want.State) || string(got.Vocab) != string(want.Vocab) || string(got.Optimizer) != string(ob) ||
		!slices.Equal(got.Model.Params(), m.Params()) || len(got.History) != 1 || !slices.Equal(got.History[0].Contributors, []string{"a", "b"}) ||
		!got.History[0].Finished.Equal(want.History[0].Finished) {
		t.Fatalf("checkpoint changed in the round trip: %+v", got)
	}
}

// TestCheckpointAtomic leaves what a crash in the middle of a checkpoint leaves — a
// temporary directory, and a complete new directory that CURRENT does not name yet —
// and checks that the previous checkpoint is what loads, and that the next save
// clears the debris.
func TestCheckpointAtomic(t *testing.T) {
	dir := t.TempDir()
	st, _ := openStore(dir)
	old := tinyModel(t, 1)
	if err := st.saveCheckpoint(&checkpoint{State: State{Round: 1, Version: 1}, Model: old, Vocab: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, ".ckpt-tmp-123"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".ckpt-tmp-123", model.ModelFile), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tinyModel(t, 2).Save(filepath.Join(dir, "ckpt-000002"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	got, err := st.loadCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	if got.State.Version != 1 || !slices.Equal(got.Model.Params(), old.Params()) {
		t.Fatalf("loaded version %d after an interrupted checkpoint, want the previous one", got.State.Version)
	}
	if err := st.saveCheckpoint(&checkpoint{State: State{Round: 3, Version: 2}, Model: tinyModel(t, 3), Vocab: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != setupDir {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) != 1 || !strings.HasPrefix(dirs[0], "ckpt-000002-") {
		t.Fatalf("directories after the next checkpoint: %v", dirs)
	}
	// CURRENT naming something that is not a checkpoint is an error, not a fresh start.
	if err := os.WriteFile(filepath.Join(dir, currentFile), []byte("../etc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.loadCheckpoint(); err == nil {
		t.Fatal("CURRENT naming ../etc accepted")
	}
}

// TestAuditFailsClosed closes the audit log under a running aggregator: an admin
// action that cannot be audited is refused and not performed.
func TestAuditFailsClosed(t *testing.T) {
	f := newTestFed(t, func(c *Config) { c.AutoStart = false })
	f.start()
	ctx := t.Context()
	env := &fedclaimspb.Envelope{FederationId: f.cfg.Federation}
	if err := f.srv.audit.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin().Pause(ctx, &fedclaimspb.ControlRequest{Envelope: env}); status.Code(err) != codes.Unavailable {
		t.Fatalf("pause with the audit log closed: err = %v", err)
	}
	st, err := f.admin().Status(ctx, &fedclaimspb.StatusRequest{Envelope: env})
	if err != nil {
		t.Fatal(err)
	}
	if st.State == fedclaimspb.StatusResponse_STATE_PAUSED {
		t.Fatal("the pause went ahead without its audit entry")
	}
	var saved State
	if ok, err := f.srv.store.readJSON(roundFile, &saved); err != nil || (ok && saved.Paused) {
		t.Fatalf("round state: %+v, %v", saved, err)
	}
}

// TestCutAuditLogRefused cuts entries off the end of the aggregator's audit log
// after round.json recorded them: the restart refuses the log. Before the state
// files kept the audit head, the chain simply continued from the earlier entry.
func TestCutAuditLogRefused(t *testing.T) {
	f := newTestFed(t, func(c *Config) { c.AutoStart = false })
	f.start()
	ctx := t.Context()
	env := &fedclaimspb.Envelope{FederationId: f.cfg.Federation}
	if _, err := f.admin().Pause(ctx, &fedclaimspb.ControlRequest{Envelope: env}); err != nil {
		t.Fatal(err)
	}
	f.stop()
	var rj roundJSON
	if ok, err := f.srv.store.readJSON(roundFile, &rj); err != nil || !ok || rj.AuditHead.Seq == 0 {
		t.Fatalf("round.json: %+v, %v, %v", rj, ok, err)
	}
	path := filepath.Join(f.cfg.StateDir, "audit.jsonl")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	// Keep the entries before the one round.json names.
	if err := os.WriteFile(path, []byte(strings.Join(lines[:rj.AuditHead.Seq-1], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = NewServer(f.cfg, Options{Log: slog.New(slog.NewJSONHandler(io.Discard, nil)), Clock: f.clock})
	if !errors.Is(err, audit.ErrCut) {
		t.Fatalf("restart with entries cut off the log: err = %v, want %v", err, audit.ErrCut)
	}
}

// TestStagedCheckpointNotCurrent: a round's checkpoint is staged, its round_end
// entry written, and only then committed; a restart between the two (the audit
// write failed) loads the previous checkpoint, so no model is published without
// its entry. Before, saving the checkpoint made it current at once.
func TestStagedCheckpointNotCurrent(t *testing.T) {
	st, _ := openStore(t.TempDir())
	old := tinyModel(t, 1)
	if err := st.saveCheckpoint(&checkpoint{State: State{Round: 1, Version: 1}, Model: old, Vocab: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	staged, err := st.stageCheckpoint(&checkpoint{State: State{Round: 2, Version: 2}, Model: tinyModel(t, 2), Vocab: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.loadCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	if got.State.Version != 1 || !slices.Equal(got.Model.Params(), old.Params()) {
		t.Fatalf("a staged checkpoint is current (version %d)", got.State.Version)
	}
	if err := st.commitCheckpoint(staged); err != nil {
		t.Fatal(err)
	}
	if got, err = st.loadCheckpoint(); err != nil || got.State.Version != 2 {
		t.Fatalf("after commit: version %v, %v", got.State.Version, err)
	}
}
