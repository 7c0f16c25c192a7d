package site

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/claims/synth"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// leakCode marks the test-split patients of markedHospital's dataset.
const leakCode = "PROC//TEST-SPLIT"

// markedReader passes on a synthetic hospital's patients, adding leakCode at the end
// of every test-split patient's history under salt.
type markedReader struct {
	claims.Reader
	salt string
}

func (r markedReader) Next(ctx context.Context) (*claims.Patient, error) {
	p, err := r.Reader.Next(ctx)
	if err != nil || tasks.SplitOf(p.ID, r.salt) != tasks.Test || len(p.Events) == 0 {
		return p, err
	}
	last := p.Events[len(p.Events)-1]
	p.Events = append(p.Events, claims.Event{Time: last.Time + 1, Code: leakCode, Value: last.Value})
	return p, nil
}

// markedHospital writes n synthetic patients as a MEDS dataset with the test-split
// patients under salt marked by leakCode, and returns its directory, a vocabulary
// counted on every patient (so that it holds leakCode) and the patients by split.
func markedHospital(t *testing.T, n int, salt string) (string, *tokenizer.Vocab, map[tasks.Split]int) {
	t.Helper()
	g, err := synth.New(synth.Config{Hospitals: 1, Patients: n, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "meds")
	if err := claims.WriteMEDS(context.Background(), dir, markedReader{g.Reader(0), salt}); err != nil {
		t.Fatal(err)
	}
	src, err := claims.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	splits := map[tasks.Split]int{}
	c := count(t, src, func(p *claims.Patient) { splits[tasks.SplitOf(p.ID, salt)]++ })
	table, err := c.Table(2)
	if err != nil {
		t.Fatal(err)
	}
	v, err := tokenizer.New(table, 2)
	if err != nil {
		t.Fatal(err)
	}
	if v.Token(v.ID(leakCode)) != leakCode {
		t.Fatalf("the vocabulary does not hold %s (%d test patients)", leakCode, splits[tasks.Test])
	}
	return dir, v, splits
}

// TestLocalTrainingReadsTrainingSplitOnly: the sequences a site trains on each round
// and the code counts it publishes come from its training-split patients only; no
// test-split patient, whose later events are the evaluation's labels, reaches them.
func TestLocalTrainingReadsTrainingSplitOnly(t *testing.T) {
	for _, salt := range []string{tasks.DefaultSalt, "site salt"} {
		dir, v, splits := markedHospital(t, 120, salt)
		a := &Agent{cfg: Config{Data: []string{dir}, SplitSalt: salt}}
		a.vocab = v
		seqs, err := a.sequences(context.Background(), 512)
		if err != nil {
			t.Fatal(err)
		}
		leak := v.ID(leakCode)
		for i, s := range seqs {
			if slices.Contains(s.Tokens, leak) {
				t.Fatalf("salt %q: training sequence %d holds %s, the mark of a test-split patient", salt, i, leakCode)
			}
		}
		if len(seqs) == 0 || len(seqs) > splits[tasks.Train] {
			t.Errorf("salt %q: %d training sequences from %v patients by split; want between 1 and the training split's", salt, len(seqs), splits)
		}
	}
}

func TestCountsReadTrainingSplitOnly(t *testing.T) {
	dir, _, splits := markedHospital(t, 120, tasks.DefaultSalt)
	a := &Agent{cfg: Config{Data: []string{dir}, SplitSalt: tasks.DefaultSalt}}
	src, err := a.openPretraining(dir)
	if err != nil {
		t.Fatal(err)
	}
	table, err := count(t, src, func(*claims.Patient) {}).Table(1)
	if err != nil {
		t.Fatal(err)
	}
	if n := table.Counts[leakCode]; n != 0 || table.Patients != int64(splits[tasks.Train]) {
		t.Errorf("counted %d patients, %d with %s; want the %d training-split patients and none with it", table.Patients, n, leakCode, splits[tasks.Train])
	}
}

func TestSplitSaltConfig(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"", tasks.DefaultSalt},
		{"split_salt: consortium-2026\n", "consortium-2026"},
	} {
		cfg, err := loadFile(writeYAML(t, goodYAML+c.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.SplitSalt != c.want {
			t.Errorf("%q: split salt %q, want %q", c.yaml, cfg.SplitSalt, c.want)
		}
	}
}

// count counts the codes of every patient of src, calling each on every patient, and
// closes src.
func count(t *testing.T, src claims.Reader, each func(*claims.Patient)) *tokenizer.Counter {
	t.Helper()
	defer src.Close()
	c := tokenizer.NewCounter()
	for {
		p, err := src.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return c
		}
		if err != nil {
			t.Fatal(err)
		}
		c.Add(p)
		each(p)
	}
}

