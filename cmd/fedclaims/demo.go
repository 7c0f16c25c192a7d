package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/eval"
	"github.com/fedclaims/fedclaims/eval/pipeline"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/internal/atomicfile"
	"github.com/fedclaims/fedclaims/localfed"
	"github.com/fedclaims/fedclaims/tasks"
)

// modelSiteEncoder names, in the demo's reports, the encoder pretrained on one
// site's data alone; eval.ModelEncoder there is the federated encoder.
const modelSiteEncoder = "site_encoder"

// demoMarker marks a directory as the demo's own, so a rerun may replace it.
const demoMarker = ".fedclaims-demo"

// demoOptions are fedclaims demo's settings.
type demoOptions struct {
	out                       string
	hospitals, patients       int
	rounds, localSteps, batch int
	seq, bootstrap            int
	preset, secureaggPreset   string
	seed                      uint64
	timeout                   time.Duration
}

func newDemoCmd(a *app) *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo [--out DIR]",
		Short: "Run a whole federation on this machine on synthetic hospitals and print the evaluation table",
		Long: `Synthesises three hospitals of different kinds (a general hospital, a cancer centre,
a clinic), issues the consortium's certificates, and starts the aggregator and one site
agent per hospital as separate processes on loopback with mutual TLS. The sites build
the secure-aggregation keys and the federated vocabulary, then pretrain the encoder
for --rounds rounds of --local-steps steps each, every update threshold-encrypted.
Then each site, on its own data, fine-tunes frozen-encoder heads on the federated
encoder and on the same encoder pretrained on that site alone (the same number of
steps), trains the gradient-boosting baseline, and scores all three on its test split
with bootstrap intervals. Prints one table, per task and site; writes DIR/demo.md,
DIR/demo.json, each site's report under DIR/eval/<site>/ and the processes' logs and
audit logs under DIR/federation/. A DIR that an earlier demo wrote is replaced.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), a, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "out/demo", "directory for the federation, the reports and the table")
	f.IntVar(&o.hospitals, "hospitals", 3, "hospitals, one site each (a general hospital, a cancer centre and a clinic, in turn)")
	f.IntVar(&o.patients, "patients", 2500, "patients per hospital on average")
	f.IntVar(&o.rounds, "rounds", 4, "federated rounds")
	f.IntVar(&o.localSteps, "local-steps", 20, "local optimizer steps per site per round")
	f.IntVar(&o.batch, "batch", 16, "sequences per local step")
	f.IntVar(&o.seq, "seq", 128, "longest history in tokens, the most recent kept")
	f.StringVar(&o.preset, "preset", "2m", "encoder preset")
	f.StringVar(&o.secureaggPreset, "secureagg-preset", "", "CKKS parameter preset (default: the aggregator's)")
	f.IntVar(&o.bootstrap, "bootstrap", 200, "patient-level bootstrap resamples for the 95% intervals")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the data, the models and the evaluation")
	f.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up, and stop every process, after this long")
	return cmd
}

// demoRow is one line of the demo's table: one task at one site.
type demoRow struct {
	Task          string       `json:"task"`
	Kind          string       `json:"kind"`
	Site          string       `json:"site"`
	Archetype     string       `json:"archetype"`
	Prevalence    float64      `json:"prevalence"`
	NTest         int          `json:"n_test"`
	PositivesTest int          `json:"positives_test"`
	Federated     eval.Metrics `json:"federated_encoder"`
	SiteAlone     eval.Metrics `json:"site_encoder"`
	Baseline      eval.Metrics `json:"baseline"`
	// Comparison is the federated encoder minus the baseline (AUPRC), Holm-corrected
	// across the site's tasks; absent when the task could not be tested.
	Comparison *eval.Comparison `json:"comparison,omitempty"`
	Verdict    string           `json:"verdict"`
}

// demoRound is one federated round as the aggregator reports it, with the bytes
// each site uploaded, from the aggregator's audit log.
type demoRound struct {
	Round        uint64            `json:"round"`
	Contributors []string          `json:"contributors"`
	TrainLoss    float64           `json:"train_loss"`
	Seconds      float64           `json:"seconds"`
	UploadBytes  uint64            `json:"upload_bytes"`
	PerSite      map[string]uint64 `json:"upload_bytes_per_site"`
}

// demoResult is demo.json.
type demoResult struct {
	Sites    []demoSite         `json:"sites"`
	Rounds   []demoRound        `json:"rounds"`
	Rows     []demoRow          `json:"rows"`
	Seconds  map[string]float64 `json:"seconds"`
	Settings map[string]any     `json:"settings"`
}

type demoSite struct {
	ID        string `json:"id"`
	Archetype string `json:"archetype"`
	Patients  int    `json:"patients"`
}

func runDemo(ctx context.Context, a *app, o demoOptions) error {
	switch {
	case o.hospitals < 2:
		return fmt.Errorf("flag --hospitals: %d: a federation needs at least two", o.hospitals)
	case o.patients < 100:
		return fmt.Errorf("flag --patients: %d: too few to label and evaluate; use at least 100", o.patients)
	case o.rounds < 1 || o.localSteps < 1 || o.batch < 1:
		return fmt.Errorf("flags --rounds %d, --local-steps %d and --batch %d must be positive", o.rounds, o.localSteps, o.batch)
	case o.bootstrap < 1:
		return fmt.Errorf("flag --bootstrap: %d must be positive", o.bootstrap)
	}
	if err := claimDemoDir(o.out); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	start := time.Now()
	seconds := map[string]float64{}
	phase := func(name string, since time.Time) { seconds[name] = time.Since(since).Seconds() }

	// 1. The federation, as processes on loopback.
	t := time.Now()
	// Sites of a thousand or two patients: a cap of 4096 gives them weights of a
	// third or so, which keeps the decryption noise, divided by the total weight, a
	// small fraction of the update (at the default cap of 65536 it would not be).
	agg := map[string]any{"local.learning_rate": 5e-4, "secureagg.weight_cap": 4096}
	if o.secureaggPreset != "" {
		agg["secureagg.preset"] = o.secureaggPreset
	}
	fed, err := localfed.Prepare(ctx, localfed.Options{
		Dir: filepath.Join(o.out, "federation"), Hospitals: o.hospitals, Patients: o.patients, Seed: o.seed,
		Federation: "demo", Rounds: o.rounds, LocalSteps: o.localSteps, BatchSize: o.batch,
		ModelPreset: o.preset, MaxLen: o.seq, Aggregator: agg, Log: a.log,
	})
	if err != nil {
		return err
	}
	phase("prepare", t)
	t = time.Now()
	fres, err := runFederation(ctx, a, fed)
	if err != nil {
		return err
	}
	phase("federation", t)
	final, ups := fres.Final, fres.Uploads
	res := demoResult{Seconds: seconds, Settings: map[string]any{
		"hospitals": o.hospitals, "patients": o.patients, "rounds": o.rounds, "local_steps": o.localSteps,
		"batch": o.batch, "seq": o.seq, "preset": o.preset, "seed": o.seed, "bootstrap": o.bootstrap,
		"heads": "frozen encoder, L2 logistic probe", "secure_aggregation": true,
	}}
	for _, h := range final.GetHistory() {
		r := demoRound{Round: h.GetRound(), Contributors: h.GetContributors(), TrainLoss: h.GetTrainLoss(),
			Seconds: h.GetDuration().AsDuration().Seconds(), UploadBytes: h.GetUploadBytes(), PerSite: map[string]uint64{}}
		for _, u := range ups {
			if u.Round == r.Round {
				r.PerSite[u.Site] += u.Bytes
			}
		}
		res.Rounds = append(res.Rounds, r)
	}
	for _, s := range fed.Sites {
		res.Sites = append(res.Sites, demoSite{ID: s.ID, Archetype: s.Archetype, Patients: s.Patients})
	}

	// 2. The same encoder pretrained on each site alone, for as many steps as the
	// site trained in the federation.
	t = time.Now()
	alone := map[string]string{}
	for _, s := range fed.Sites {
		ck := filepath.Join(o.out, "site-alone", s.ID)
		if err := pretrainAlone(ctx, a, s, ck, o); err != nil {
			return err
		}
		alone[s.ID] = ck
	}
	phase("site_alone_pretraining", t)

	// 3. Each site evaluates the three models on its own data.
	t = time.Now()
	bar := a.newProgress(len(fed.Sites), "evaluating at each site")
	for _, s := range fed.Sites {
		bar.Describe("evaluating at " + s.ID)
		rep, err := demoEval(ctx, a, s, alone[s.ID], filepath.Join(o.out, "eval", s.ID), o)
		if err != nil {
			return err
		}
		for _, tr := range rep.Tasks {
			res.Rows = append(res.Rows, demoRow{Task: tr.Name, Kind: tr.Kind, Site: s.ID, Archetype: s.Archetype,
				Prevalence: tr.Prevalence, NTest: tr.NTest, PositivesTest: tr.PositivesTest, Federated: tr.Models[eval.ModelEncoder],
				SiteAlone: tr.Models[modelSiteEncoder], Baseline: tr.Models[eval.ModelBaseline],
				Comparison: tr.Comparison, Verdict: tr.Verdict})
		}
		bar.Add(1)
	}
	bar.Finish()
	phase("evaluation", t)
	seconds["total"] = time.Since(start).Seconds()
	slices.SortStableFunc(res.Rows, func(x, y demoRow) int { return strings.Compare(x.Task, y.Task) })

	var md bytes.Buffer
	writeDemoMarkdown(&md, res)
	if err := atomicfile.WriteFile(filepath.Join(o.out, "demo.md"), md.Bytes(), 0o600); err != nil {
		return err
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(o.out, "demo.json"), append(js, '\n'), 0o600); err != nil {
		return err
	}
	return writeDemoTable(a.stdout, res)
}

// claimDemoDir makes dir ready for a demo: absent, empty, or an earlier demo's
// (which is removed). Anything else is refused rather than deleted.
func claimDemoDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("flag --out: %w", err)
	case len(entries) == 0:
	default:
		if _, err := os.Stat(filepath.Join(dir, demoMarker)); err != nil {
			return fmt.Errorf("flag --out: %s is not empty and not an earlier demo's directory; choose another", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("flag --out: removing the earlier demo: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("flag --out: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, demoMarker), []byte("written by fedclaims demo; the next demo replaces this directory\n"), 0o644)
}

// runFederation runs the processes until the final model is published and
// installed, following the aggregator's status on a progress bar, and stops them.
// The bar counts contributions, rounds × sites in all, so that it (and its ETA)
// moves inside a round as the sites' updates arrive, not only when a round ends.
func runFederation(ctx context.Context, a *app, fed *localfed.Federation) (*localfed.Result, error) {
	a.log.Info("starting the federation", "aggregator", fed.Addr, "sites", len(fed.Sites), "logs", filepath.Join(fed.Dir, "logs"),
		"status_page", "http://"+fed.MetricsAddr+"/")
	var bar progress
	perRound := max(len(fed.Sites), 1)
	res, err := fed.Run(ctx, func(st *fedclaimspb.StatusResponse) {
		if bar == nil {
			bar = a.newProgress(int(max(st.GetRounds(), 1))*perRound, "federation")
		}
		desc := strings.ToLower(strings.TrimPrefix(st.GetState().String(), "STATE_"))
		if st.GetPhase() != "" {
			desc += ": " + st.GetPhase()
		}
		done := len(st.GetHistory()) * perRound
		if st.GetState() == fedclaimspb.StatusResponse_STATE_TRAINING {
			// Rounds are counted as applied ones, not by id: an aborted or restarted
			// round spends an id, so ids can pass the number of rounds.
			n := min(len(st.GetHistory())+1, int(st.GetRounds()))
			desc = fmt.Sprintf("round %d/%d: %s", n, st.GetRounds(), st.GetPhase())
			if exp := st.GetRoundExpected(); exp > 0 {
				got := st.GetRoundContributions()
				desc = fmt.Sprintf("round %d/%d: %d/%d contributions, %.1f MiB (%s)", n, st.GetRounds(),
					got, exp, float64(st.GetRoundBytes())/(1<<20), st.GetPhase())
				// The round's share of the bar, scaled to the sites expected in case
				// it differs from the sites started.
				done += min(int(got)*perRound/int(exp), perRound)
			}
		}
		bar.Describe(desc)
		bar.Set(done)
	})
	if bar != nil {
		bar.Finish()
	}
	return res, err
}

// pretrainAlone pretrains the federation's encoder shape on one site's data alone,
// with the federated vocabulary and as many steps as the site trained in the
// federation, through `fedclaims pretrain` in a child process.
func pretrainAlone(ctx context.Context, a *app, s *localfed.Site, out string, o demoOptions) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	args := pretrainAloneArgs(s, out, o)
	fmt.Fprintf(a.stderr, "pretraining on %s alone\n", s.ID)
	cmd := exec.CommandContext(ctx, exe, args...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, a.stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pretraining on site %s alone (fedclaims %s): %w", s.ID, strings.Join(args, " "), err)
	}
	a.log.Info("pretrained on one site", "site", s.ID, "result", strings.TrimSpace(stdout.String()))
	return nil
}

// pretrainAloneArgs are the arguments of the site-alone `fedclaims pretrain`. It
// pretrains on the site's training split only, as the site agent does in the
// federation, since the demo's evaluation scores the test split under the default
// salt.
func pretrainAloneArgs(s *localfed.Site, out string, o demoOptions) []string {
	return []string{"pretrain", "--log-level", "warn",
		"--data", s.Data, "--vocab", s.Vocabulary(), "--preset", o.preset,
		"--steps", fmt.Sprint(o.rounds * o.localSteps), "--batch", fmt.Sprint(o.batch),
		"--seq", fmt.Sprint(o.seq), "--lr", "5e-4", "--seed", fmt.Sprint(o.seed), "--out", out}
}

// demoEval is fedclaims eval at one site with two encoders: the federated one (the
// site's installed final model) under eval.ModelEncoder, which the report tests
// against the baseline, and the site-alone one under modelSiteEncoder, all on the
// same rows, through package pipeline as fedclaims eval does.
func demoEval(ctx context.Context, a *app, s *localfed.Site, aloneDir, out string, o demoOptions) (*eval.Report, error) {
	po := pipeline.DefaultOptions()
	po.Seed, po.Resamples, po.Seq = o.seed, o.bootstrap, o.seq
	fedCk, err := loadEncoder(s.FinalModel())
	if err != nil {
		return nil, fmt.Errorf("site %s: the federated model: %w", s.ID, err)
	}
	aloneCk, err := loadEncoder(aloneDir)
	if err != nil {
		return nil, fmt.Errorf("site %s: the site-alone model: %w", s.ID, err)
	}
	patients, err := loadPatients(ctx, s.Data)
	if err != nil {
		return nil, err
	}
	return pipeline.Evaluate(ctx, pipeline.Evaluation{Data: s.Data, Patients: patients, Tasks: tasks.Default(), Out: out,
		Encoders: []pipeline.Scored{{Name: modelSiteEncoder, Checkpoint: aloneCk}, {Name: eval.ModelEncoder, Checkpoint: fedCk}}}, po)
}

// demoCell is an AUPRC with its interval, the AUPRC alone where the test split has
// too few positives for an interval, "-" where the model was not scored.
func demoCell(m eval.Metrics) string {
	switch {
	case m == (eval.Metrics{}):
		return "-"
	}
	return eval.FormatCI(m.AUPRC, m.AUPRCCI)
}

// demoDiff is the federated-minus-baseline difference with its interval and the
// Holm p-values of "federated better" and "baseline better", or "-" without one.
func demoDiff(r demoRow) string {
	if c := r.Comparison; c != nil {
		return fmt.Sprintf("%+.3f [%.3f, %.3f], p %.3g / %.3g", c.Diff, c.CI[0], c.CI[1], c.PHolm, c.PReverseHolm)
	}
	return "-"
}

// demoTableRows is the table of the rows the demo's data can decide: those with a
// paired comparison. The others are named by demoTooSmall.
func demoTableRows(res demoResult) [][]string {
	rows := [][]string{{"task", "kind", "site", "prevalence", "n", "positives", "federated AUPRC [95% CI]", "site-alone AUPRC [95% CI]", "baseline AUPRC [95% CI]", "federated - baseline [95% CI], Holm p (federated / baseline better)", "verdict"}}
	for _, r := range res.Rows {
		if r.Comparison == nil {
			continue
		}
		rows = append(rows, []string{r.Task, r.Kind, r.Site + " (" + r.Archetype + ")", fmt.Sprintf("%.3f", r.Prevalence),
			fmt.Sprint(r.NTest), fmt.Sprint(r.PositivesTest), demoCell(r.Federated), demoCell(r.SiteAlone), demoCell(r.Baseline), demoDiff(r), r.Verdict})
	}
	return rows
}

// writeDemoTable prints the table the demo ends with, then the rounds and timings.
// demoTooSmall is the line that names the rows too small to read: each task with
// its sites and their test positives, or why the site could not score it.
func demoTooSmall(res demoResult) string {
	var tasks []string
	bySite := map[string][]string{}
	decided := 0
	for _, r := range res.Rows {
		if r.Comparison != nil {
			decided++
			continue
		}
		if _, seen := bySite[r.Task]; !seen {
			tasks = append(tasks, r.Task)
		}
		bySite[r.Task] = append(bySite[r.Task], fmt.Sprintf("%s %d", r.Site, r.PositivesTest))
	}
	if len(tasks) == 0 {
		return ""
	}
	parts := make([]string, len(tasks))
	for i, t := range tasks {
		parts[i] = t + " (" + strings.Join(bySite[t], ", ") + ")"
	}
	return fmt.Sprintf("Too small to read, with each site's test positives (no interval or test below %d, or a split without positives): %s. %d of %d task-site rows could be tested.",
		eval.MinPositives, strings.Join(parts, "; "), decided, len(res.Rows))
}

func writeDemoTable(w io.Writer, res demoResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, row := range demoTableRows(res) {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if line := demoTooSmall(res); line != "" {
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w)
	for _, r := range res.Rounds {
		fmt.Fprintf(w, "round %d: %d sites, train loss %.3f, %.1fs, uploads %s\n", r.Round, len(r.Contributors), r.TrainLoss, r.Seconds, demoPerSite(r.PerSite))
	}
	_, err := fmt.Fprintf(w, "time: federation %.0fs, site-alone pretraining %.0fs, evaluation %.0fs, total %.0fs\n",
		res.Seconds["federation"], res.Seconds["site_alone_pretraining"], res.Seconds["evaluation"], res.Seconds["total"])
	return err
}

func demoPerSite(m map[string]uint64) string {
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %.1f MiB", id, float64(m[id])/(1<<20)))
	}
	return strings.Join(parts, ", ")
}

func writeDemoMarkdown(w *bytes.Buffer, res demoResult) {
	w.WriteString("# fedclaims demo\n\n")
	w.WriteString("Each row is one task evaluated at one site, on that site's own test split, where the split has the 10 positives a paired test needs; the line below the table names the rest (demo.json has every row). " +
		"AUPRC is average precision; intervals are 95% patient-level bootstrap intervals, stratified by outcome, and absent below 10 test positives. " +
		"The difference is the federated encoder minus the baseline under the same resamples, with its one-sided p-value Holm-corrected across the site's tasks; a verdict other than a tie needs p < 0.05. " +
		"Federated: the encoder pretrained by the federation with secure aggregation. " +
		"Site-alone: the same encoder shape and vocabulary pretrained on the site's data alone for as many steps. " +
		"Both encoders are frozen under an L2 logistic probe chosen on validation log-loss; the baseline is the gradient-boosting model on time-aware code counts, chosen on validation log-loss from its grid.\n\n")
	w.WriteString(eval.MarkdownTable(demoTableRows(res)))
	if line := demoTooSmall(res); line != "" {
		w.WriteString("\n" + line + "\n")
	}
	w.WriteString("\n| round | sites | train loss | seconds | upload bytes per site |\n|---|---|---|---|---|\n")
	for _, r := range res.Rounds {
		fmt.Fprintf(w, "| %d | %s | %.3f | %.1f | %s |\n", r.Round, strings.Join(r.Contributors, ", "), r.TrainLoss, r.Seconds, demoPerSite(r.PerSite))
	}
	fmt.Fprintf(w, "\nTime: federation %.0fs, site-alone pretraining %.0fs, evaluation %.0fs, total %.0fs.\n",
		res.Seconds["federation"], res.Seconds["site_alone_pretraining"], res.Seconds["evaluation"], res.Seconds["total"])
}
