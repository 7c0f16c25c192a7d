package baseline

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/claims/synth"
	"github.com/fedclaims/fedclaims/tasks"
)

func TestCheckSystems(t *testing.T) {
	tests := []struct {
		name string
		task tasks.Task
		have []string
		want string // "" when the task can be decided
	}{
		{"same system", tasks.Task{Prefixes: []string{"ICD10//E11"}}, []string{"ATC", "ICD10"}, ""},
		{"ICD10 prefix on ICD10CM data", tasks.Task{Prefixes: []string{"ICD10//E11"}}, []string{"ICD10CM"}, ""},
		{"one of two systems present", tasks.Task{Prefixes: []string{"ICD9CM//250", "ATC//A10"}}, []string{"ATC"}, ""},
		{"absent", tasks.Task{Prefixes: []string{"ICD10//E11"}}, []string{"ATC", "ICD9CM"},
			"no event in the data has code system ICD10 or ICD10CM (the data has ATC, ICD9CM)"},
		{"exact system", tasks.Task{Prefixes: []string{"ICD10//E11"}, ExactSystem: true}, []string{"ICD10CM"},
			"no event in the data has code system ICD10 (the data has ICD10CM)"},
		{"no data", tasks.Task{Prefixes: []string{"ATC//A10"}}, nil, "no event in the data has code system ATC (the data has no coded events)"},
		{"prefix without a system", tasks.Task{Prefixes: []string{"E11"}}, []string{"ICD10"}, `prefix "E11" has no code system`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkSystems(&tt.task, tt.have)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("checkSystems = %q, want %q", got, tt.want)
			}
		})
	}
}

