package inference

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// Options are where and how predict and embed score a dataset.
type Options struct {
	// At is the prediction time for every patient, microseconds since the Unix
	// epoch (a date's midnight UTC); 0 scores each patient at the midnight after
	// its last care event's day (DefaultTime). The history is the events strictly
	// before it.
	At int64
	// Batch is the sequences per encoder batch (0: 16).
	Batch int
	Log   *slog.Logger
}

func (o Options) batch() int {
	if o.Batch <= 0 {
		return 16
	}
	return o.Batch
}

func (o Options) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// Reasons a patient is not scored, as Summary counts them.
const (
	SkipNoHistory = "no care event before the prediction time"
	SkipDead      = "dead at the prediction time"
	SkipLookback  = "less history than the task's look-back"
	SkipPrior     = "the task's target or an excluded code already on record"
)

// Summary counts what a run read and scored.
type Summary struct {
	Patients int
	// Scored is the rows written per task (embed: under "").
	Scored map[string]int
	// Skipped counts the patients not scored per task and reason.
	Skipped map[string]map[string]int
}

func newSummary() *Summary {
	return &Summary{Scored: map[string]int{}, Skipped: map[string]map[string]int{}}
}

func (s *Summary) skip(task, reason string) {
	if s.Skipped[task] == nil {
		s.Skipped[task] = map[string]int{}
	}
	s.Skipped[task][reason]++
}

// isCareEvent is tasks.Labeler's visit-day rule: any event but birth, death and
// the observation end.
func isCareEvent(code string) bool {
	return code != claims.CodeBirth && code != claims.CodeDeath && code != claims.CodeObservationEnd
}

// DefaultTime is the prediction time predict and embed use for p without
// Options.At: the midnight (UTC) after the day of p's last care event, the
// anchor tasks.Labeler's index dates have, so that the history is all of p's
// record. ok is false when p has no care event.
func DefaultTime(p *claims.Patient) (t int64, ok bool) {
	for _, e := range p.Events {
		if isCareEvent(e.Code) {
			if c := (claims.Day(e.Time) + 1) * claims.MicrosPerDay; !ok || c > t {
				t, ok = c, true
			}
		}
	}
	return t, ok
}

// predictionTime is p's prediction time under o, or the reason p has none.
// Without o.At, a patient with a recorded death is not scored: it has no current
// risk. With o.At, one dead on or before it is not.
func predictionTime(p *claims.Patient, o Options) (int64, string) {
	t, ok := o.At, o.At != 0
	if !ok {
		if t, ok = DefaultTime(p); !ok {
			return 0, SkipNoHistory
		}
	}
	care := false
	for _, e := range p.Events {
		if e.Code == claims.CodeDeath && (o.At == 0 || e.Time <= t) {
			return 0, SkipDead
		}
		care = care || (isCareEvent(e.Code) && e.Time < t)
	}
	if !care {
		return 0, SkipNoHistory
	}
	return t, ""
}

// eligible is the reason p is not scored for task at t, or "": the task's
// look-back (the first event at least lookback_days before t) and its prior
// exclusions (no target or excluded code on or before t), as tasks.Labeler
// applies them at an index date. Follow-up, which lies in the future, is not asked.
func eligible(p *claims.Patient, task *tasks.Task, t int64) string {
	first := p.Events[0].Time
	for _, e := range p.Events {
		first = min(first, e.Time)
		if e.Time <= t && (task.Matches(e.Code) || task.Excludes(e.Code)) {
			return SkipPrior
		}
	}
	if first+int64(task.LookbackDays)*claims.MicrosPerDay > t {
		return SkipLookback
	}
	return ""
}

// Prediction is one row of predict's output.
type Prediction struct {
	SubjectID int64
	Time      int64 // microseconds since the Unix epoch
	Task      string
	Prob      float64
}

// Bound is a head bound to its encoder (Head.Bind).
type Bound struct {
	Head       *Head
	Classifier *model.Classifier
}

