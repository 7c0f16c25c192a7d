package aggregator

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/secureagg"
)

// onRoundReady carries out what the round machine asks, in Ready's order.
func (s *Server) onRoundReady(ctx context.Context, rd Ready) {
	if rd.Announce != nil {
		s.announce(ctx, rd.Announce)
	}
	if rd.Seal != nil && s.fatal == nil {
		s.seal(ctx, rd.Seal)
	}
	if rd.ShareRequest != nil && s.fatal == nil {
		s.requestShares(ctx, rd.ShareRequest)
	}
	if rd.Combine != nil && s.fatal == nil {
		s.combine(ctx, rd.Combine)
	}
	if rd.Abort != nil && s.fatal == nil {
		s.abort(ctx, rd.Abort)
	}
	if rd.Done {
		s.finished = true
	}
}

// announce opens a round: persist its id, audit, then hand every site its TrainTask.
func (s *Server) announce(ctx context.Context, an *Announce) {
	if err := s.saveRound(); err != nil {
		s.halt(err)
		return
	}
	agg, err := secureagg.NewAggregate(s.sacfg, an.Round, len(s.model.Params()))
	if err != nil {
		s.halt(err)
		return
	}
	if !s.mustRecord(ctx, audit.RoundStart, an.Round, "", map[string]string{
		"version": itoa(an.Version), "model_sha256": hexOf(s.blobSum), "sites": strings.Join(s.sites, ","),
	}) {
		return
	}
	now := s.clock.Now()
	cur := &roundIO{id: an.Round, started: now, deadline: now.Add(s.cfg.RoundDeadline), agg: agg, losses: map[string]float64{}, ended: make(chan struct{})}
	s.cur = cur
	round := an.Round
	cur.stopTimer = s.clock.AfterFunc(s.cfg.RoundDeadline, func() {
		s.post(func() { s.stepRound(ctx, Deadline{Round: round}) })
	})
	l := s.cfg.Local
	for _, site := range s.sites {
		s.assign(site, an.Round, cur.deadline, func(a *fedclaimspb.Assignment) {
			a.Task = &fedclaimspb.Assignment_Train{Train: &fedclaimspb.TrainTask{
				Model:         &fedclaimspb.BlobRef{Kind: fedclaimspb.BlobKind_BLOB_KIND_GLOBAL_MODEL, Size: uint64(len(s.blob)), Sha256: s.blobSum},
				Vocabulary:    &fedclaimspb.BlobRef{Kind: fedclaimspb.BlobKind_BLOB_KIND_VOCABULARY, Size: uint64(len(s.vocab)), Sha256: s.vocabSum},
				LocalSteps:    uint32(l.Steps),
				LocalEpochs:   uint32(l.Epochs),
				BatchSize:     uint32(l.BatchSize),
				LearningRate:  l.LearningRate,
				FedproxMu:     l.FedProxMu,
				ClipNorm:      l.ClipNorm,
				DpNoiseStddev: l.DPNoiseStdDev,
				Seed:          seedFor(s.cfg.Model.Seed, an.Version, site),
			}}
		})
	}
	s.saveSeqs()
	s.log.Info("round started", "round", an.Round, "version", an.Version, "deadline", cur.deadline)
}

// seal stops the round's sum taking chunks and tells the machine whose chunks it
// holds; the machine, not the upload streams, decides who contributed.
func (s *Server) seal(ctx context.Context, sl *Seal) {
	cur := s.cur
	if cur.stopTimer != nil {
		cur.stopTimer()
	}
	cur.sealed = cur.agg.Seal()
	s.stepRound(ctx, Sealed{Round: sl.Round, Complete: s.roster.NamesOf(cur.agg.Contributors()), Partial: s.roster.NamesOf(cur.agg.Partial())})
}