// TestPretrainOnlyReadsEveryPatient: a pretraining-only site's local training reads
// every patient, the test split's included.
func TestPretrainOnlyReadsEveryPatient(t *testing.T) {
	dir, v, splits := markedHospital(t, 120, tasks.DefaultSalt)
	a := &Agent{cfg: Config{Data: []string{dir}, SplitSalt: tasks.DefaultSalt, PretrainOnly: true}}
	a.vocab = v
	seqs, err := a.sequences(context.Background(), 512)
	if err != nil {
		t.Fatal(err)
	}
	leak := v.ID(leakCode)
	marked := 0
	for _, s := range seqs {
		if slices.Contains(s.Tokens, leak) {
			marked++
		}
	}
	if len(seqs) <= splits[tasks.Train] || marked == 0 {
		t.Errorf("%d sequences, %d of test-split patients, from %v patients by split; want more than the training split, the test split among them", len(seqs), marked, splits)
	}
}

// TestCountsAuditPatients: the vocabulary entry of the audit log says which patients
// the counts were made on and how many were left out, and the count table sent holds
// as many patients: the training split, or every patient of a pretraining-only site.
func TestCountsAuditPatients(t *testing.T) {
	dir, _, splits := markedHospital(t, 120, tasks.DefaultSalt)
	all := splits[tasks.Train] + splits[tasks.Validation] + splits[tasks.Test]
	tests := []struct {
		name              string
		pretrainOnly      bool
		patients          string
		counted, leftOut  int
		countsTestPatient bool
	}{
		{"training split", false, trainingSplit, splits[tasks.Train], all - splits[tasks.Train], false},
		{"pretraining only", true, everyPatient, all, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pki := consortium(t, "a")
			state := filepath.Join(t.TempDir(), "state")
			a, err := New(Config{SiteID: "a", Federation: "fed", Aggregator: AggregatorConfig{Address: "127.0.0.1:1"}, CertsDir: pki, Data: []string{dir},
				StateDir: state, AuditLog: filepath.Join(state, "audit.jsonl"), Train: TrainConfig{MaxLen: 32}, SplitSalt: tasks.DefaultSalt,
				PretrainOnly: tt.pretrainOnly, Backoff: BackoffConfig{Min: time.Millisecond, Max: time.Millisecond}}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			fake := &fakeAggregator{}
			a.client = fake
			a.fed = &fedclaimspb.FederationConfig{FederationId: "fed", Sites: []string{"a", "b"}, Threshold: 1, MinSites: 2}
			asg := &fedclaimspb.Assignment{Envelope: &fedclaimspb.Envelope{FederationId: "fed", SiteId: "a"}, Seq: 1}
			if err := a.counts(context.Background(), asg, &fedclaimspb.VocabularyTask{KFloor: 2}); err != nil {
				t.Fatal(err)
			}
			if len(fake.uploads) != 1 {
				t.Fatalf("%d uploads, want the count table", len(fake.uploads))
			}
			var table fedclaimspb.CountTable
			if err := proto.Unmarshal(bytes.Join(fake.uploads[0], nil), &table); err != nil {
				t.Fatal(err)
			}
			hasLeak := slices.ContainsFunc(table.Counts, func(c *fedclaimspb.CodeCount) bool { return c.Code == leakCode })
			if table.Patients != uint64(tt.counted) || hasLeak != tt.countsTestPatient {
				t.Errorf("count table of %d patients, %s in it: %v; want %d, %v", table.Patients, leakCode, hasLeak, tt.counted, tt.countsTestPatient)
			}
			e := auditEntry(t, a.cfg.AuditLog, audit.Vocabulary)
			want := map[string]string{"patients": tt.patients, "patients_counted": fmt.Sprint(tt.counted), "patients_left_out": fmt.Sprint(tt.leftOut)}
			for k, v := range want {
				if e.Fields[k] != v {
					t.Errorf("vocabulary entry %s = %q, want %q (fields %v)", k, e.Fields[k], v, e.Fields)
				}
			}
		})
	}
}

