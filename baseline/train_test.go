package baseline

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmitryikh/leaves"

	"github.com/fedclaims/fedclaims/eval"
)

func smallParams() Params {
	p := DefaultParams()
	p.NumIterations = 40
	p.NumThreads = 2
	return p
}

func TestTrainLearnsPlantedSignal(t *testing.T) {
	d := Synthetic(4000, 300, 0.04, 1)
	train, test := d.Split(0.7, 2)
	m, err := Train(context.Background(), train, nil, smallParams(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ap, err := eval.AveragePrecision(m.Predict(test.X, 2), test.Label)
	if err != nil {
		t.Fatal(err)
	}
	prev, _ := eval.Prevalence(test.Label)
	if ap < 2*prev {
		t.Errorf("test AUPRC %.3f, want at least twice the prevalence %.3f", ap, prev)
	}
	if len(m.Trees) != 40 {
		t.Errorf("%d trees, want 40", len(m.Trees))
	}
	for i, tr := range m.Trees {
		if tr.NumLeaves() > 31 {
			t.Errorf("tree %d has %d leaves, want <= 31", i, tr.NumLeaves())
		}
	}
}

func modelText(t *testing.T, m *Model) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := m.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestTrainDeterministic(t *testing.T) {
	// Enough rows (after bagging) that root histograms are built by two goroutines.
	d := Synthetic(11000, 100, 0.05, 3)
	p := smallParams()
	p.NumIterations = 6
	p.BaggingFraction, p.BaggingFreq, p.FeatureFraction = 0.8, 1, 0.7
	p.Seed = 11
	a, err := Train(context.Background(), d, nil, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Train(context.Background(), d, nil, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(modelText(t, a), modelText(t, b)) {
		t.Error("same seed: different models")
	}
	p.Seed = 12
	c, err := Train(context.Background(), d, nil, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(modelText(t, a), modelText(t, c)) {
		t.Error("different seeds gave the same bagged model")
	}
}

// The model file must be LightGBM's: an independent reader of that format loads it
// and predicts what our predictor predicts, raw scores and probabilities.
func TestModelFileReadByLeaves(t *testing.T) {
	d := Synthetic(4000, 300, 0.04, 5)
	train, test := d.Split(0.75, 6)
	p := smallParams()
	p.LambdaL1, p.LambdaL2 = 0.1, 1
	m, err := Train(context.Background(), train, nil, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.txt")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	raw, err := leaves.LGEnsembleFromFile(path, false)
	if err != nil {
		t.Fatalf("leaves cannot read the model: %v", err)
	}
	prob, err := leaves.LGEnsembleFromFile(path, true)
	if err != nil {
		t.Fatalf("leaves cannot read the model with its transformation: %v", err)
	}
	if raw.NEstimators() != len(m.Trees) || raw.NFeatures() != 300 {
		t.Fatalf("leaves sees %d trees, %d features; want %d, 300", raw.NEstimators(), raw.NFeatures(), len(m.Trees))
	}
	ours, oursP := m.PredictRaw(test.X, 2), m.Predict(test.X, 2)
	fvals := make([]float64, 300)
	for i := range test.X.Rows() {
		clear(fvals)
		idx, val := test.X.Row(i)
		for k, c := range idx {
			fvals[c] = float64(val[k])
		}
		if got := raw.PredictSingle(fvals, 0); math.Abs(got-ours[i]) > 1e-9 {
			t.Fatalf("row %d: leaves raw %.17g, ours %.17g", i, got, ours[i])
		}
		if got := prob.PredictSingle(fvals, 0); math.Abs(got-oursP[i]) > 1e-9 {
			t.Fatalf("row %d: leaves probability %.17g, ours %.17g", i, got, oursP[i])
		}
	}
}

func TestSaveLeavesNoTempFiles(t *testing.T) {
	d := Synthetic(500, 50, 0.1, 1)
	p := smallParams()
	p.NumIterations = 3
	m, err := Train(context.Background(), d, nil, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := m.Save(filepath.Join(dir, "m.txt")); err != nil {
		t.Fatal(err)
	}
	if err := m.Save(filepath.Join(dir, "missing", "m.txt")); err == nil {
		t.Error("saving into a missing directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only m.txt", len(ents))
	}
}

func TestEarlyStopping(t *testing.T) {
	d := Synthetic(4000, 200, 0.05, 8)
	train, rest := d.Split(0.6, 9)
	valid, _ := rest.Split(0.5, 10)
	for _, metric := range []string{"average_precision", "binary_logloss"} {
		p := smallParams()
		p.NumIterations, p.EarlyStoppingRound, p.Metric = 300, 5, metric
		p.LearningRate = 0.3
		m, err := Train(context.Background(), train, valid, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if m.BestIteration == 0 || m.BestIteration != len(m.Trees) || m.BestIteration >= 300 {
			t.Errorf("%s: best iteration %d, %d trees: want early stopping to keep the best", metric, m.BestIteration, len(m.Trees))
		}
		if metric == "binary_logloss" {
			// The kept model is the validation log-loss minimum over the trees grown.
			kept := logLoss(m.PredictRaw(valid.X, 2), valid.Label)
			shorter := &Model{Trees: m.Trees[:len(m.Trees)-1]}
			if len(shorter.Trees) > 0 && logLoss(shorter.PredictRaw(valid.X, 2), valid.Label) < kept {
				t.Errorf("one tree fewer has a lower validation log-loss than the kept %v", kept)
			}
		}
		if _, err := Train(context.Background(), train, nil, p, nil); err == nil {
			t.Error("early stopping without a validation set succeeded")
		}
	}
}

// The stepwise search chooses on validation log-loss: the returned model is the
// point of lowest log-loss, each stage varies one parameter from the best point
// before it, and AUPRC, recorded, decides nothing.
func TestGridChoosesOnLogLoss(t *testing.T) {
	d := Synthetic(3000, 150, 0.05, 8)
	train, rest := d.Split(0.6, 9)
	valid, _ := rest.Split(0.5, 10)
	p := smallParams()
	p.NumIterations, p.Metric = 80, "average_precision" // the metric is overridden
	space := GridSpace{LearningRate: 0.1, NumLeaves: []int{4, 16, 64}, MinDataInLeaf: []int{20, 5}, LambdaL2: []float64{0, 10}, FeatureFraction: []float64{1, 0.5}}
	best, points, err := TrainGrid(context.Background(), train, valid, p, space, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(points); n < 3+1+1+1 || n > 3+1+1+1+2 {
		t.Fatalf("%d points, want 6 to 8 (stepwise, not the %d of the product)", n, space.Points())
	}
	var chosen []GridPoint
	minLoss, maxAP := math.Inf(1), math.Inf(-1)
	seen := map[[4]float64]bool{}
	for i, pt := range points {
		key := [4]float64{float64(pt.NumLeaves), float64(pt.MinDataInLeaf), pt.LambdaL2, pt.FeatureFraction}
		if seen[key] {
			t.Errorf("point %d %+v trained twice", i, pt)
		}
		seen[key] = true
		if pt.Chosen {
			chosen = append(chosen, pt)
		}
		if !(pt.ValidLogLoss > 0) || pt.BestIteration < 1 || pt.LearningRate != 0.1 {
			t.Errorf("point %d %+v: want a positive log-loss, a best iteration and the space's learning rate", i, pt)
		}
		minLoss, maxAP = min(minLoss, pt.ValidLogLoss), max(maxAP, pt.ValidAUPRC)
	}
	if len(chosen) != 1 {
		t.Fatalf("%d points chosen, want 1", len(chosen))
	}
	c := chosen[0]
	if c.ValidLogLoss != minLoss {
		t.Errorf("chose log-loss %v, the minimum is %v", c.ValidLogLoss, minLoss)
	}
	// The data are chosen so that the criteria disagree: a search on AUPRC would
	// have kept another point.
	if c.ValidAUPRC == maxAP {
		t.Errorf("the chosen point also has the best validation AUPRC (%v): the test no longer tells the criteria apart; change the data's seed", maxAP)
	}
	bp := best.Params
	if bp.NumLeaves != c.NumLeaves || bp.MinDataInLeaf != c.MinDataInLeaf || bp.LambdaL2 != c.LambdaL2 || bp.FeatureFraction != c.FeatureFraction {
		t.Errorf("model has %+v, chosen point %+v", bp, c)
	}
	if bp.Metric != "binary_logloss" || len(best.Trees) != c.BestIteration || best.BestIteration != c.BestIteration {
		t.Errorf("model: metric %s, %d trees, best iteration %d; want binary_logloss and %d", bp.Metric, len(best.Trees), best.BestIteration, c.BestIteration)
	}
	if got := logLoss(best.PredictRaw(valid.X, 2), valid.Label); math.Abs(got-c.ValidLogLoss) > 1e-12 {
		t.Errorf("returned model's validation log-loss %v, point's %v", got, c.ValidLogLoss)
	}
	// Stage by stage: the points of a stage differ from the incumbent at its start
	// in their stage's parameter only.
	incumbent := GridPoint{NumLeaves: 4, MinDataInLeaf: 20, LambdaL2: 0, FeatureFraction: 1, ValidLogLoss: math.Inf(1)}
	stage := ""
	var start GridPoint
	for i, pt := range points {
		if pt.Stage != stage {
			stage, start = pt.Stage, incumbent
		}
		diff := map[string]bool{
			"num_leaves": pt.NumLeaves != start.NumLeaves, "min_data_in_leaf": pt.MinDataInLeaf != start.MinDataInLeaf,
			"lambda_l2": pt.LambdaL2 != start.LambdaL2, "feature_fraction": pt.FeatureFraction != start.FeatureFraction,
		}
		axis := strings.TrimSuffix(pt.Stage, "_again")
		if _, ok := diff[axis]; !ok {
			t.Fatalf("point %d: unknown stage %q", i, pt.Stage)
		}
		for name, changed := range diff {
			if changed && name != axis {
				t.Errorf("point %d (stage %s) changed %s from the incumbent %+v", i, pt.Stage, name, start)
			}
		}
		if pt.ValidLogLoss < incumbent.ValidLogLoss {
			incumbent = pt
		}
	}
	if incumbent.ValidLogLoss != c.ValidLogLoss {
		t.Errorf("replayed search ends at %+v, chosen %+v", incumbent, c)
	}
}

func TestTrainErrors(t *testing.T) {
	d := Synthetic(100, 20, 0.2, 1)
	for i := range d.Label {
		d.Label[i] = false
	}
	if _, err := Train(context.Background(), d, nil, DefaultParams(), nil); !errors.Is(err, ErrOneClass) {
		t.Errorf("all-negative training set: %v, want ErrOneClass", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d = Synthetic(100, 20, 0.2, 1)
	if _, err := Train(ctx, d, nil, DefaultParams(), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v, want context.Canceled", err)
	}
}

func TestParamsShapeTrees(t *testing.T) {
	d := Synthetic(3000, 100, 0.08, 13)
	tests := []struct {
		name  string
		set   map[string]string
		check func(t *testing.T, m *Model)
	}{
		{"max_depth 1 gives stumps", map[string]string{"max_depth": "1"}, func(t *testing.T, m *Model) {
			for i, tr := range m.Trees {
				if tr.NumLeaves() != 2 {
					t.Fatalf("tree %d has %d leaves, want 2", i, tr.NumLeaves())
				}
			}
		}},
		{"num_leaves caps growth", map[string]string{"num_leaves": "4"}, func(t *testing.T, m *Model) {
			for i, tr := range m.Trees {
				if tr.NumLeaves() > 4 {
					t.Fatalf("tree %d has %d leaves, want <= 4", i, tr.NumLeaves())
				}
			}
		}},
		{"min_gain_to_split stops training", map[string]string{"min_gain_to_split": "1e9"}, func(t *testing.T, m *Model) {
			if len(m.Trees) != 1 || m.Trees[0].NumLeaves() != 1 {
				t.Fatalf("%d trees, first with %d leaves; want one constant tree", len(m.Trees), m.Trees[0].NumLeaves())
			}
		}},
		{"min_data_in_leaf bounds leaves", map[string]string{"min_data_in_leaf": "400"}, func(t *testing.T, m *Model) {
			for i, tr := range m.Trees {
				for j, n := range tr.LeafCount {
					if n < 300 { // counts are estimated from hessians during the search
						t.Fatalf("tree %d leaf %d holds %d rows, want about 400 or more", i, j, n)
					}
				}
			}
		}},
		{"is_unbalance raises scores", map[string]string{"is_unbalance": "true"}, func(t *testing.T, m *Model) {
			base, err := Train(context.Background(), d, nil, smallParams(), nil)
			if err != nil {
				t.Fatal(err)
			}
			mean := func(v []float64) (s float64) {
				for _, x := range v {
					s += x
				}
				return s / float64(len(v))
			}
			if a, b := mean(m.Predict(d.X, 2)), mean(base.Predict(d.X, 2)); a <= b {
				t.Fatalf("mean probability %v with is_unbalance, %v without; want higher", a, b)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := smallParams()
			p.NumIterations = 10
			for k, v := range tt.set {
				if err := p.Set(k, v); err != nil {
					t.Fatal(err)
				}
			}
			m, err := Train(context.Background(), d, nil, p, nil)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, m)
		})
	}
}

func TestParamsSet(t *testing.T) {
	tests := []struct {
		name, value string
		ok          bool
		check       func(p Params) bool
	}{
		{"eta", "0.05", true, func(p Params) bool { return p.LearningRate == 0.05 }},
		{"max_leaves", "63", true, func(p Params) bool { return p.NumLeaves == 63 }},
		{"subsample", "0.8", true, func(p Params) bool { return p.BaggingFraction == 0.8 }},
		{"colsample_bytree", "0.5", true, func(p Params) bool { return p.FeatureFraction == 0.5 }},
		{"reg_lambda", "2", true, func(p Params) bool { return p.LambdaL2 == 2 }},
		{"objective", "binary", true, nil},
		{"objective", "regression", false, nil},
		{"num_leaves", "1", false, nil},
		{"feature_fraction", "0", false, nil},
		{"learning_rate", "x", false, nil},
		{"no_such_parameter", "1", false, nil},
		{"min_child_weight", "NaN", false, nil},
		{"lambda_l2", "+Inf", false, nil},
	}
	for _, tt := range tests {
		p := DefaultParams()
		err := p.Set(tt.name, tt.value)
		if (err == nil) != tt.ok {
			t.Errorf("Set(%s, %s) error %v, want ok=%v", tt.name, tt.value, err, tt.ok)
		}
		if err == nil && tt.check != nil && !tt.check(p) {
			t.Errorf("Set(%s, %s) left %+v", tt.name, tt.value, p)
		}
	}
	if d := DefaultParams(); d.NumIterations != 100 || d.NumLeaves != 31 || d.MinDataInLeaf != 20 || d.MaxBin != 255 || d.MinSumHessianInLeaf != 1e-3 {
		t.Errorf("defaults %+v differ from LightGBM's", d)
	}
}
