package tasks

import (
	"context"

	"github.com/fedclaims/fedclaims/claims"
)

// InPretraining reports whether the encoder may be pretrained on subject id under
// the split salt (DefaultSalt when empty): only the training split may.
//
// Pretraining reads a patient's whole history, so it reads the events after the
// patient's index date, which are the patient's labels. Test-split subjects are left
// out so that the test labels the evaluation scores on never shaped the encoder.
// Validation-split subjects are left out too: the validation split chooses the
// heads' stopping epoch and the baseline's hyperparameters, and an encoder that had
// read those patients' outcomes would make the choices on leaked labels, in the
// encoder's favour; the baseline, trained on the training split only, sees none.
// This is the rule of every pretraining path: the site agent's local rounds,
// fedclaims pretrain, the demo's site-alone encoders and the sweep.
func InPretraining(id int64, salt string) bool {
	if salt == "" {
		salt = DefaultSalt
	}
	return SplitOf(id, salt) == Train
}

// PretrainingReader passes on the patients of a claims.Reader that InPretraining
// admits and counts those it leaves out.
type PretrainingReader struct {
	r      claims.Reader
	splits *Splits
	// Excluded is the number of patients left out so far.
	Excluded int
}

// NewPretrainingReader returns r restricted to the pretraining split under salt.
// Closing it closes r.
func NewPretrainingReader(r claims.Reader, salt string) *PretrainingReader {
	return &PretrainingReader{r: r, splits: HashSplits(salt)}
}

// NewSplitsPretrainingReader returns r restricted to the training split of s (the
// dataset's own split when it declares one, see LoadSplits). Closing it closes r.
func NewSplitsPretrainingReader(r claims.Reader, s *Splits) *PretrainingReader {
	return &PretrainingReader{r: r, splits: s}
}

// Splits returns the split the reader keeps the training patients of.
func (p *PretrainingReader) Splits() *Splits { return p.splits }

// Next returns the next patient that may be pretrained on, or io.EOF.
func (p *PretrainingReader) Next(ctx context.Context) (*claims.Patient, error) {
	for {
		pt, err := p.r.Next(ctx)
		if err != nil {
			return nil, err
		}
		if p.splits.InPretraining(pt.ID) {
			return pt, nil
		}
		p.Excluded++
	}
}

// Close closes the underlying reader.
func (p *PretrainingReader) Close() error { return p.r.Close() }