// auditEntry returns the first entry of type typ in the audit log at path.
func auditEntry(t *testing.T, path, typ string) audit.Entry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		e, err := audit.ParseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		if e.Type == typ {
			return e
		}
	}
	t.Fatalf("%s: no %s entry", path, typ)
	return audit.Entry{}
}

// TestRandomCutSequences: with train.random_cut the site's pretraining windows end
// where model.Windows puts them under the site's seed, the same on every call and
// other under another seed; without it they are the whole histories.
func TestRandomCutSequences(t *testing.T) {
	dir, v, _ := markedHospital(t, 120, tasks.DefaultSalt)
	read := func(cfg Config) []model.Sequence {
		t.Helper()
		a := &Agent{cfg: cfg}
		a.vocab = v
		seqs, err := a.sequences(context.Background(), 512)
		if err != nil {
			t.Fatal(err)
		}
		return seqs
	}
	direct := func(w model.Windows) []model.Sequence {
		t.Helper()
		enc, err := tokenizer.NewEncoder(v, 512)
		if err != nil {
			t.Fatal(err)
		}
		src, err := claims.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		seqs, _, err := model.ReadSequencesWindows(context.Background(), tasks.NewPretrainingReader(src, tasks.DefaultSalt), enc, w)
		if err != nil {
			t.Fatal(err)
		}
		return seqs
	}
	tokens := func(seqs []model.Sequence) (n int) {
		for _, s := range seqs {
			n += len(s.Tokens)
		}
		return n
	}
	base := Config{Data: []string{dir}, SplitSalt: tasks.DefaultSalt}
	whole := read(base)
	tests := []struct {
		name string
		cfg  func(c *Config)
		want model.Windows
	}{
		{"off", func(c *Config) { c.Seed = 1 }, model.Windows{}},
		{"on, seed 1", func(c *Config) { c.Train.RandomCut, c.Seed = true, 1 }, model.Windows{RandomCut: true, Seed: 1}},
		{"on, seed 2", func(c *Config) { c.Train.RandomCut, c.Seed = true, 2 }, model.Windows{RandomCut: true, Seed: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.cfg(&cfg)
			got := read(cfg)
			if !slices.EqualFunc(got, direct(tt.want), seqEqual) {
				t.Fatalf("the site's windows are not model.ReadSequencesWindows' under %+v", tt.want)
			}
			if cut := tt.want.RandomCut; cut == slices.EqualFunc(got, whole, seqEqual) || cut != (tokens(got) < tokens(whole)) {
				t.Errorf("random cut %v: %d tokens in %d sequences, whole histories %d in %d", cut, tokens(got), len(got), tokens(whole), len(whole))
			}
		})
	}
	if slices.EqualFunc(direct(model.Windows{RandomCut: true, Seed: 1}), direct(model.Windows{RandomCut: true, Seed: 2}), seqEqual) {
		t.Error("seeds 1 and 2 cut every history alike")
	}
}

func seqEqual(a, b model.Sequence) bool {
	return slices.Equal(a.Tokens, b.Tokens) && slices.Equal(a.Segments, b.Segments)
}

func TestRandomCutConfig(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want bool
	}{
		{goodYAML, false},
		{strings.Replace(goodYAML, "  batch_size: 8\n", "  batch_size: 8\n  random_cut: true\n", 1), true},
	} {
		cfg, err := loadFile(writeYAML(t, c.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Train.RandomCut != c.want {
			t.Errorf("%q: random_cut %v, want %v", c.yaml, cfg.Train.RandomCut, c.want)
		}
	}
}
