// Package sweep makes model scale a measured choice. It pretrains the encoder at
// each preset of a sweep file on the same hospitals, fine-tunes and scores each
// preset's heads on every task exactly as fedclaims eval does (package
// eval/pipeline: same labels, splits and seeds, the baseline trained once), and
// recommends per task the smallest preset whose AUPRC is as good as the best's:
// within a tolerance, or not significantly worse by a one-sided paired bootstrap
// test (see Rule). It writes sweep.json, sweep.md and PNG plots, and resumes an
// interrupted sweep from the first unfinished preset.
//
// Pretraining is central (the model package's trainer on the union of the sites'
// training splits) or federated (package localfed: the real aggregator and site
// agents as processes on loopback, secure aggregation included). Evaluation is the
// same either way: on the pooled sites' labelled patients.
package sweep
