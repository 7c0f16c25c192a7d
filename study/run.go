package study

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/eval/pipeline"
	"github.com/fedclaims/fedclaims/internal/jsonfile"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/sweep"
	"github.com/fedclaims/fedclaims/tasks"
)

// Files and directories under a study's output directory.
const (
	ResultFile    = "study.json"
	ReportFile    = "study.md"
	mainDir       = "main"             // the consortium: scales, central, site-alone, recipe
	shuffledDir   = "control-shuffled" // the shuffled-visits control
	temporal0Dir  = "control-temporal0"
	scalesDir     = "scales" // the scales as a sweep: sweep.json, sweep.md, its figures
	labelEffFile  = "label_efficiency.json"
	siteDirPrefix = "site-"
)

// Options are how Run runs, apart from what it runs.
type Options struct {
	Log *slog.Logger
	// Binary is the fedclaims executable a federated study starts as the
	// aggregator and the sites; empty means this process's own executable.
	Binary string
}

// Run runs the study c into dir, resuming from every arm already finished there,
// and returns what it wrote to dir/study.json.
func Run(ctx context.Context, c *Config, dir string, o Options) (*Result, error) {
	start := time.Now()
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	if err := sweep.ClaimDir(dir, c); err != nil {
		return nil, err
	}
	labelled, pretrainOnly, err := sweep.SiteDirs(ctx, c.Data, dir)
	if err != nil {
		return nil, err
	}
	ts := tasks.Default()
	if c.Tasks != "" {
		if ts, err = tasks.ReadFile(c.Tasks); err != nil {
			return nil, fmt.Errorf("field tasks: %w", err)
		}
	}
	opts := c.PipelineOptions(log)
	spec := sweep.WorkspaceSpec{Dir: filepath.Join(dir, mainDir), Labelled: labelled, PretrainOnly: pretrainOnly,
		VocabMinCount: c.Data.VocabMinCount, Tasks: ts, Pipeline: opts, Pretrain: c.Pretrain}
	main, err := sweep.Prepare(ctx, spec, log)
	if err != nil {
		return nil, err
	}
	primary := choosePrimary(main, c.Primary)
	for _, bt := range main.Baseline {
		n := eval.Positives(bt.Labels)
		log.Info("power before training", "task", bt.Name, "primary", primary[bt.Name], "positives_test", n,
			"auprc_diff_halfwidth", eval.HalfWidth(n))
	}

	a := &arms{c: c, o: o, log: log, main: main}
	// Chosen before any training, so that a misspelt site stops the study at once.
	site, err := a.smallestSite(c.SiteAlone.Site, labelled)
	if err != nil {
		return nil, err
	}
	res := &Result{Mode: c.Mode, Sites: baseNames(labelled), PretrainOnlySites: baseNames(pretrainOnly),
		Patients: len(main.Patients), PretrainingHistories: len(main.Train), VocabSize: main.Vocab.Len(),
		Alpha: c.Alpha, Margin: *c.Margin, PrimaryRule: primaryRule, Test: testText}

	// The scales, on one budget, in the study's mode.
	var scales []sweep.PresetResult
	for _, p := range c.Presets {
		r, err := a.run(ctx, main, p, p.Name, c.Mode, 0, c.Pretrain.TimeBuckets())
		if err != nil {
			return nil, err
		}
		scales = append(scales, *r)
	}
	encoders := slices.Clone(scales)
	if c.Mode == sweep.ModeFederated {
		r, err := a.centralArm(ctx, c.Central)
		if err != nil {
			return nil, err
		}
		encoders = append(encoders, *r)
	}
	siteID := filepath.Base(labelled[site])
	alone, err := a.run(ctx, main, a.preset(c.SiteAlone.Scale), c.SiteAlone.Scale+"-alone-"+siteID, sweep.ModeSiteAlone, site, c.Pretrain.TimeBuckets())
	if err != nil {
		return nil, err
	}
	encoders = append(encoders, *alone)

	rule := sweep.Rule{Margin: *c.Margin, Alpha: c.Alpha, Resamples: c.Eval.Bootstrap, Seed: c.Seed}
	sw, err := sweep.Assemble(c.Mode, labelled, len(main.Patients), main.Vocab.Len(), rule, scales, main.Baseline)
	if err != nil {
		return nil, err
	}
	sw.Skipped = main.Cohort.Skipped
	if err := os.MkdirAll(filepath.Join(dir, scalesDir), 0o755); err != nil {
		return nil, err
	}
	if err := sw.Save(filepath.Join(dir, scalesDir)); err != nil {
		return nil, err
	}
	var tests int
	if res.Tasks, tests, err = mainTable(main, encoders, sw.Recommendations, primary, c); err != nil {
		return nil, err
	}
	res.Resamples = c.Eval.Bootstrap
	res.PHolmFloor = float64(tests) / float64(c.Eval.Bootstrap+1)
	if res.PHolmFloor >= c.Alpha {
		log.Warn("the main table cannot show significance: raise eval.bootstrap", "tests", tests,
			"resamples", c.Eval.Bootstrap, "p_holm_floor", res.PHolmFloor, "alpha", c.Alpha)
	}
	res.Skipped = main.Cohort.Skipped

	if res.Recipe, err = a.recipe(ctx, primary); err != nil {
		return nil, err
	}
	if res.SiteAlone, err = a.siteComparison(ctx, dir, labelled[site], scaleRun(scales, c.SiteAlone.Scale), alone); err != nil {
		return nil, err
	}
	if res.Controls, err = a.controls(ctx, dir, primary); err != nil {
		return nil, err
	}
	if res.LabelEfficiency, err = a.labelEfficiency(ctx, dir, scaleRun(scales, c.LabelEfficiency.Scale), primary); err != nil {
		return nil, err
	}
	res.Floors = floors(res, c)
	res.WallSeconds = time.Since(start).Seconds()
	if err := res.Save(dir); err != nil {
		return nil, err
	}
	return res, nil
}

