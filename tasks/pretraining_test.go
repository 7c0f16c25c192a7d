package tasks

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
)

// sliceReader is a claims.Reader over patients in memory.
type sliceReader struct {
	ps     []*claims.Patient
	closed bool
}

func (s *sliceReader) Next(context.Context) (*claims.Patient, error) {
	if len(s.ps) == 0 {
		return nil, io.EOF
	}
	p := s.ps[0]
	s.ps = s.ps[1:]
	return p, nil
}

func (s *sliceReader) Close() error { s.closed = true; return nil }

func TestInPretraining(t *testing.T) {
	for _, salt := range []string{"", DefaultSalt, "another salt"} {
		var in, out [3]int
		for id := int64(-500); id < 1500; id++ {
			split := SplitOf(id, salt)
			if salt == "" {
				split = SplitOf(id, DefaultSalt)
			}
			if InPretraining(id, salt) {
				in[split]++
			} else {
				out[split]++
			}
		}
		if in[Validation] != 0 || in[Test] != 0 || out[Train] != 0 {
			t.Errorf("salt %q: admitted %v and left out %v by split (train, validation, test); want only the training split admitted", salt, in, out)
		}
		if in[Train] < 1500 || out[Test] < 150 {
			t.Errorf("salt %q: admitted %d training subjects and left out %d test subjects of 2000", salt, in[Train], out[Test])
		}
	}
}

func TestPretrainingReader(t *testing.T) {
	var ps []*claims.Patient
	want := map[int64]bool{}
	for id := range int64(300) {
		ps = append(ps, &claims.Patient{ID: id})
		if SplitOf(id, "s") == Train {
			want[id] = true
		}
	}
	src := &sliceReader{ps: ps}
	r := NewPretrainingReader(src, "s")
	got := 0
	for {
		p, err := r.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !want[p.ID] {
			t.Fatalf("subject %d (%v split) passed the pretraining reader", p.ID, SplitOf(p.ID, "s"))
		}
		got++
	}
	if got != len(want) || r.Excluded != len(ps)-len(want) {
		t.Errorf("passed %d and excluded %d of %d patients, want %d and %d", got, r.Excluded, len(ps), len(want), len(ps)-len(want))
	}
	if err := r.Close(); err != nil || !src.closed {
		t.Errorf("Close: %v, underlying reader closed %v", err, src.closed)
	}
}