// requestShares asks the decrypting set for its shares of the sealed sum.
func (s *Server) requestShares(ctx context.Context, sr *ShareRequest) {
	cur := s.cur
	sums := cur.sealed
	cur.decryptors = map[string]bool{}
	for _, site := range sr.Sites {
		cur.decryptors[site] = true
	}
	set, err := s.roster.IDsOf(sr.Sites)
	if err != nil {
		s.halt(err)
		return
	}
	dec, err := secureagg.NewDecryption(cur.agg, set)
	if err != nil {
		s.halt(err)
		return
	}
	cur.dec = dec
	h := sha256.New()
	cur.sums = make([][]byte, len(sums))
	for i, sc := range sums {
		b, err := sc.MarshalBinary()
		if err != nil {
			s.halt(err)
			return
		}
		cur.sums[i] = b
		cur.sumSize += uint64(len(b))
		h.Write(b)
	}
	cur.sumSHA = h.Sum(nil)
	if !s.mustRecord(ctx, "decryption_request", sr.Round, "", map[string]string{
		"contributors": strings.Join(sr.Contributors, ","), "decryptors": strings.Join(sr.Sites, ","), "aggregate_sha256": hexOf(cur.sumSHA),
		"partial": strings.Join(sr.Partial, ","),
	}) {
		return
	}
	now := s.clock.Now()
	cur.deadline = now.Add(s.cfg.DecryptDeadline)
	round := sr.Round
	cur.stopTimer = s.clock.AfterFunc(s.cfg.DecryptDeadline, func() {
		s.post(func() { s.stepRound(ctx, Deadline{Round: round}) })
	})
	for _, site := range sr.Sites {
		s.assign(site, sr.Round, cur.deadline, func(a *fedclaimspb.Assignment) {
			a.Task = &fedclaimspb.Assignment_Decrypt{Decrypt: &fedclaimspb.DecryptTask{
				Aggregate:    &fedclaimspb.BlobRef{Kind: fedclaimspb.BlobKind_BLOB_KIND_AGGREGATE, Size: cur.sumSize, Sha256: cur.sumSHA},
				Contributors: slices.Clone(sr.Contributors),
				Decryptors:   slices.Clone(sr.Sites),
			}}
		})
	}
	s.saveSeqs()
	s.log.Info("decryption requested", "round", sr.Round, "contributors", sr.Contributors, "decryptors", sr.Sites)
}

// combine decrypts the mean, steps the server optimizer, checkpoints and publishes.
func (s *Server) combine(ctx context.Context, c *Combine) {
	cur := s.cur
	if cur.stopTimer != nil {
		cur.stopTimer()
	}
	res, err := cur.dec.Result(ctx)
	if err != nil {
		s.stepRound(ctx, Failed{Round: c.Round, Reason: err.Error()})
		return
	}
	params := s.model.Params()
	before := slices.Clone(params)
	if err := s.opt.Apply(params, res.Mean); err != nil {
		copy(params, before)
		s.stepRound(ctx, Failed{Round: c.Round, Reason: err.Error()})
		return
	}
	if err := s.stepRound(ctx, Applied{Round: c.Round}); err != nil {
		return
	}
	contributors := s.round.Contributors()
	var loss float64
	for _, site := range contributors {
		loss += cur.losses[site]
	}
	if len(contributors) > 0 {
		loss /= float64(len(contributors))
	}
	now := s.clock.Now()
	rec := RoundRecord{Round: c.Round, Version: s.round.State().Version, Contributors: contributors, TrainLoss: loss,
		Duration: now.Sub(cur.started), UploadBytes: cur.bytes, Finished: now.UTC()}
	s.history = append(s.history, rec)
	// Fail closed: the checkpoint is written but becomes current only after its
	// round_end entry is in the audit log, so no restart publishes an unaudited model.
	ck, err := s.stageCheckpoint()
	if err != nil {
		s.halt(err)
		return
	}
	if !s.mustRecord(ctx, audit.RoundEnd, c.Round, "", map[string]string{
		"contributors": strings.Join(contributors, ","), "decryptors": strings.Join(c.Sites, ","),
		"weight": fmt.Sprintf("%.6g", res.Weight), "train_loss": fmt.Sprintf("%.6g", loss), "upload_bytes": itoa(cur.bytes),
		"model_sha256": ck.modelSHA256, "version": itoa(rec.Version),
	}) {
		return
	}
	if err := s.commitCheckpoint(ck); err != nil {
		s.halt(err)
		return
	}
	s.history[len(s.history)-1].ModelSHA256 = hexOf(s.blobSum)
	s.metrics.roundDone(rec)
	for _, site := range contributors {
		s.lastRnd[site] = c.Round
	}
	s.endRound()
	s.publish(ctx, s.finished || s.round.Phase() == PhaseDone)
	s.log.Info("round applied", "round", c.Round, "version", rec.Version, "contributors", contributors, "train_loss", loss, "duration", rec.Duration)
	s.next(ctx)
}

// checkpoint saves the model, optimizer, round state and history atomically, and
// makes the saved model bytes the global model blob.
func (s *Server) checkpoint() error {
	ck, err := s.stageCheckpoint()
	if err != nil {
		return err
	}
	return s.commitCheckpoint(ck)
}

