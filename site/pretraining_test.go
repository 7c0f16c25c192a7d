package site

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"testing"

	"github.com/spf13/viper"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/claims/synth"
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
		cfg, err := Load(viper.New(), writeYAML(t, goodYAML+c.yaml))
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