// arms runs the study's encoders.
type arms struct {
	c    *Config
	o    Options
	log  *slog.Logger
	main *sweep.Workspace
}

// centralArm is scale pretrained centrally in the consortium's workspace: the
// scale's own arm in a central study, else NAME-central (run once, then read back).
func (a *arms) centralArm(ctx context.Context, scale string) (*sweep.PresetResult, error) {
	name := scale + "-central"
	if a.c.Mode == sweep.ModeCentral {
		name = scale
	}
	return a.run(ctx, a.main, a.preset(scale), name, sweep.ModeCentral, 0, a.c.Pretrain.TimeBuckets())
}

func (a *arms) preset(name string) sweep.PresetSpec {
	for _, p := range a.c.Presets {
		if p.Name == name {
			return p
		}
	}
	panic("study: validated scale " + name + " missing")
}

// run pretrains spec as name in w (or reads it back) and scores it there.
func (a *arms) run(ctx context.Context, w *sweep.Workspace, spec sweep.PresetSpec, name, mode string, site, timeBuckets int) (*sweep.PresetResult, error) {
	return w.Run(ctx, sweep.PresetRun{Spec: spec, Name: name, Mode: mode, Site: site, Budget: a.c.Budget, Seed: a.c.Seed,
		TimeBuckets: timeBuckets, Federated: a.c.Federated, Binary: a.o.Binary}, a.log.With("arm", name))
}

// smallestSite is the index of the named labelled site, or, unnamed, of the one
// with the fewest training patients: the site that pretraining with others should
// help most.
func (a *arms) smallestSite(name string, labelled []string) (int, error) {
	if name != "" {
		for i, dir := range labelled {
			if filepath.Base(dir) == name {
				return i, nil
			}
		}
		return 0, fmt.Errorf("field site_alone.site: %q is none of the labelled sites %v", name, baseNames(labelled))
	}
	counts := make([]int, len(labelled))
	for _, s := range a.main.TrainSite {
		if s < len(counts) { // pretraining-only sites follow the labelled ones
			counts[s]++
		}
	}
	best := 0
	for i, n := range counts {
		if n < counts[best] {
			best = i
		}
	}
	return best, nil
}

func scaleRun(rs []sweep.PresetResult, name string) *sweep.PresetResult {
	for i := range rs {
		if rs[i].Name == name {
			return &rs[i]
		}
	}
	return nil
}

// choosePrimary marks the n tasks with the highest prevalence in the training
// split: the study's claims are judged on them, and the test split never chooses.
func choosePrimary(w *sweep.Workspace, n int) map[string]bool {
	type tp struct {
		name string
		prev float64
	}
	index := map[string]int{}
	for i, t := range w.Cohort.Labeler.Tasks() {
		index[t.Name] = i
	}
	var all []tp
	for _, bt := range w.Baseline {
		ti := index[bt.Name]
		pos, lab := 0, 0
		for _, ex := range w.Cohort.Cohort.Examples {
			if ex.Split != tasks.Train || !ex.Labels[ti].Labelled() {
				continue
			}
			lab++
			if ex.Labels[ti] == tasks.Positive {
				pos++
			}
		}
		if lab > 0 {
			all = append(all, tp{bt.Name, float64(pos) / float64(lab)})
		}
	}
	slices.SortStableFunc(all, func(x, y tp) int { return cmp.Compare(y.prev, x.prev) })
	out := map[string]bool{}
	for i := range min(n, len(all)) {
		out[all[i].name] = true
	}
	return out
}

