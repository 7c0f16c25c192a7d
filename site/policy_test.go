package site

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/secureagg"
	"github.com/fedclaims/fedclaims/tasks"
)

func TestCheckDecrypt(t *testing.T) {
	roster, err := secureagg.NewRoster([]string{"a", "b", "c", "d", "e"})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(names ...string) []secureagg.SiteID {
		out, err := roster.IDsOf(names)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	sum := func(round uint64, names ...string) *secureagg.SumChunk {
		return &secureagg.SumChunk{Header: secureagg.Header{Round: round}, Sites: ids(names...)}
	}
	// Site a of a 2-of-5 federation that requires sums of 3.
	policy := decryptPolicy{Roster: roster, Self: 0, Threshold: 2, MinSites: 3}
	req := decryptRequest{Round: 7, Contributors: ids("a", "b", "c"), Decryptors: ids("a", "b")}
	with := func(f func(r *decryptRequest)) decryptRequest {
		r := req
		f(&r)
		return r
	}
	good := []*secureagg.SumChunk{sum(7, "a", "b", "c"), sum(7, "a", "b", "c", "d")}
	tests := []struct {
		name     string
		req      decryptRequest
		released []uint64
		sums     []*secureagg.SumChunk
		want     string // "" for allowed
	}{
		{"allowed before the download", req, []uint64{5, 6}, nil, ""},
		{"allowed after the download", req, []uint64{6}, good, ""},
		{"sum holding more sites than the task names", req, nil, []*secureagg.SumChunk{sum(7, "a", "b", "c", "d", "e")}, ""},
		{"contributors as many as the threshold", with(func(r *decryptRequest) { r.Contributors = ids("a", "b") }), nil, nil, "below min_sites 3"},
		{"one contributor", with(func(r *decryptRequest) { r.Contributors = ids("a") }), nil, nil, "below min_sites 3"},
		{"site not a decryptor", with(func(r *decryptRequest) { r.Decryptors = ids("b", "c") }), nil, nil, "not among the decryptors [b c]"},
		{"set larger than the threshold", with(func(r *decryptRequest) { r.Decryptors = ids("a", "b", "c") }), nil, nil, "3 decryptors, the threshold is 2"},
		{"set smaller than the threshold", with(func(r *decryptRequest) { r.Decryptors = ids("a") }), nil, nil, "1 decryptors, the threshold is 2"},
		{"decryptor that did not contribute", with(func(r *decryptRequest) { r.Decryptors = ids("a", "d") }), nil, nil, "decryptor d did not contribute"},
		{"round already released", req, []uint64{6, 7}, nil, "already released"},
		{"round already released, after the download", req, []uint64{7}, good, "already released"},
		{"empty aggregate", req, nil, []*secureagg.SumChunk{}, "no chunks"},
		{"chunk of another round", req, nil, []*secureagg.SumChunk{sum(7, "a", "b", "c"), sum(8, "a", "b", "c")}, "chunk 1 of round 8"},
		{"chunk of fewer sites than min_sites", with(func(r *decryptRequest) { r.Contributors = ids("a", "b", "c") }), nil,
			[]*secureagg.SumChunk{sum(7, "a", "b")}, "min_sites is 3"},
		{"chunk missing a contributor the task names", req, nil, []*secureagg.SumChunk{sum(7, "a", "b", "d")}, "chunk 0 of round 7 sums sites [a b d]"},
		{"later chunk missing a contributor (a partial upload)", req, nil, []*secureagg.SumChunk{sum(7, "a", "b", "c"), sum(7, "a", "c", "d")}, "chunk 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkDecrypt(policy, tt.req, tt.released, tt.sums)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("checkDecrypt: %v, want a refusal with %q", err, tt.want)
			}
			if errors.Is(err, ErrReleased) != strings.Contains(tt.want, "released") {
				t.Fatalf("checkDecrypt: %v: ErrReleased %v", err, errors.Is(err, ErrReleased))
			}
		})
	}
}

