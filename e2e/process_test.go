package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/localfed"
	"github.com/fedclaims/fedclaims/model"
)

// buildFedclaims builds the fedclaims binary with this test's build tags.
func buildFedclaims(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fedclaims")
	args := []string{"build", "-o", bin}
	if buildTags != "" {
		args = append(args, "-tags", buildTags)
	}
	cmd := exec.Command("go", append(args, "github.com/fedclaims/fedclaims/cmd/fedclaims")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// The federation as separate processes, as `fedclaims demo` and docker-compose run
// it: a site agent killed with SIGKILL mid-round leaves the round to the others; the
// aggregator killed with SIGKILL after a round resumes from its checkpoint on
// restart; the killed site, restarted, rejoins; every party's audit log passes
// `fedclaims audit verify`, and fails it, naming the entry, with one byte changed.
func TestProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the fedclaims binary")
	}
	bin := buildFedclaims(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f, err := localfed.Prepare(ctx, localfed.Options{
		Dir: filepath.Join(t.TempDir(), "fed"), Binary: bin, Hospitals: 3, Patients: 120, Seed: 1,
		Federation: "e2e", MinSites: 2, Threshold: 1, Rounds: 2, LocalSteps: 40, BatchSize: 4, MaxLen: 32,
		Aggregator: map[string]any{
			"model.hidden": 16, "model.layers": 1, "model.heads": 2, "model.max_len": 32,
			"vocabulary.k_floor": 5, "secureagg.weight_cap": 400, "round_deadline": "6s",
		},
		Log: testLog(t, "localfed"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defer func() {
		if t.Failed() {
			for _, p := range append([]*localfed.Process{f.Aggregator}, f.Site("h01").Process, f.Site("h02").Process, f.Site("h03").Process) {
				t.Logf("%s log:\n%s", p.Name, p.Tail(4096))
			}
		}
	}()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}

	h03 := f.Site("h03")
	waitFor(t, time.Minute, "h03 to begin round 1", func() bool { return hasEntry(h03.AuditLog, audit.RoundStart, 1) })
	h03.Process.Kill()
	if hasEntry(h03.AuditLog, audit.Upload, 1) {
		t.Fatal("h03 uploaded its round-1 update before it could be killed; the test needs longer local training")
	}
	var st *fedclaimspb.StatusResponse
	waitFor(t, time.Minute, "round 1 to be applied without h03", func() bool {
		st, err = f.Status(ctx)
		return err == nil && len(st.GetHistory()) >= 1
	})
	if got := slices.Sorted(slices.Values(st.GetHistory()[0].GetContributors())); !slices.Equal(got, []string{"h01", "h02"}) {
		t.Fatalf("round 1 contributors %v, want h01 and h02", got)
	}

	f.Aggregator.Kill()
	if err := f.RestartAggregator(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.RestartSite("h03"); err != nil {
		t.Fatal(err)
	}
	st, err = f.Wait(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.GetHistory()) != 2 {
		t.Fatalf("%d rounds applied, want 2", len(st.GetHistory()))
	}
	var final []byte
	for _, s := range f.Sites {
		b, err := os.ReadFile(filepath.Join(s.FinalModel(), model.ModelFile))
		if err != nil {
			t.Fatalf("site %s: %v", s.ID, err)
		}
		if final != nil && !bytes.Equal(b, final) {
			t.Errorf("site %s installed a different final model", s.ID)
		}
		final = b
	}
	ups, err := f.Uploads()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("uploads: %+v", ups)
	for _, h := range st.GetHistory() {
		for _, c := range h.GetContributors() {
			if !slices.ContainsFunc(ups, func(u localfed.Upload) bool { return u.Round == h.GetRound() && u.Site == c && u.Bytes > 0 }) {
				t.Errorf("round %d: contributor %s has no audited upload", h.GetRound(), c)
			}
		}
	}

	logs := []string{f.AggregatorAudit}
	for _, s := range f.Sites {
		logs = append(logs, s.AuditLog)
	}
	for _, path := range logs {
		out, err := exec.Command(bin, "audit", "verify", path).CombinedOutput()
		if err != nil {
			t.Errorf("fedclaims audit verify %s: %v\n%s", path, err, out)
		}
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// One byte of the third entry's time, still valid JSON.
		lines := bytes.SplitAfter(orig, []byte("\n"))
		off := len(lines[0]) + len(lines[1]) + bytes.Index(lines[2], []byte(`"time":"`)) + len(`"time":"`) + 3
		bad := bytes.Clone(orig)
		bad[off] ^= 1
		badPath := filepath.Join(t.TempDir(), "tampered.jsonl")
		if err := os.WriteFile(badPath, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err = exec.Command(bin, "audit", "verify", badPath).CombinedOutput()
		if err == nil {
			t.Errorf("fedclaims audit verify accepted %s with a byte of entry 3 changed:\n%s", filepath.Base(path), out)
		} else if !strings.Contains(string(out), "line 3") {
			t.Errorf("fedclaims audit verify of %s with entry 3 changed does not name line 3:\n%s", filepath.Base(path), out)
		}
	}
}
