package main

// Empty results are refused where they are made, with their likely cause: an
// empty vocabulary otherwise passes vocab build with exit status 0 and surfaces
// in pretrain as a preset error ("vocab_size 5 must exceed 5 special tokens"),
// which blames the wrong flag.

import (
	"fmt"
	"strings"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// refuseEmptyVocab refuses a vocabulary that holds the special tokens alone.
func refuseEmptyVocab(path string, v *tokenizer.Vocab) error {
	if v.Len() > tokenizer.NumSpecial {
		return nil
	}
	return fmt.Errorf("flag --vocab %s: the vocabulary holds only the %d special tokens, no code: it was built from data whose codes all fell below its --min-count %d or matched no known code system; rebuild it with fedclaims vocab build (and --codes FILE for a dataset in another convention)",
		path, tokenizer.NumSpecial, v.MinCount())
}

// noSequences explains why pretraining found no sequence to train on: no patient
// read (the split left none), or none with a code in the vocabulary.
func noSequences(data []string, vocabPath string, read, excluded int) error {
	if read == 0 {
		return fmt.Errorf("flag --data %s: no patient to pretrain on: the datasets hold no patients, or the split left none (%d of other splits left out; --include-test-split for an encoder no evaluation will score)",
			strings.Join(data, ","), excluded)
	}
	return fmt.Errorf("flag --data %s: none of the %d patients read has a code in the vocabulary %s: build the vocabulary from these datasets, with the same --codes (fedclaims vocab build --data ... --codes FILE)",
		strings.Join(data, ","), read, vocabPath)
}

// noLabelled adds the likely cause to a cohort without labelled patients: their
// histories are too short for the tasks' lookback and horizon, or, when most
// events fall outside every known code system, the data was not understood.
func noLabelled(dir string, patients []*claims.Patient, err error) error {
	t := newCodeTally()
	var first, last int64
	for _, p := range patients {
		if len(p.Events) > 0 {
			// Events are sorted by time.
			if t.events == 0 || p.Events[0].Time < first {
				first = p.Events[0].Time
			}
			if t.events == 0 || p.Events[len(p.Events)-1].Time > last {
				last = p.Events[len(p.Events)-1].Time
			}
		}
		t.add(p)
	}
	cause := "an index date needs a task's lookback of history before it and its whole horizon of follow-up after it (observation end or later events)"
	if t.events > 0 {
		cause += fmt.Sprintf("; the %d patients' events span %s to %s", len(patients), claims.FormatTime(first)[:10], claims.FormatTime(last)[:10])
		if share := float64(t.events-t.known) / float64(t.events); share > unrecognisedWarnShare {
			cause += fmt.Sprintf("; %.0f%% of events matched no known code system (top prefixes %s: map them with --codes FILE)",
				100*share, formatPrefixes(t.topPrefixes(5)))
		}
	}
	return fmt.Errorf("%s: %w; %s", dir, err, cause)
}