// handCohort is a cohort built without a labeler: rows of a synthetic matrix, in
// splits by row number, labelled per task by label(task, row, split, planted).
func handCohort(t *testing.T, ts []tasks.Task, label func(task, row int, s tasks.Split, planted bool) tasks.Label) (*Cohort, *tasks.Labeler) {
	t.Helper()
	d := Synthetic(1500, 80, 0.06, 21)
	c := &Cohort{X: d.X, Features: FeaturesTime, Systems: []string{"ATC", "ICD10"}}
	for j := range d.X.NumCols {
		c.Names = append(c.Names, fmt.Sprintf("c%d", j))
	}
	for i := range d.X.Rows() {
		s := tasks.Train
		switch i % 5 {
		case 3:
			s = tasks.Validation
		case 4:
			s = tasks.Test
		}
		ex := tasks.Example{SubjectID: int64(1000 + i), Split: s, Labels: make([]tasks.Label, len(ts))}
		for ti := range ts {
			ex.Labels[ti] = label(ti, i, s, d.Label[i])
		}
		c.Examples = append(c.Examples, ex)
	}
	l, err := tasks.NewLabeler(ts, tasks.Options{End: micros(2024, 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return c, l
}

func planted(b bool) tasks.Label {
	if b {
		return tasks.Positive
	}
	return tasks.Negative
}

func TestRunTasksSkips(t *testing.T) {
	task := func(name, prefix string) tasks.Task {
		return tasks.Task{Name: name, Kind: tasks.Disease, Prefixes: []string{prefix}, HorizonDays: 365, LookbackDays: 365}
	}
	ts := []tasks.Task{
		task("decided", "ICD10//E11"),
		task("no_valid_positive", "ICD10//I50"),
		task("no_train_negative", "ICD10//N18"),
		task("other_system", "ICD9CM//250"),
		task("test_one_class", "ATC//C10AA"),
		task("unlabelled_test", "ATC//A10BH"),
	}
	c, l := handCohort(t, ts, func(ti, i int, s tasks.Split, y bool) tasks.Label {
		switch ts[ti].Name {
		case "no_valid_positive", "test_one_class":
			want := tasks.Validation
			if ts[ti].Name == "test_one_class" {
				want = tasks.Test
			}
			if s == want {
				return tasks.Negative
			}
		case "no_train_negative":
			if s == tasks.Train {
				return tasks.Positive
			}
		case "unlabelled_test":
			if s == tasks.Test {
				return tasks.ExcludedPrior
			}
		}
		return planted(y)
	})
	p := smallParams()
	p.NumIterations = 15
	runs, skipped, err := RunTasks(context.Background(), c, l, TaskOptions{Params: p})
	if err != nil {
		t.Fatal(err)
	}
	var nTest, posTest int
	for _, ex := range c.Examples {
		if ex.Split == tasks.Test {
			nTest++
			if ex.Labels[0] == tasks.Positive {
				posTest++
			}
		}
	}
	wantSkipped := []Skipped{
		{Name: "no_valid_positive", Kind: "disease", Reason: "the validation split has no positive examples among 300 labelled patients", NTest: nTest, PositivesTest: posTest},
		{Name: "no_train_negative", Kind: "disease", Reason: "the train split has no negative examples among 900 labelled patients", NTest: nTest, PositivesTest: posTest},
		{Name: "other_system", Kind: "disease", Reason: "no event in the data has code system ICD9CM (the data has ATC, ICD10)", NTest: nTest, PositivesTest: posTest},
		{Name: "unlabelled_test", Kind: "disease", Reason: "the test split has no labelled patients"},
	}
	if len(skipped) != len(wantSkipped) {
		t.Fatalf("skipped %+v, want %+v", skipped, wantSkipped)
	}
	for i, want := range wantSkipped {
		if skipped[i] != want {
			t.Errorf("skipped[%d] = %+v, want %+v", i, skipped[i], want)
		}
	}
	if len(runs) != 2 || runs[0].Predictions.Name != "decided" || runs[1].Predictions.Name != "test_one_class" {
		t.Fatalf("%d runs, want decided and test_one_class", len(runs))
	}
	for _, r := range runs {
		pr := r.Predictions
		if len(pr.Labels) != nTest || len(pr.Patient) != nTest || len(pr.Scores["baseline"]) != nTest {
			t.Errorf("%s: %d labels, %d patients, %d scores; want %d each", pr.Name, len(pr.Labels), len(pr.Patient), len(pr.Scores["baseline"]), nTest)
		}
		if r.Model.Params.Metric != "binary_logloss" || r.Model.BestIteration == 0 || r.Grid != nil {
			t.Errorf("%s: metric %s, best iteration %d, %d grid points; want early stopping on binary_logloss without a grid",
				pr.Name, r.Model.Params.Metric, r.Model.BestIteration, len(r.Grid))
		}
	}
	for _, y := range runs[1].Predictions.Labels {
		if y {
			t.Fatal("test_one_class has a test positive")
		}
	}
}

// NewCohort does not fail on a task whose code system the data lacks; RunTasks
// lists it, with its reason, and runs the others, on the time features.
func TestCohortMissingSystem(t *testing.T) {
	g, err := synth.New(synth.Config{Hospitals: 1, Patients: 2000, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var patients []*claims.Patient
	var end int64
	for i := range g.Hospitals()[0].Patients {
		p := g.Patient(0, i)
		for _, e := range p.Events {
			end = max(end, e.Time)
		}
		patients = append(patients, p)
	}
	ts := tasks.Default()[:2]
	ts = append(ts, tasks.Task{Name: "icd9_diabetes", Kind: tasks.Disease, Prefixes: []string{"ICD9CM//250"}, HorizonDays: 730, LookbackDays: 365})
	l, err := tasks.NewLabeler(ts, tasks.Options{Seed: 1, End: end + microsPerDay})
	if err != nil {
		t.Fatal(err)
	}
	c, f, err := NewCohort(patients, l, 5, FeaturesTime, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c.Features != FeaturesTime || f.Set != FeaturesTime || len(c.Names) != c.X.NumCols || c.X.NumCols != 5*len(c.Vocab)+3 {
		t.Fatalf("features %s/%s, %d names, %d columns, %d codes", c.Features, f.Set, len(c.Names), c.X.NumCols, len(c.Vocab))
	}
	if !strings.HasPrefix(c.Names[0], "count:") {
		t.Errorf("first column %q, want a count: column", c.Names[0])
	}
	p := smallParams()
	p.NumIterations = 10
	runs, skipped, err := RunTasks(context.Background(), c, l, TaskOptions{Params: p})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs)+len(skipped) != len(ts) {
		t.Fatalf("%d runs and %d skipped for %d tasks", len(runs), len(skipped), len(ts))
	}
	last := skipped[len(skipped)-1]
	if last.Name != "icd9_diabetes" || !strings.HasPrefix(last.Reason, "no event in the data has code system ICD9CM (the data has ") {
		t.Errorf("last skipped %+v, want icd9_diabetes for its code system", last)
	}
	if len(runs) == 0 {
		t.Errorf("no task ran; skipped %+v", skipped)
	}
}