// stageCheckpoint writes the checkpoint's directory without making it current.
func (s *Server) stageCheckpoint() (staged, error) {
	opt, err := s.opt.MarshalBinary()
	if err != nil {
		return staged{}, err
	}
	return s.store.stageCheckpoint(&checkpoint{AuditHead: s.audit.Anchor(), State: s.round.State(), Model: s.model, Vocab: s.vocab, Optimizer: opt, History: s.history})
}

// commitCheckpoint makes a staged checkpoint current and its model the global blob.
func (s *Server) commitCheckpoint(ck staged) error {
	if err := s.store.commitCheckpoint(ck); err != nil {
		return err
	}
	if err := s.saveRound(); err != nil {
		return err
	}
	s.setBlob(ck.model)
	return nil
}

// endRound lets go of the open round: its timer stops and the upload streams still
// reading into it end, so nothing holds its aggregate.
func (s *Server) endRound() {
	if s.cur == nil {
		return
	}
	if s.cur.stopTimer != nil {
		s.cur.stopTimer()
	}
	close(s.cur.ended)
	s.cur = nil
}

// publish audits the global model's publication and announces it to every site.
func (s *Server) publish(ctx context.Context, final bool) {
	kind := fedclaimspb.BlobKind_BLOB_KIND_GLOBAL_MODEL
	if final {
		kind = fedclaimspb.BlobKind_BLOB_KIND_FINAL_MODEL
	}
	st := s.round.State()
	if !s.mustRecord(ctx, audit.ModelPublished, st.Round, "", map[string]string{
		"version": itoa(st.Version), "model_sha256": hexOf(s.blobSum), "final": fmt.Sprint(final),
	}) {
		return
	}
	var metrics *fedclaimspb.RoundMetrics
	if n := len(s.history); n > 0 {
		metrics = roundMetrics(s.history[n-1])
	}
	for _, site := range s.sites {
		s.assign(site, st.Round, time.Time{}, func(a *fedclaimspb.Assignment) {
			a.Task = &fedclaimspb.Assignment_Published{Published: &fedclaimspb.PublishedModel{
				Model:      &fedclaimspb.BlobRef{Kind: kind, Size: uint64(len(s.blob)), Sha256: s.blobSum},
				Final:      final,
				Metrics:    metrics,
				Vocabulary: &fedclaimspb.BlobRef{Kind: fedclaimspb.BlobKind_BLOB_KIND_VOCABULARY, Size: uint64(len(s.vocab)), Sha256: s.vocabSum},
			}}
		})
	}
	s.saveSeqs()
}

// abort ends a round without an update; the next round, with a fresh id, follows.
func (s *Server) abort(ctx context.Context, ab *Abort) {
	s.endRound()
	s.metrics.roundAborted()
	// round.json carries the machine's Withheld counts: a restart must still pass
	// over a site that withheld its share.
	if err := s.saveRound(); err != nil {
		s.halt(err)
		return
	}
	if !s.mustRecord(ctx, "round_abort", ab.Round, "", map[string]string{"reason": ab.Reason}) {
		return
	}
	s.log.Warn("round aborted", "round", ab.Round, "reason", ab.Reason)
	s.next(ctx)
}

// next opens the following round unless the federation is done, paused or stopped;
// a stopped federation publishes its model as final once no round is open.
func (s *Server) next(ctx context.Context) {
	st := s.round.State()
	switch {
	case s.round.Phase() != PhaseIdle:
	case st.Stopped:
		s.finishStopped(ctx)
	case !st.Paused:
		s.stepRound(ctx, Start{})
	}
}

// finishStopped publishes the global model as the final one after a Stop, so that
// sites waiting for the end learn it and can fetch it.
func (s *Server) finishStopped(ctx context.Context) {
	if s.finished || s.model == nil || s.round.Phase() != PhaseIdle || !s.round.State().Stopped {
		return
	}
	s.finished = true
	s.publish(ctx, true)
}

func roundMetrics(r RoundRecord) *fedclaimspb.RoundMetrics {
	return &fedclaimspb.RoundMetrics{
		Round: r.Round, Contributors: r.Contributors, TrainLoss: r.TrainLoss,
		Duration: durationpb.New(r.Duration), UploadBytes: r.UploadBytes, Finished: timestamppb.New(r.Finished),
	}
}
