package eval

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestMetricsByHand(t *testing.T) {
	tests := []struct {
		name      string
		scores    []float64
		labels    []bool
		ap, auroc float64
	}{
		// scikit-learn's documented example: AP 0.8333, AUROC 0.75.
		// Ranked 0.8(+) 0.4(-) 0.35(+) 0.1(-): AP = 0.5*1 + 0 + 0.5*(2/3).
		{"sklearn example", []float64{0.1, 0.4, 0.35, 0.8}, []bool{false, false, true, true}, 0.5 + 0.5*2.0/3.0, 0.75},
		// Three rows tied at 0.5 form one threshold: recall 1 at precision 2/3.
		// Pairs: (+,-) tied twice = 0.5+0.5, (+ over 0.2) twice = 2; 3 of 4.
		{"ties grouped", []float64{0.5, 0.5, 0.5, 0.2}, []bool{true, false, true, false}, 2.0 / 3.0, 0.75},
		{"all tied", []float64{0.3, 0.3}, []bool{true, false}, 0.5, 0.5},
		{"perfect", []float64{0.9, 0.8, 0.1}, []bool{true, true, false}, 1, 1},
		{"reversed", []float64{0.1, 0.2, 0.9}, []bool{true, false, false}, 1.0 / 3.0, 0},
		// Ranked 4(+) 3(-) 2(+) 1(+): AP = 1/3*1 + 1/3*2/3 + 1/3*3/4; AUROC: 1 + 0 + 0 of 3.
		{"interleaved", []float64{4, 3, 2, 1}, []bool{true, false, true, true}, (1 + 2.0/3 + 0.75) / 3, 1.0 / 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ap, err := AveragePrecision(tt.scores, tt.labels)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(ap-tt.ap) > 1e-12 {
				t.Errorf("AveragePrecision = %.15f, want %.15f", ap, tt.ap)
			}
			auc, err := AUROC(tt.scores, tt.labels)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(auc-tt.auroc) > 1e-12 {
				t.Errorf("AUROC = %.15f, want %.15f", auc, tt.auroc)
			}
		})
	}
}

func TestMetricsErrors(t *testing.T) {
	tests := []struct {
		name    string
		scores  []float64
		labels  []bool
		apErr   error
		aucErr  error
		wantAP  float64
		checkAP bool
	}{
		{"empty", nil, nil, ErrEmpty, ErrEmpty, 0, false},
		{"all negative", []float64{0.1, 0.2}, []bool{false, false}, ErrNoPositives, ErrNoPositives, 0, false},
		{"all positive", []float64{0.1, 0.2}, []bool{true, true}, nil, ErrNoNegatives, 1, true},
		{"nan score", []float64{0.1, math.NaN()}, []bool{true, false}, ErrNaNScore, ErrNaNScore, 0, false},
		{"length mismatch", []float64{0.1}, []bool{true, false}, ErrLength, ErrLength, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ap, err := AveragePrecision(tt.scores, tt.labels)
			if !errors.Is(err, tt.apErr) {
				t.Errorf("AveragePrecision error = %v, want %v", err, tt.apErr)
			}
			if tt.checkAP && ap != tt.wantAP {
				t.Errorf("AveragePrecision = %v, want %v", ap, tt.wantAP)
			}
			if math.IsNaN(ap) {
				t.Error("AveragePrecision returned NaN")
			}
			auc, err := AUROC(tt.scores, tt.labels)
			if !errors.Is(err, tt.aucErr) {
				t.Errorf("AUROC error = %v, want %v", err, tt.aucErr)
			}
			if math.IsNaN(auc) {
				t.Error("AUROC returned NaN")
			}
		})
	}
	if _, err := Prevalence(nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("Prevalence(nil) error = %v, want ErrEmpty", err)
	}
}

func TestPrevalence(t *testing.T) {
	p, err := Prevalence([]bool{true, false, false, true, false})
	if err != nil || p != 0.4 {
		t.Fatalf("Prevalence = %v, %v; want 0.4", p, err)
	}
}

func TestPRCurve(t *testing.T) {
	r, p, err := PRCurve([]float64{0.1, 0.4, 0.35, 0.8}, []bool{false, false, true, true})
	if err != nil {
		t.Fatal(err)
	}
	wantR := []float64{0, 0.5, 0.5, 1, 1}
	wantP := []float64{1, 1, 0.5, 2.0 / 3, 0.5}
	for i := range wantR {
		if math.Abs(r[i]-wantR[i]) > 1e-12 || math.Abs(p[i]-wantP[i]) > 1e-12 {
			t.Fatalf("point %d = (%v, %v), want (%v, %v)", i, r[i], p[i], wantR[i], wantP[i])
		}
	}
}

// synthetic is n rows, three per patient, about 20% positive, with predicted
// probabilities that rank positives higher.
func synthetic(n int, seed uint64) ([]float64, []bool, []int64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	scores := make([]float64, n)
	labels := make([]bool, n)
	groups := make([]int64, n)
	for i := range n {
		labels[i] = rng.Float64() < 0.2
		z := rng.NormFloat64() - 1.5
		if labels[i] {
			z += 1
		}
		scores[i] = expit(z)
		groups[i] = int64(i / 3) // three index dates per patient
	}
	return scores, labels, groups
}

