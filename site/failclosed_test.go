package site

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/claims/synth"
	"github.com/fedclaims/fedclaims/fedclaimspb"
)

// newTestAgent is an agent of site "a" over one synthetic hospital, not connected.
func newTestAgent(t *testing.T) *Agent {
	t.Helper()
	pki := consortium(t, "a")
	root := t.TempDir()
	g, err := synth.New(synth.Config{Hospitals: 1, Patients: 20, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.WriteHospital(context.Background(), root, 0); err != nil {
		t.Fatal(err)
	}
	c := Config{SiteID: "a", Federation: "fed", Aggregator: AggregatorConfig{Address: "127.0.0.1:1"}, CertsDir: pki,
		Data: []string{filepath.Join(root, g.Hospitals()[0].ID)}, StateDir: filepath.Join(root, "state"),
		AuditLog: filepath.Join(root, "state", "audit.jsonl"), Train: TrainConfig{MaxLen: 32}, Backoff: BackoffConfig{Min: time.Millisecond, Max: time.Millisecond}}
	a, err := New(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// TestFailClosed: with its audit log unwritable the agent takes no action; it stops
// with an error that reconnecting does not retry. The agent has no connection here,
// so an action that went ahead would panic on the nil client.
func TestFailClosed(t *testing.T) {
	a := newTestAgent(t)
	a.fed = &fedclaimspb.FederationConfig{FederationId: "fed", Sites: []string{"a", "b"}, Threshold: 1, MinSites: 2}
	if err := a.audit.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	asg := &fedclaimspb.Assignment{Envelope: &fedclaimspb.Envelope{FederationId: "fed", SiteId: "a"}, Seq: 1,
		Task: &fedclaimspb.Assignment_Vocabulary{Vocabulary: &fedclaimspb.VocabularyTask{KFloor: 3}}}
	for name, do := range map[string]func() error{
		"enrol":      func() error { return a.enrol(ctx) },
		"vocabulary": func() error { return a.handle(ctx, asg) },
		"key share": func() error {
			return a.handle(ctx, &fedclaimspb.Assignment{Envelope: asg.Envelope, Seq: 2,
				Task: &fedclaimspb.Assignment_KeySetup{KeySetup: &fedclaimspb.KeySetupTask{Step: fedclaimspb.KeySetupTask_STEP_PUBLIC_KEY_SHARE}}})
		},
	} {
		err := do()
		var ae *auditError
		if !errors.As(err, &ae) || !fatal(err) {
			t.Errorf("%s with the audit log closed: %v", name, err)
		}
	}
}

// TestNewRefuses: a certificate of another site, or unreadable data, stops the agent
// at start with the key at fault.
func TestNewRefuses(t *testing.T) {
	a := newTestAgent(t)
	c := a.cfg
	c.StateDir = t.TempDir()
	c.AuditLog = filepath.Join(c.StateDir, "audit.jsonl")
	other := c
	other.SiteID = "b"
	if _, err := New(other, nil); err == nil {
		t.Fatal("started without a certificate for site b")
	}
	noData := c
	noData.Data = []string{filepath.Join(t.TempDir(), "missing")}
	if _, err := New(noData, nil); !errors.Is(err, ErrConfig) {
		t.Fatalf("missing dataset: %v", err)
	}
	// The transport key, kept across restarts, is secret.
	fi, err := os.Stat(filepath.Join(a.cfg.StateDir, transportFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("transport key: %v, %v", fi.Mode(), err)
	}
}

// TestLateRoundTask: a round task past its deadline is reported, not worked on.
func TestLateRoundTask(t *testing.T) {
	a := newTestAgent(t)
	a.fed = &fedclaimspb.FederationConfig{FederationId: "fed", Sites: []string{"a", "b"}, Threshold: 1, MinSites: 2}
	a.now = func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }
	asg := &fedclaimspb.Assignment{Envelope: &fedclaimspb.Envelope{FederationId: "fed", RoundId: 4, SiteId: "a"}, Seq: 9,
		Deadline: timestamppb.New(time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC)),
		Task:     &fedclaimspb.Assignment_Train{Train: &fedclaimspb.TrainTask{LocalSteps: 1}}}
	before, _ := a.audit.Head()
	err := a.handle(context.Background(), asg)
	if err == nil || fatal(err) || transient(err) {
		t.Fatalf("late task: %v", err)
	}
	if after, _ := a.audit.Head(); after != before {
		t.Fatal("a late task was acted on")
	}
}

// TestErrorClasses: which errors end Run, which leave the assignment for after a
// reconnect, and which are reported and passed.
func TestErrorClasses(t *testing.T) {
	denied := status.Error(codes.PermissionDenied, "no")
	tests := []struct {
		name             string
		err              error
		fatal, transient bool
	}{
		{"audit write failed", &auditError{errors.New("disk full")}, true, false},
		{"site refused at enrolment", refusedSite("enrol", denied), true, false},
		{"site not authenticated", refusedSite("work stream", status.Error(codes.Unauthenticated, "no")), true, false},
		{"enrolment unreachable", refusedSite("enrol", status.Error(codes.Unavailable, "down")), false, true},
		{"one upload refused", fmt.Errorf("upload: %w", denied), false, false},
		{"connection lost mid-work", fmt.Errorf("download: %w", status.Error(codes.Unavailable, "eof")), false, true},
		{"deadline passed", fmt.Errorf("round 3: %w", errLate), false, false},
		{"another federation's state", fmt.Errorf("enrol: %w", errForeignState), true, false},
		{"federation config refused", fmt.Errorf("enrol: %w: min sites 2 below threshold+1", errUnsafeConfig), true, false},
		{"local failure", errors.New("no sequences"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if fatal(tt.err) != tt.fatal || transient(tt.err) != tt.transient {
				t.Fatalf("fatal %v transient %v, want %v %v", fatal(tt.err), transient(tt.err), tt.fatal, tt.transient)
			}
		})
	}
}

// TestCutAuditLogRefused: entries cut off the end of the site's audit log after its
// state recorded them are found at the next start. Before the state kept the audit
// head, the log reopened and its chain went on from the earlier entry.
func TestCutAuditLogRefused(t *testing.T) {
	a := newTestAgent(t)
	ctx := context.Background()
	for i := range 3 {
		if err := a.record(ctx, audit.KeySetup, 0, map[string]string{"step": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.st.setLastSeq("fed", 9, a.audit.Anchor()); err != nil {
		t.Fatal(err)
	}
	a.Close()
	path := a.cfg.AuditLog
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	if err := os.WriteFile(path, []byte(strings.Join(lines[:len(lines)-2], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(a.cfg, slog.New(slog.DiscardHandler)); !errors.Is(err, audit.ErrCut) {
		t.Fatalf("restart with entries cut off the log: err = %v, want %v", err, audit.ErrCut)
	}
}