func TestNeedNewParty(t *testing.T) {
	params, err := secureagg.NewParameters(secureagg.PresetN12Q60)
	if err != nil {
		t.Fatal(err)
	}
	other, err := secureagg.NewParameters(secureagg.PresetN13Q60)
	if err != nil {
		t.Fatal(err)
	}
	spec := func(f func(s *partySpec)) partySpec {
		s := partySpec{Config: secureagg.Config{Params: params, Federation: "fed", Sites: []secureagg.SiteID{0, 1, 2, 3},
			Threshold: 2, MinSites: 3, WeightCap: 1000}, Self: 0, Sites: []string{"a", "b", "c", "d"}}
		if f != nil {
			f(&s)
		}
		return s
	}
	base := spec(nil)
	tests := []struct {
		name string
		old  *partySpec
		new  partySpec
		want bool
	}{
		{"no party yet", nil, base, true},
		{"same spec: keep the party (a restart mid-setup)", &base, spec(nil), false},
		{"another federation", &base, spec(func(s *partySpec) { s.Config.Federation = "fed2" }), true},
		{"another parameter set", &base, spec(func(s *partySpec) { s.Config.Params = other }), true},
		{"another threshold", &base, spec(func(s *partySpec) { s.Config.Threshold = 1; s.Config.MinSites = 2 }), true},
		{"another min_sites", &base, spec(func(s *partySpec) { s.Config.MinSites = 4 }), true},
		{"another weight cap", &base, spec(func(s *partySpec) { s.Config.WeightCap = 10 }), true},
		{"a site more", &base, spec(func(s *partySpec) {
			s.Config.Sites = []secureagg.SiteID{0, 1, 2, 3, 4}
			s.Sites = []string{"a", "b", "c", "d", "e"}
		}), true},
		{"another site set of the same size", &base, spec(func(s *partySpec) { s.Sites = []string{"a", "b", "c", "e"} }), true},
		{"the site's id changed", &base, spec(func(s *partySpec) { s.Self = 1 }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := needNewParty(tt.old, tt.new); got != tt.want {
				t.Fatalf("needNewParty = %v, want %v", got, tt.want)
			}
		})
	}
}

// idReader is a claims.Reader over patients with the given ids and no events.
type idReader struct {
	ids    []int64
	closed bool
}

func (r *idReader) Next(context.Context) (*claims.Patient, error) {
	if len(r.ids) == 0 {
		return nil, io.EOF
	}
	p := &claims.Patient{ID: r.ids[0]}
	r.ids = r.ids[1:]
	return p, nil
}

func (r *idReader) Close() error { r.closed = true; return nil }

// TestPretrainingReader: a site pretrains and counts on its training split (the
// dataset's own when it declares one, else the hash under its split salt), and a pretraining-only site on every patient, whatever the salt.
func TestPretrainingReader(t *testing.T) {
	const n = 400
	train := func(salt string) func(int64) bool {
		return func(id int64) bool { return tasks.InPretraining(id, salt) }
	}
	every := func(int64) bool { return true }
	// A dataset's own split: ids ending in 3 train, in 5 are tuning, in 7 held
	// out, the rest in no split.
	own := &claims.DatasetSplits{Source: "metadata/subject_splits.parquet", Subjects: map[int64]string{}}
	for i := range n {
		id := int64(1000 + 7*i)
		switch id % 10 {
		case 3:
			own.Subjects[id] = claims.SplitTrain
		case 5:
			own.Subjects[id] = claims.SplitTuning
		case 7:
			own.Subjects[id] = claims.SplitHeldOut
		}
	}
	ownTrain := func(id int64) bool { return own.Subjects[id] == claims.SplitTrain }
	tests := []struct {
		name     string
		cfg      Config
		splits   *tasks.Splits
		admit    func(int64) bool
		patients string
	}{
		{"default salt", Config{SplitSalt: tasks.DefaultSalt}, nil, train(tasks.DefaultSalt), trainingSplit},
		{"the dataset's own split, not the salt's", Config{SplitSalt: "consortium-2026"}, tasks.DatasetSplits(own), ownTrain, trainingSplit},
		{"pretraining only ignores the dataset's split", Config{PretrainOnly: true}, tasks.DatasetSplits(own), every, everyPatient},
		{"empty salt is the default", Config{}, nil, train(tasks.DefaultSalt), trainingSplit},
		{"site salt", Config{SplitSalt: "consortium-2026"}, nil, train("consortium-2026"), trainingSplit},
		{"pretraining only", Config{PretrainOnly: true, SplitSalt: tasks.DefaultSalt}, nil, every, everyPatient},
		{"pretraining only ignores the salt", Config{PretrainOnly: true, SplitSalt: "consortium-2026"}, nil, every, everyPatient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids := make([]int64, n)
			var want []int64
			for i := range ids {
				ids[i] = int64(1000 + 7*i)
				if tt.admit(ids[i]) {
					want = append(want, ids[i])
				}
			}
			wrap, patients := pretrainingReader(tt.cfg, tt.splits)
			if patients != tt.patients {
				t.Errorf("patients %q, want %q", patients, tt.patients)
			}
			src := &idReader{ids: ids}
			r := wrap(src)
			var got []int64
			for {
				p, err := r.Next(context.Background())
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, p.ID)
			}
			if !slices.Equal(got, want) {
				t.Errorf("read %d of %d patients, want %d", len(got), n, len(want))
			}
			if tt.patients == trainingSplit && (len(got) == 0 || len(got) == n) {
				t.Errorf("the training split of %d patients has %d: the split left nobody out", n, len(got))
			}
			if err := r.Close(); err != nil || !src.closed {
				t.Errorf("Close: %v; the dataset closed: %v", err, src.closed)
			}
		})
	}
}