const primaryRule = "the tasks with the highest prevalence among the training split's labelled examples (the test split never chooses); the floors are judged on them because rarer tasks cannot reach the test positives a paired interval needs at this size"

func baseNames(dirs []string) []string {
	out := make([]string, len(dirs))
	for i, d := range dirs {
		out[i] = filepath.Base(d)
	}
	return out
}

// recipe measures, on the validation split, what each change of the recipe does
// at the recipe scale: without time embeddings, with the other windowing, and the
// head's three poolings, against the full recipe's central encoder.
func (a *arms) recipe(ctx context.Context, primary map[string]bool) ([]RecipeChange, error) {
	c := a.c
	ref, err := a.centralArm(ctx, c.Recipe.Scale)
	if err != nil {
		return nil, err
	}
	spec := a.preset(c.Recipe.Scale)
	out := []RecipeChange{recipeRow("full recipe ("+ref.Name+")", ref, ref, primary, true)}

	r, err := a.run(ctx, a.main, spec, c.Recipe.Scale+"-notime", sweep.ModeCentral, 0, 0)
	if err != nil {
		return nil, err
	}
	out = append(out, recipeRow("without time embeddings", r, ref, primary, false))

	flipped := c.Pretrain
	flipped.RandomCut = !flipped.RandomCut
	ws := a.main.Spec
	ws.Pretrain = flipped
	other, err := sweep.Prepare(ctx, ws, a.log)
	if err != nil {
		return nil, err
	}
	name, what := c.Recipe.Scale+"-wholehistory", "windows at the end of the record instead of random cuts"
	if flipped.RandomCut {
		name, what = c.Recipe.Scale+"-randomcut", "windows ending at random cuts instead of the end of the record"
	}
	if r, err = a.run(ctx, other, spec, name, sweep.ModeCentral, 0, c.Pretrain.TimeBuckets()); err != nil {
		return nil, err
	}
	out = append(out, recipeRow(what, r, ref, primary, false))

	m, v, err := a.main.Model(ref.Name)
	if err != nil {
		return nil, err
	}
	for _, pool := range []model.Pooling{model.PoolCLS, model.PoolMean, model.PoolBoth} {
		o := a.main.Spec.Pipeline
		o.Pooling = pool
		scored, err := a.main.ScoreWith(ctx, m, v, o)
		if err != nil {
			return nil, fmt.Errorf("recipe: pooling %s: %w", pool, err)
		}
		pr := *ref
		pr.Tasks = scored
		out = append(out, recipeRow("head pooling "+string(pool), &pr, ref, primary, false))
	}
	return out, nil
}

func recipeRow(change string, r, ref *sweep.PresetResult, primary map[string]bool, isRef bool) RecipeChange {
	row := RecipeChange{Change: change, Arm: r.Name, ValidMLMLoss: r.FinalLoss()}
	var sum, refSum float64
	n := 0
	for k, t := range r.Tasks {
		if primary[t.Name] {
			sum += t.ValidLogLoss
			refSum += ref.Tasks[k].ValidLogLoss
			n++
		}
	}
	if n > 0 {
		row.ValidLogLossPrimary = sum / float64(n)
		if !isRef {
			d := row.ValidLogLossPrimary - refSum/float64(n)
			row.VsFullRecipe = &d
		}
	}
	return row
}

// siteComparison scores the federated encoder and the site's own on the site's
// data alone (its heads trained and tested there), and compares them paired.
func (a *arms) siteComparison(ctx context.Context, dir, siteDir string, fed, alone *sweep.PresetResult) (*SiteComparison, error) {
	ws := a.main.Spec
	ws.Dir = filepath.Join(dir, siteDirPrefix+filepath.Base(siteDir))
	ws.Labelled, ws.PretrainOnly = []string{siteDir}, nil
	ws.Vocab = a.main.VocabBytes
	sw, err := sweep.Prepare(ctx, ws, a.log)
	if err != nil {
		return nil, err
	}
	score := func(name string) ([]sweep.PresetTask, error) {
		m, v, err := a.main.Model(name)
		if err != nil {
			return nil, err
		}
		return sw.Score(ctx, m, v)
	}
	fs, err := score(fed.Name)
	if err != nil {
		return nil, err
	}
	as, err := score(alone.Name)
	if err != nil {
		return nil, err
	}
	sc := &SiteComparison{Site: filepath.Base(siteDir), Federated: fed.Name, SiteAlone: alone.Name, Patients: len(sw.Patients)}
	bs := eval.Bootstrap{Resamples: a.c.Eval.Bootstrap, Seed: a.c.Seed}
	var family []*eval.Comparison
	for k, bt := range sw.Baseline {
		row := SiteTask{Name: bt.Name, PositivesTest: eval.Positives(bt.Labels), Federated: fs[k].Metrics.AUPRC, SiteAlone: as[k].Metrics.AUPRC, Baseline: bt.Metrics.AUPRC}
		cmp, untested, err := compare(fs[k].Scores, as[k].Scores, bt, bs)
		if err != nil {
			return nil, fmt.Errorf("site %s: task %s: %s against %s: %w", sc.Site, bt.Name, fed.Name, alone.Name, err)
		}
		if cmp != nil {
			family = append(family, cmp)
		}
		row.Comparison, row.Undecided = cmp, untested
		sc.Tasks = append(sc.Tasks, row)
	}
	eval.HolmBoth(family)
	for k := range sc.Tasks {
		if c := sc.Tasks[k].Comparison; c != nil {
			sc.Tasks[k].Verdict = verdict(c, a.c.Alpha, "federated", "site-alone")
		}
	}
	return sc, nil
}

