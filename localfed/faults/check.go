package faults

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/localfed"
	"github.com/fedclaims/fedclaims/model"
)

// check fills a finished (or failed) run's row from what the processes left: the
// aggregator's last status, every party's audit log and final model.
func (h *harness) check(f *localfed.Federation, final *fedclaimspb.StatusResponse, out *outcome) {
	res := out.Result
	problem := func(format string, args ...any) { res.Problems = append(res.Problems, fmt.Sprintf(format, args...)) }
	lost := false

	// Rounds and contributors, from the aggregator's last status.
	res.RoundsApplied = len(final.GetHistory())
	res.RoundIDs = final.GetRound()
	for _, r := range final.GetHistory() {
		res.Contributors = append(res.Contributors, slices.Sorted(slices.Values(r.GetContributors())))
		out.roundDur = append(out.roundDur, r.GetDuration().AsDuration().Round(time.Millisecond))
	}
	if res.RoundsApplied != res.RoundsPlanned {
		lost = true
		problem("%d of %d rounds applied", res.RoundsApplied, res.RoundsPlanned)
	}
	want := make([][]string, res.RoundsPlanned)
	if h.base != nil {
		want = h.base.Result.Contributors
	} else {
		for i := range want {
			want[i] = slices.Clone(out.sites)
		}
	}
	res.SameContributors = slices.EqualFunc(res.Contributors, want, slices.Equal[[]string])
	if !res.SameContributors {
		problem("contributors per round %v, the baseline's %v: the final model is not comparable with the baseline's", res.Contributors, want)
	}

	// Audit logs: the chain and every entry's signature by the party's certificate
	// (what `fedclaims audit verify --cert` checks), and for the aggregator also the
	// head its last status reported.
	type party struct{ name, log, cert string }
	parties := []party{{"aggregator", f.AggregatorAudit, certs.AggregatorFiles(f.PKI).Cert}}
	for _, s := range f.Sites {
		parties = append(parties, party{"site " + s.ID, s.AuditLog, certs.SiteFiles(f.PKI, s.ID).Cert})
	}
	res.AuditLogs = len(parties)
	for i, p := range parties {
		var expect audit.Head
		if i == 0 && final.GetAuditSeq() > 0 {
			expect = audit.Head{Seq: final.GetAuditSeq(), Hash: final.GetAuditHead()}
		}
		if err := verifyLog(p.log, p.cert, expect); err != nil {
			problem("audit log of %s: %v", p.name, err)
			continue
		}
		res.AuditVerified++
	}
	aborts, err := roundAborts(f.AggregatorAudit)
	if err != nil {
		problem("reading the aggregator's audit log: %v", err)
	}
	res.Aborts = aborts
	if uint64(res.RoundsApplied)+uint64(len(aborts)) != res.RoundIDs && res.RoundsApplied == res.RoundsPlanned {
		// A round open when the aggregator was killed is neither applied nor
		// aborted: its id is spent by the restart. Say so rather than hide it.
		res.Aborts = append(res.Aborts, fmt.Sprintf("%d round id(s) spent without an audited end (open when the aggregator stopped)",
			res.RoundIDs-uint64(res.RoundsApplied)-uint64(len(aborts))))
	}

	// Every applied round's contributors have an audited upload.
	if ups, err := f.Uploads(); err != nil {
		lost = true
		problem("uploads: %v", err)
	} else {
		for _, r := range final.GetHistory() {
			for _, c := range r.GetContributors() {
				if !slices.ContainsFunc(ups, func(u localfed.Upload) bool { return u.Round == r.GetRound() && u.Site == c && u.Bytes > 0 }) {
					lost = true
					problem("round %d: contributor %s has no audited upload", r.GetRound(), c)
				}
			}
		}
	}

	// The final model: the same bytes at every site and in the aggregator's
	// current checkpoint.
	var ref []byte
	var refFrom string
	models := []struct{ who, dir string }{}
	if dir, err := aggregatorCheckpoint(f.AggregatorState); err != nil {
		lost = true
		problem("the aggregator's checkpoint: %v", err)
	} else {
		models = append(models, struct{ who, dir string }{"aggregator", dir})
	}
	for _, s := range f.Sites {
		models = append(models, struct{ who, dir string }{"site " + s.ID, s.FinalModel()})
	}
	for _, m := range models {
		b, err := os.ReadFile(filepath.Join(m.dir, model.ModelFile))
		if err != nil {
			lost = true
			problem("final model of %s: %v", m.who, err)
			continue
		}
		if ref == nil {
			ref, refFrom = b, m.who
			continue
		}
		if !bytes.Equal(b, ref) {
			lost = true
			problem("%s holds another final model than %s", m.who, refFrom)
		}
	}
	if len(f.Sites) > 0 {
		if m, err := model.Load(f.Sites[0].FinalModel()); err == nil {
			out.model = m.Flatten()
		}
	}
	res.NothingLost = !lost && res.RoundsApplied == res.RoundsPlanned && len(res.Problems) == 0

	// The difference from the baseline's final model.
	params := len(out.model)
	if h.base != nil {
		params = len(h.base.model)
	}
	res.NoiseBound = noiseBound(h.noise, res.RoundsPlanned, params)
	switch {
	case h.base == nil:
		res.Within = out.model != nil
	case out.model == nil:
		problem("no final model to compare")
	case len(out.model) != len(h.base.model):
		problem("final model has %d parameters, the baseline's %d", len(out.model), len(h.base.model))
	default:
		res.MaxAbsDiff, res.P99AbsDiff = absDiff(out.model, h.base.model)
		res.Within = res.MaxAbsDiff <= res.NoiseBound
		if !res.Within {
			problem("final model differs from the baseline's by up to %.3g, beyond the noise bound %.3g", res.MaxAbsDiff, res.NoiseBound)
		}
	}
}

// absDiff returns the largest and the 99th-percentile |a[i] - b[i]|; a NaN counts
// as an infinite difference.
func absDiff(a, b []float32) (maxDiff, p99 float64) {
	d := make([]float64, len(a))
	for i := range a {
		d[i] = math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(d[i]) {
			d[i] = math.Inf(1)
		}
	}
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[len(d)-1], d[len(d)*99/100]
}

// verifyLog is `fedclaims audit verify --cert CERT [expected head] LOG`.
func verifyLog(path, certFile string, expect audit.Head) error {
	c, err := certs.LoadCert(certFile)
	if err != nil {
		return err
	}
	v := audit.Verifier{PublicKey: c.PublicKey}
	if !expect.IsZero() {
		v.Expect = []audit.Head{expect}
	}
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	_, err = v.Verify(file)
	return err
}

// roundAborts lists the aggregator's audited round aborts: "round N: reason".
func roundAborts(path string) ([]string, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var out []string
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		e, err := audit.ParseLine(sc.Bytes())
		if err != nil {
			return out, err
		}
		if e.Type == "round_abort" {
			out = append(out, fmt.Sprintf("round %d: %s", e.Round, e.Fields["reason"]))
		}
	}
	return out, sc.Err()
}

// aggregatorCheckpoint is the checkpoint directory the aggregator's CURRENT names.
func aggregatorCheckpoint(stateDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, "CURRENT"))
	if err != nil {
		return "", err
	}
	name := strings.TrimSpace(string(b))
	if name == "" || strings.ContainsAny(name, `/\`) {
		return "", fmt.Errorf("%s names %q", filepath.Join(stateDir, "CURRENT"), name)
	}
	return filepath.Join(stateDir, name), nil
}
