package localfed

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/claims/synth"
	"github.com/fedclaims/fedclaims/model"
)

// writeDatasets writes n synthetic hospitals of patients each under t.TempDir() and
// returns their directories.
func writeDatasets(t *testing.T, n, patients int) []string {
	t.Helper()
	g, err := synth.New(synth.Config{Hospitals: n, Patients: patients, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	var dirs []string
	for i, h := range g.Hospitals() {
		if _, err := g.WriteHospital(context.Background(), root, i); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, filepath.Join(root, h.ID))
	}
	return dirs
}

// Prepare over existing datasets synthesises nothing, points each site at its own
// directory, writes pretrain_only for the sites that ask for it, and takes the
// threshold's default from the number of datasets.
func TestPrepareDatasets(t *testing.T) {
	dirs := writeDatasets(t, 3, 30)
	dir := filepath.Join(t.TempDir(), "fed")
	f, err := Prepare(context.Background(), Options{
		Dir: dir, Binary: "/nonexistent/fedclaims", Seed: 7,
		Datasets: []Dataset{{ID: "north", Dir: dirs[0]}, {ID: "south", Dir: dirs[1]}, {ID: "registry", Dir: dirs[2], PretrainOnly: true}},
		// Keys localfed does not write reach every site through Site.
		Site: map[string]any{"threads": 2, "train.random_cut": true},
	})
	if err != nil {
		t.Fatal(err)
	}
	ac := loadAggregatorConfig(t, f.AggregatorConfig)
	if want := []string{"north", "south", "registry"}; !slices.Equal(ac.Sites, want) {
		t.Errorf("sites %v, want %v", ac.Sites, want)
	}
	if ac.Threshold != 2 || ac.MinSites != 3 {
		t.Errorf("threshold %d, min_sites %d: want 2 and 3 for three datasets", ac.Threshold, ac.MinSites)
	}
	if entries, err := os.ReadDir(filepath.Join(dir, "data")); err == nil && len(entries) > 0 {
		t.Errorf("synthesised %d datasets beside the given ones", len(entries))
	}
	for i, s := range f.Sites {
		sc, err := LoadSiteConfig(s.Config)
		if err != nil {
			t.Fatalf("%s: %v", s.Config, err)
		}
		wantOnly := s.ID == "registry"
		switch {
		case !slices.Equal(sc.Data, []string{dirs[i]}) || s.Data != dirs[i]:
			t.Errorf("site %s: data %v (Site.Data %s), want %s", s.ID, sc.Data, s.Data, dirs[i])
		case sc.PretrainOnly != wantOnly || s.PretrainOnly != wantOnly:
			t.Errorf("site %s: pretrain_only %v (Site.PretrainOnly %v), want %v", s.ID, sc.PretrainOnly, s.PretrainOnly, wantOnly)
		case sc.Threads != 2 || !sc.Train.RandomCut || sc.StateDir != s.StateDir || sc.AuditLog != s.AuditLog:
			t.Errorf("site %s config: %+v", s.ID, sc)
		case s.Archetype != "" || s.Patients != 0:
			t.Errorf("site %s: archetype %q, %d patients: a dataset's are unknown", s.ID, s.Archetype, s.Patients)
		}
	}
}

func TestPrepareDatasetsRefused(t *testing.T) {
	dirs := writeDatasets(t, 1, 10)
	ds := []Dataset{{ID: "a", Dir: dirs[0]}, {ID: "b", Dir: dirs[0]}}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"hospitals too", Options{Datasets: ds, Hospitals: 2}, "not both"},
		{"patients too", Options{Datasets: ds, Patients: 10}, "not both"},
		{"site twice", Options{Datasets: []Dataset{ds[0], ds[0]}}, `"a" listed twice`},
		{"bad id", Options{Datasets: []Dataset{{ID: "a/b", Dir: dirs[0]}}}, "dataset 0: id"},
		{"no directory", Options{Datasets: []Dataset{{ID: "a"}}}, "dataset a: no directory"},
		{"not a dataset", Options{Datasets: []Dataset{{ID: "a", Dir: t.TempDir()}}}, "dataset a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Dir, tt.opts.Binary = filepath.Join(t.TempDir(), "fed"), "x"
			_, err := Prepare(context.Background(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Prepare: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// A federation over two existing datasets and a pretraining-only one, as separate
// processes, runs to its final model; the pretraining-only site contributes, reads
// every patient, and says so in its audit log, and the others their training split.
func TestDatasetsFederation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the fedclaims binary")
	}
	bin := filepath.Join(t.TempDir(), "fedclaims")
	args := []string{"build", "-o", bin}
	if benchBuildTags != "" {
		args = append(args, "-tags", benchBuildTags)
	}
	if out, err := exec.Command("go", append(args, "github.com/fedclaims/fedclaims/cmd/fedclaims")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dirs := writeDatasets(t, 3, 40)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := Prepare(ctx, Options{
		Dir: filepath.Join(t.TempDir(), "fed"), Binary: bin, Seed: 3,
		Datasets: []Dataset{{ID: "h1", Dir: dirs[0]}, {ID: "h2", Dir: dirs[1]}, {ID: "pool", Dir: dirs[2], PretrainOnly: true}},
		Rounds:   1, LocalSteps: 2, BatchSize: 4, MaxLen: 32,
		Aggregator: map[string]any{
			"model.hidden": 16, "model.layers": 1, "model.heads": 2, "model.max_len": 32,
			"vocabulary.k_floor": 3, "secureagg.weight_cap": 40, "round_deadline": "60s", "decrypt_deadline": "60s",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Run(ctx, nil)
	if err != nil {
		for _, p := range append([]*Process{f.Aggregator}, f.Sites[0].Process, f.Sites[1].Process, f.Sites[2].Process) {
			t.Logf("%s log:\n%s", p.Name, p.Tail(4096))
		}
		t.Fatal(err)
	}
	for _, s := range f.Sites {
		if _, err := model.Load(s.FinalModel()); err != nil {
			t.Errorf("site %s final model: %v", s.ID, err)
		}
		if !slices.ContainsFunc(res.Uploads, func(u Upload) bool { return u.Site == s.ID && u.Round == 1 && u.Bytes > 0 }) {
			t.Errorf("site %s: no round-1 update among %+v", s.ID, res.Uploads)
		}
		want := "training_split"
		if s.PretrainOnly {
			want = "every_patient"
		}
		for _, typ := range []string{audit.Vocabulary, audit.RoundStart} {
			if got := auditField(t, s.AuditLog, typ, "patients"); got != want {
				t.Errorf("site %s: %s entry patients %q, want %q", s.ID, typ, got, want)
			}
		}
	}
}

// auditField returns field of the first entry of type typ in the audit log at path
// that has it.
func auditField(t *testing.T, path, typ, field string) string {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		e, err := audit.ParseLine(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := e.Fields[field]; ok && e.Type == typ {
			return v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ""
}