func TestScoreBootstrap(t *testing.T) {
	scores, labels, groups := synthetic(600, 7)
	m, err := Score(scores, labels, groups, DefaultBootstrap(1))
	if err != nil {
		t.Fatal(err)
	}
	ap, _ := AveragePrecision(scores, labels)
	auc, _ := AUROC(scores, labels)
	if m.AUPRC != ap || m.AUROC != auc {
		t.Errorf("point estimates %v %v, want %v %v", m.AUPRC, m.AUROC, ap, auc)
	}
	if m.AUPRCCI == nil || m.AUROCCI == nil {
		t.Fatalf("no intervals from %d positives", Positives(labels))
	}
	for _, tc := range []struct {
		name  string
		point float64
		ci    [2]float64
	}{{"auprc", m.AUPRC, *m.AUPRCCI}, {"auroc", m.AUROC, *m.AUROCCI}} {
		if !(tc.ci[0] < tc.point && tc.point < tc.ci[1]) || tc.ci[1]-tc.ci[0] > 0.3 {
			t.Errorf("%s CI %v does not bracket %v tightly", tc.name, tc.ci, tc.point)
		}
	}
	again, err := Score(scores, labels, groups, DefaultBootstrap(1))
	if err != nil || !reflect.DeepEqual(again, m) {
		t.Errorf("same seed gave %+v, want %+v", again, m)
	}
	other, err := Score(scores, labels, groups, DefaultBootstrap(2))
	if err != nil || *other.AUPRCCI == *m.AUPRCCI {
		t.Errorf("different seed gave the same interval %v", other.AUPRCCI)
	}
}

// With every row in one patient, each patient-level resample is the whole data set,
// so the interval collapses onto the point estimate; a row-level bootstrap would not.
func TestScoreResamplesPatients(t *testing.T) {
	scores, labels, _ := synthetic(200, 3)
	one := make([]int64, len(scores))
	// One patient holds every row, positives included: no patient without positives
	// is left to guarantee a resample negatives, so no interval.
	if m, err := Score(scores, labels, one, Bootstrap{Resamples: 50, Seed: 1}); err != nil || m.AUPRCCI != nil {
		t.Errorf("one patient with every row: %+v, %v; want no interval", m, err)
	}
	// The positives' rows in one patient, the negatives' in another: many positive
	// rows, but one positive patient, and the bootstrap resamples patients, so no
	// interval either (MinPositives counts patients too).
	two := make([]int64, len(scores))
	for i, y := range labels {
		if y {
			two[i] = 1
		}
	}
	m, err := Score(scores, labels, two, Bootstrap{Resamples: 50, Seed: 1})
	if err != nil || m.AUPRCCI != nil || Positives(labels) < MinPositives {
		t.Errorf("%d positive rows in one patient: %+v, %v; want no interval", Positives(labels), m, err)
	}
	// The positives spread over MinPositives patients, the negatives in one: the
	// negatives' stratum is the same in every resample, the positives' varies.
	spread := make([]int64, len(scores))
	k := 0
	for i, y := range labels {
		if y {
			spread[i] = int64(1 + k%MinPositives)
			k++
		}
	}
	if m, err = Score(scores, labels, spread, Bootstrap{Resamples: 50, Seed: 1}); err != nil || m.AUPRCCI == nil {
		t.Fatalf("positives in %d patients: %+v, %v; want an interval", MinPositives, m, err)
	}
	if m.AUPRCCI[0] == m.AUPRCCI[1] {
		t.Errorf("positives in %d patients: interval %v collapsed", MinPositives, *m.AUPRCCI)
	}
}

// tenPositives is a split of n rows, one per patient, the first pos of them positive.
func tenPositives(n, pos int, seed uint64) ([]float64, []bool, []int64) {
	rng := rand.New(rand.NewPCG(seed, 2))
	scores := make([]float64, n)
	labels := make([]bool, n)
	groups := make([]int64, n)
	for i := range n {
		labels[i] = i < pos
		z := rng.NormFloat64() - 2
		if labels[i] {
			z += 1.5
		}
		scores[i], groups[i] = expit(z), int64(i)
	}
	return scores, labels, groups
}

func TestScoreMinPositives(t *testing.T) {
	for _, tc := range []struct {
		pos  int
		want bool
	}{{1, false}, {5, false}, {MinPositives - 1, false}, {MinPositives, true}, {MinPositives + 1, true}, {40, true}} {
		scores, labels, groups := tenPositives(200, tc.pos, 9)
		m, err := Score(scores, labels, groups, Bootstrap{Resamples: 200, Seed: 1})
		if err != nil {
			t.Fatalf("%d positives: %v", tc.pos, err)
		}
		if got := m.AUPRCCI != nil && m.AUROCCI != nil; got != tc.want || (m.AUPRCCI != nil) != (m.AUROCCI != nil) {
			t.Errorf("%d positives: intervals %v %v, want present %v", tc.pos, m.AUPRCCI, m.AUROCCI, tc.want)
		}
		ap, _ := AveragePrecision(scores, labels)
		if m.AUPRC != ap {
			t.Errorf("%d positives: point AUPRC %v, want %v always", tc.pos, m.AUPRC, ap)
		}
		raw, _ := json.Marshal(m)
		if strings.Contains(string(raw), "auprc_ci") != tc.want {
			t.Errorf("%d positives: JSON %s", tc.pos, raw)
		}
	}
}

func TestScoreErrors(t *testing.T) {
	if _, err := Score([]float64{0.1, 0.2}, []bool{false, false}, []int64{1, 2}, DefaultBootstrap(1)); !errors.Is(err, ErrNoPositives) {
		t.Errorf("all negative: %v, want ErrNoPositives", err)
	}
	if _, err := Score([]float64{0.1, 0.2}, []bool{true, false}, []int64{1}, DefaultBootstrap(1)); !errors.Is(err, ErrLength) {
		t.Errorf("short groups: %v, want ErrLength", err)
	}
	if _, err := Score([]float64{0.1, 2}, []bool{true, false}, []int64{1, 2}, DefaultBootstrap(1)); !errors.Is(err, ErrNotProbability) {
		t.Errorf("score 2: %v, want ErrNotProbability", err)
	}
}
