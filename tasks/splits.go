package tasks

import (
	"fmt"
	"slices"
	"strings"

	"github.com/fedclaims/fedclaims/claims"
)

// Splits decides which patients train, choose and test a model. A dataset that
// declares its own split (claims.ReadDatasetSplits) is split its way, so that its
// held-out patients are never pretrained on and scores are comparable with other
// tools on it; any other dataset by fedclaims' salted hash (SplitOf). Every path
// that pretrains, labels or evaluates asks a Splits, never the hash directly, so
// the two cannot disagree.
type Splits struct {
	salt string
	// byID is the dataset's split, nil for the hash.
	byID   map[int64]Split
	source string
	// desc, when set, is String's answer: a Union's of datasets split otherwise.
	desc string
}

// HashSplits splits by SplitOf under salt (DefaultSalt when empty).
func HashSplits(salt string) *Splits {
	if salt == "" {
		salt = DefaultSalt
	}
	return &Splits{salt: salt}
}

// DatasetSplits splits as ds declares: train is Train, tuning is Validation,
// held_out is Test. A subject of any other split name is in none of the three, so
// it is neither pretrained on nor evaluated.
func DatasetSplits(ds *claims.DatasetSplits) *Splits {
	s := &Splits{byID: make(map[int64]Split, len(ds.Subjects)), source: ds.Source}
	for id, name := range ds.Subjects {
		switch name {
		case claims.SplitTrain:
			s.byID[id] = Train
		case claims.SplitTuning:
			s.byID[id] = Validation
		case claims.SplitHeldOut:
			s.byID[id] = Test
		}
	}
	return s
}

// LoadSplits returns the split of the dataset at dir: its own when it declares one,
// else the hash under salt.
func LoadSplits(dir, salt string) (*Splits, error) {
	ds, err := claims.ReadDatasetSplits(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if ds == nil {
		return HashSplits(salt), nil
	}
	return DatasetSplits(ds), nil
}

// Of returns id's split; false when the dataset's own split puts id in none of
// train, tuning and held_out (or does not list it). The hash always assigns one.
func (s *Splits) Of(id int64) (Split, bool) {
	if s == nil {
		return SplitOf(id, DefaultSalt), true
	}
	if s.byID == nil {
		return SplitOf(id, s.salt), true
	}
	sp, ok := s.byID[id]
	return sp, ok
}

// InPretraining reports whether the encoder may be pretrained on id: only a
// training-split patient may (see the package-level InPretraining).
func (s *Splits) InPretraining(id int64) bool {
	sp, ok := s.Of(id)
	return ok && sp == Train
}

// FromDataset reports whether the split is the dataset's own.
func (s *Splits) FromDataset() bool { return s != nil && s.byID != nil }

// String says whose split this is, for every report and log:
// "dataset's (metadata/subject_splits.parquet)" or "fedclaims hash".
func (s *Splits) String() string {
	if s != nil && s.desc != "" {
		return s.desc
	}
	if s.FromDataset() {
		return "dataset's (" + s.source + ")"
	}
	return "fedclaims hash"
}

// Name returns the MEDS split name of id ("train", "tuning", "held_out"), for
// writing subject_splits.parquet from this split; "" when id is in none.
func (s *Splits) Name(id int64) string {
	sp, ok := s.Of(id)
	if !ok {
		return ""
	}
	return [...]string{Train: claims.SplitTrain, Validation: claims.SplitTuning, Test: claims.SplitHeldOut}[sp]
}

// Union is the split of datasets pooled into one cohort, each split its own way:
// ids[i] are the subjects of dataset i (distinct across datasets), named
// names[i], and parts[i] its split. When every part is the hash under one salt
// the union is that hash; otherwise each subject keeps its own dataset's split,
// and String names each dataset's ("h01: dataset's (...); h02: fedclaims hash").
func Union(names []string, parts []*Splits, ids [][]int64) *Splits {
	if len(parts) == 0 {
		return HashSplits("")
	}
	hash := true
	for _, p := range parts {
		hash = hash && !p.FromDataset() && p.salt == parts[0].salt
	}
	if hash {
		return parts[0]
	}
	u := &Splits{byID: map[int64]Split{}}
	descs := make([]string, len(parts))
	for i, p := range parts {
		for _, id := range ids[i] {
			if sp, ok := p.Of(id); ok {
				u.byID[id] = sp
			}
		}
		descs[i] = p.String()
	}
	u.desc = DescribeSplits(names, descs)
	return u
}

// DescribeSplits says whose split each of the datasets names was split by, given
// each one's description (Splits.String): the one description when they agree,
// else "name: description; ...". "" for no dataset.
func DescribeSplits(names, descs []string) string {
	if len(descs) == 0 {
		return ""
	}
	if !slices.ContainsFunc(descs, func(d string) bool { return d != descs[0] }) {
		return descs[0]
	}
	parts := make([]string, len(descs))
	for i, d := range descs {
		parts[i] = names[i] + ": " + d
	}
	return strings.Join(parts, "; ")
}