// controls runs the control experiments at the controls scale, centrally, and
// sets each beside the same arm on the consortium's own data.
func (a *arms) controls(ctx context.Context, dir string, primary map[string]bool) (Controls_, error) {
	c := a.c
	var out Controls_
	spec := a.preset(c.Controls.Scale)
	ref, err := a.centralArm(ctx, c.Controls.Scale)
	if err != nil {
		return out, err
	}
	name := ref.Name
	control := func(ws sweep.WorkspaceSpec, what string) (*Control, error) {
		w, err := sweep.Prepare(ctx, ws, a.log)
		if err != nil {
			return nil, err
		}
		r, err := a.run(ctx, w, spec, name, sweep.ModeCentral, 0, c.Pretrain.TimeBuckets())
		if err != nil {
			return nil, err
		}
		return controlTable(what, w, r, a.main, ref, primary, c)
	}
	// The consortium's own workspace, but for the one thing each control changes.
	base := a.main.Spec
	if *c.Controls.ShuffledVisits {
		ws := base
		ws.Dir = filepath.Join(dir, shuffledDir)
		seed := c.Seed
		ws.Transform = func(p *claims.Patient) { claims.ShuffleVisits(p, seed) }
		ctl, err := control(ws, "every history's visits in shuffled order (dates and codes kept), in pretraining, heads and test")
		if err != nil {
			return out, fmt.Errorf("control shuffled_visits: %w", err)
		}
		out.ShuffledVisits = ctl
	}
	if *c.Controls.TemporalStrength0 {
		d := c.Data
		s := *d.Synthetic
		zero := 0.0
		s.TemporalStrength = &zero
		d.Synthetic = &s
		cdir := filepath.Join(dir, temporal0Dir)
		l0, p0, err := sweep.SiteDirs(ctx, d, cdir)
		if err != nil {
			return out, fmt.Errorf("control temporal_strength_0: %w", err)
		}
		ws := base
		ws.Dir, ws.Labelled, ws.PretrainOnly = cdir, l0, p0
		ctl, err := control(ws, "the same generator and seed with temporal_strength 0 (no order or recency effects)")
		if err != nil {
			return out, fmt.Errorf("control temporal_strength_0: %w", err)
		}
		out.TemporalStrength0 = ctl
	}
	return out, nil
}

// labelEfficiency is the label-efficiency curve of the scale's encoder on the
// consortium's cohort, primary tasks only, computed once per study directory.
func (a *arms) labelEfficiency(ctx context.Context, dir string, scale *sweep.PresetResult, primary map[string]bool) ([]pipeline.LabelCurve, error) {
	path := filepath.Join(dir, labelEffFile)
	var curves []pipeline.LabelCurve
	if err := jsonfile.Read(path, &curves); err == nil {
		return curves, nil
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	m, v, err := a.main.Model(scale.Name)
	if err != nil {
		return nil, err
	}
	// The primary tasks only: every curve refits the baseline's grid at each size.
	cohort := *a.main.Cohort
	cohort.Runs = nil
	for _, run := range a.main.Cohort.Runs {
		if primary[run.Predictions.Name] {
			cohort.Runs = append(cohort.Runs, run)
		}
	}
	curves, err = cohort.LabelEfficiency(ctx, m, v, a.c.LabelEfficiency.Sizes, a.main.Spec.Pipeline)
	if err != nil {
		return nil, fmt.Errorf("label efficiency: %w", err)
	}
	if err := jsonfile.Write(path, curves); err != nil {
		return nil, err
	}
	return curves, nil
}
