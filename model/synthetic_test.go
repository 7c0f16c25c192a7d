package model

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/claims/synth"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// TestSyntheticHospitals pretrains a small encoder on two synthetic hospitals and
// checks that the held-out MLM loss ends at least 0.4 nats below the codes'
// unigram entropy, and that the default head (the linear probe on the frozen
// encoder) for every default task beats the task's prevalence in test AUPRC. It
// takes about 5 minutes on two cores, so it runs only with FEDCLAIMS_LONG_TESTS=1.
func TestSyntheticHospitals(t *testing.T) {
	if os.Getenv("FEDCLAIMS_LONG_TESTS") == "" {
		t.Skip("set FEDCLAIMS_LONG_TESTS=1 to run")
	}
	ctx := context.Background()
	g, err := synth.New(synth.Config{Hospitals: 2, Patients: 4000, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	var patients []*claims.Patient
	for h := range g.Hospitals() {
		r := g.Reader(h)
		for {
			p, err := r.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			patients = append(patients, p)
		}
	}
	vocab, enc := encoderFor(t, patients, 128)
	var pre, preValid []Sequence
	for _, p := range patients {
		s := FromEncoding(enc.Encode(p, tokenizer.NoCutoff))
		if s.Len() < 2 {
			continue
		}
		// The labeler splits with tasks.DefaultSalt: pretraining on the same salt keeps
		// every test patient (and its future) out of the encoder.
		switch tasks.SplitOf(p.ID, tasks.DefaultSalt) {
		case tasks.Train:
			pre = append(pre, s)
		case tasks.Validation:
			preValid = append(preValid, s)
		}
	}
	// Smaller than the 2m preset so that enough steps fit in a few minutes.
	cfg := Config{Vocab: vocab.Len(), Hidden: 64, Layers: 2, Heads: 2, MaxLen: 128, Segments: tokenizer.NumSegments, LNEps: 1e-5}
	m, err := New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	const steps = 1200
	tc := DefaultTrainConfig(steps)
	tc.LR = 5e-3
	tr, _ := NewTrainer(m, tc, 2)
	ld, err := NewLoader(pre, 32, 3)
	if err != nil {
		t.Fatal(err)
	}
	valid := func() []*Batch { return Batches(preValid, 32) }
	for i := range steps {
		if _, err := tr.Step(ctx, []*Batch{ld.Next()}); err != nil {
			t.Fatal(err)
		}
		if (i+1)%200 == 0 {
			t.Logf("step %d: held-out MLM loss %.3f", i+1, tr.Eval(valid(), 5))
		}
	}
	loss, entropy := tr.Eval(valid(), 5), UnigramEntropy(pre)
	t.Logf("held-out MLM loss %.3f nats, unigram entropy %.3f nats (%d training sequences)", loss, entropy, len(pre))
	// The generator mixes context-free background codes into every visit, which
	// bounds how far below the unigram entropy any model can get; 0.4 nats is
	// what context must be worth here.
	if loss > entropy-0.4 {
		t.Errorf("held-out MLM loss %.3f is not 0.4 nats below the unigram entropy %.3f", loss, entropy)
	}

	labeler, err := tasks.NewLabeler(tasks.Default(), tasks.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	type split struct{ train, valid, test []Example }
	perTask := make([]split, len(labeler.Tasks()))
	for _, p := range patients {
		for _, ex := range labeler.Examples(p) {
			seq := FromEncoding(enc.Encode(p, ex.Index))
			for i, l := range ex.Labels {
				if !l.Labelled() {
					continue
				}
				e := Example{Seq: seq, Label: l == tasks.Positive}
				switch ex.Split {
				case tasks.Train:
					perTask[i].train = append(perTask[i].train, e)
				case tasks.Validation:
					perTask[i].valid = append(perTask[i].valid, e)
				default:
					perTask[i].test = append(perTask[i].test, e)
				}
			}
		}
	}
	for i, task := range labeler.Tasks() {
		sp := perTask[i]
		hc := DefaultHeadConfig() // the linear probe
		hc.Pooling = PoolMean
		cl, err := FineTune(ctx, m, sp.train, sp.valid, hc)
		if err != nil {
			t.Fatalf("%s: %v", task.Name, err)
		}
		labels := labelsOf(sp.test)
		prev := 0.0
		for _, l := range labels {
			if l {
				prev++
			}
		}
		prev /= float64(len(labels))
		ap := AveragePrecision(labels, cl.PredictAll(seqsOf(sp.test), 64))
		t.Logf("%-18s test AUPRC %.3f, prevalence %.3f (%d train, %d test), lambda %g, validation log-loss %.4f",
			task.Name, ap, prev, len(sp.train), len(sp.test), cl.Lambda, cl.ValidLogLoss)
		if ap <= prev {
			t.Errorf("%s: test AUPRC %.3f does not beat the prevalence %.3f", task.Name, ap, prev)
		}
	}
}

// encoderFor builds the vocabulary of patients' codes at the default frequency floor
// and an encoder of maxLen tokens over it.
func encoderFor(t *testing.T, patients []*claims.Patient, maxLen int) (*tokenizer.Vocab, *tokenizer.Encoder) {
	t.Helper()
	counter := tokenizer.NewCounter()
	for _, p := range patients {
		counter.Add(p)
	}
	table, err := counter.Table(tokenizer.DefaultMinCount)
	if err != nil {
		t.Fatal(err)
	}
	vocab, err := tokenizer.New(table, tokenizer.DefaultMinCount)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := tokenizer.NewEncoder(vocab, maxLen)
	if err != nil {
		t.Fatal(err)
	}
	return vocab, enc
}
