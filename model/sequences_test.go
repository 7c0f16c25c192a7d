package model

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/claims/synth"
	"github.com/fedclaims/fedclaims/tokenizer"
)

func TestReadSequencesWindows(t *testing.T) {
	ctx := context.Background()
	g, err := synth.New(synth.Config{Hospitals: 1, Patients: 300, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var patients []*claims.Patient
	r := g.Reader(0)
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
	_, enc := encoderFor(t, patients, 64)
	read := func(w Windows) []Sequence {
		t.Helper()
		seqs, n, err := ReadSequencesWindows(ctx, g.Reader(0), enc, w)
		if err != nil {
			t.Fatal(err)
		}
		if n != len(patients) {
			t.Fatalf("read %d patients, want %d", n, len(patients))
		}
		return seqs
	}
	whole, _, err := ReadSequences(ctx, g.Reader(0), enc)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		w    Windows
	}{
		{"zero is whole history", Windows{}},
		{"seed ignored without RandomCut", Windows{Seed: 9}},
		{"random cut seed 1", Windows{RandomCut: true, Seed: 1}},
		{"random cut seed 2", Windows{RandomCut: true, Seed: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := read(c.w)
			if again := read(c.w); !slices.EqualFunc(got, again, equalSequence) {
				t.Fatal("two reads with the same windows differ")
			}
			// Rebuild the expected windows patient by patient: each is the encoding
			// strictly before the patient's cutoff, which the tokenizer tests check
			// leaves no event at or after it.
			var want []Sequence
			cut, kept := 0, 0
			for _, p := range patients {
				cutoff := tokenizer.NoCutoff
				if c.w.RandomCut {
					cutoff = tokenizer.RandomCutoff(p, c.w.Seed)
				}
				e := enc.Encode(p, cutoff)
				if !slices.ContainsFunc(e.IDs, func(id int32) bool { return id >= FirstCode }) {
					continue
				}
				for i := range p.Events {
					if p.Events[i].Time >= cutoff && cutoff != tokenizer.NoCutoff {
						cut++
						break
					}
				}
				if cutoff == tokenizer.NoCutoff {
					kept++
				}
				want = append(want, FromEncoding(e))
			}
			if !slices.EqualFunc(got, want, equalSequence) {
				t.Fatalf("got %d sequences unlike the %d encoded at each patient's cutoff", len(got), len(want))
			}
			if !c.w.RandomCut {
				if !slices.EqualFunc(got, whole, equalSequence) {
					t.Fatal("not the whole-history sequences of ReadSequences")
				}
				return
			}
			// Both the cut windows and the whole-history case must occur.
			if cut == 0 || kept == 0 {
				t.Fatalf("%d windows cut and %d whole histories: want both", cut, kept)
			}
		})
	}
}

func equalSequence(a, b Sequence) bool {
	return slices.Equal(a.Tokens, b.Tokens) && slices.Equal(a.Segments, b.Segments) &&
		slices.Equal(a.Positions, b.Positions) && slices.Equal(a.Ages, b.Ages)
}