// Predict reads every patient of src and scores those eligible (see
// predictionTime and eligible) under every head, encoding each with vocab, the
// encoders' vocabulary, at the head's tokens per history. Rows come head by
// head, patients in src's order.
func Predict(ctx context.Context, src claims.Reader, vocab *tokenizer.Vocab, heads []Bound, o Options) ([]Prediction, *Summary, error) {
	if len(heads) == 0 {
		return nil, nil, errors.New("predict: no head")
	}
	for _, b := range heads {
		if n := b.Classifier.Encoder.Config().Vocab; vocab.Len() != n {
			return nil, nil, fmt.Errorf("predict: the vocabulary holds %d tokens but head %s's encoder has %d embedding rows", vocab.Len(), b.Head.Info.Task.Name, n)
		}
	}
	enc := newEncoders(vocab)
	type row struct{ id, t int64 }
	rows := make([][]row, len(heads))
	seqs := make([][]model.Sequence, len(heads))
	tasksOf := make([]tasks.Task, len(heads))
	for i, b := range heads {
		tasksOf[i] = b.Head.Info.Task.Task()
	}
	sum := newSummary()
	err := each(ctx, src, func(p *claims.Patient) error {
		sum.Patients++
		t, why := predictionTime(p, o)
		for i, b := range heads {
			name := b.Head.Info.Task.Name
			if why == "" {
				why := eligible(p, &tasksOf[i], t)
				if why != "" {
					sum.skip(name, why)
					continue
				}
				s, err := enc.encode(p, t, b.Head.Info.Seq)
				if err != nil {
					return err
				}
				rows[i] = append(rows[i], row{p.ID, t})
				seqs[i] = append(seqs[i], s)
				continue
			}
			sum.skip(name, why)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var out []Prediction
	for i, b := range heads {
		name := b.Head.Info.Task.Name
		if len(seqs[i]) == 0 {
			o.log().Warn("no patient to score", "task", name, "skipped", sum.Skipped[name])
			continue
		}
		x, err := model.PooledFeatures(ctx, b.Classifier.Encoder, seqs[i], o.batch(), b.Classifier.Pooling)
		if err != nil {
			return nil, nil, fmt.Errorf("head %s: %w", b.Head.Path, err)
		}
		for k, p := range b.Classifier.PredictFeatures(x) {
			out = append(out, Prediction{SubjectID: rows[i][k].id, Time: rows[i][k].t, Task: name, Prob: p})
		}
		sum.Scored[name] = len(seqs[i])
		o.log().Info("scored", "task", name, "patients", len(seqs[i]), "skipped", sum.Skipped[name])
	}
	if len(out) == 0 {
		return nil, sum, fmt.Errorf("predict: none of %d patients could be scored (%v)", sum.Patients, sum.Skipped)
	}
	return out, sum, nil
}

// Embedding is one row of embed's output.
type Embedding struct {
	SubjectID int64
	Time      int64
	Vector    []float32
}

// EmbedOptions are embed's settings beyond Options.
type EmbedOptions struct {
	Options
	Pooling model.Pooling
	// Seq caps tokens per history (0: the encoder's max_len).
	Seq int
}

// Embed reads every patient of src and returns the pooled embedding, under enc
// with o.Pooling, of each one alive with a care event before its prediction time
// (see predictionTime), in src's order.
func Embed(ctx context.Context, src claims.Reader, enc *model.Model, vocab *tokenizer.Vocab, o EmbedOptions) ([]Embedding, *Summary, error) {
	if err := o.Pooling.Validate(); err != nil {
		return nil, nil, fmt.Errorf("embed: %w", err)
	}
	cfg := enc.Config()
	if vocab.Len() != cfg.Vocab {
		return nil, nil, fmt.Errorf("embed: the vocabulary holds %d tokens but the encoder's embeddings have %d rows", vocab.Len(), cfg.Vocab)
	}
	seq := cfg.MaxLen
	if o.Seq > 0 {
		seq = min(seq, o.Seq)
	}
	encs := newEncoders(vocab)
	var out []Embedding
	var seqs []model.Sequence
	sum := newSummary()
	err := each(ctx, src, func(p *claims.Patient) error {
		sum.Patients++
		t, why := predictionTime(p, o.Options)
		if why != "" {
			sum.skip("", why)
			return nil
		}
		s, err := encs.encode(p, t, seq)
		if err != nil {
			return err
		}
		out = append(out, Embedding{SubjectID: p.ID, Time: t})
		seqs = append(seqs, s)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if len(seqs) == 0 {
		return nil, sum, fmt.Errorf("embed: none of %d patients could be embedded (%v)", sum.Patients, sum.Skipped[""])
	}
	x, err := model.PooledFeatures(ctx, enc, seqs, o.batch(), o.Pooling)
	if err != nil {
		return nil, nil, fmt.Errorf("embed: %w", err)
	}
	w := o.Pooling.Width(cfg.Hidden)
	for i := range out {
		out[i].Vector = x[i*w : (i+1)*w : (i+1)*w]
	}
	sum.Scored[""] = len(out)
	o.log().Info("embedded", "patients", len(out), "width", w, "skipped", sum.Skipped[""])
	return out, sum, nil
}

// encoders tokenizes histories, one tokenizer.Encoder per length.
type encoders struct {
	vocab *tokenizer.Vocab
	byLen map[int]*tokenizer.Encoder
	te    tokenizer.Encoding
}

func newEncoders(v *tokenizer.Vocab) *encoders {
	return &encoders{vocab: v, byLen: map[int]*tokenizer.Encoder{}}
}

// encode is p's history strictly before t, the most recent seq tokens kept.
func (e *encoders) encode(p *claims.Patient, t int64, seq int) (model.Sequence, error) {
	enc, ok := e.byLen[seq]
	if !ok {
		var err error
		if enc, err = tokenizer.NewEncoder(e.vocab, seq); err != nil {
			return model.Sequence{}, err
		}
		e.byLen[seq] = enc
	}
	enc.EncodeTo(&e.te, p, t)
	return model.FromEncoding(&e.te), nil
}

// each calls fn on every patient of src.
func each(ctx context.Context, src claims.Reader, fn func(*claims.Patient) error) error {
	for {
		p, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading patients: %w", err)
		}
		if err := fn(p); err != nil {
			return err
		}
	}
}

// SkippedTable lists s's skipped counts as "task: reason n" lines, sorted.
func (s *Summary) SkippedTable() []string {
	var out []string
	for task, m := range s.Skipped {
		for why, n := range m {
			out = append(out, fmt.Sprintf("%s: %s: %d", task, why, n))
		}
	}
	sort.Strings(out)
	return out
}
