package site

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/internal/atomicfile"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/model/safetensors"
	"github.com/fedclaims/fedclaims/secureagg"
	"github.com/fedclaims/fedclaims/tasks"
	"github.com/fedclaims/fedclaims/tokenizer"
)

const dealtFile = "dealt.json" // the sealed Shamir shares this site dealt

// secureaggConfig is the federation's secure-aggregation configuration.
func secureaggConfig(fc *fedclaimspb.FederationConfig, threshold uint32) (secureagg.Config, error) {
	preset := secureagg.Preset(fc.SecureaggPreset)
	if preset == "" {
		preset = secureagg.PresetN12Q60
	}
	params, err := secureagg.NewParameters(preset)
	if err != nil {
		return secureagg.Config{}, fmt.Errorf("secureagg preset %q: %w", fc.SecureaggPreset, err)
	}
	if threshold == 0 {
		threshold = fc.Threshold
	}
	roster, err := secureagg.NewRoster(fc.Sites)
	if err != nil {
		return secureagg.Config{}, fmt.Errorf("federation sites: %w", err)
	}
	cfg := secureagg.Config{Params: params, Federation: fc.FederationId, Sites: roster.IDs(),
		Threshold: int(threshold), WeightCap: fc.WeightCap, MinSites: int(fc.MinSites)}
	// The site decides for itself what is safe: a threshold of 1 to N-1 and sums of
	// at least threshold+1 updates, whatever the aggregator asks.
	if cfg, err = cfg.Normalize(); err != nil {
		return secureagg.Config{}, fmt.Errorf("federation config: %w", err)
	}
	return cfg, nil
}

// roster is the federation's mapping of site names to secureagg ids.
func (a *Agent) roster() (secureagg.Roster, error) {
	r, err := secureagg.NewRoster(a.fed.Sites)
	if err != nil {
		return secureagg.Roster{}, fmt.Errorf("federation sites: %w", err)
	}
	return r, nil
}

// partySites returns the site names the party was made for; for a party saved
// before they were recorded, the federation's, which checkConfig keeps from changing
// while a party exists.
func (a *Agent) partySites() ([]string, error) {
	b, err := a.st.read(partySitesFile)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return slices.Sorted(slices.Values(a.fed.Sites)), nil
	}
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return nil, fmt.Errorf("state %s: %w", a.st.path(partySitesFile), err)
	}
	return names, nil
}

func (a *Agent) saveParty() error {
	b, err := a.party.MarshalBinary()
	if err != nil {
		return err
	}
	return a.st.write(partyFile, b, 0o600)
}

func (a *Agent) keySetup(ctx context.Context, asg *fedclaimspb.Assignment, t *fedclaimspb.KeySetupTask) error {
	step := strings.TrimPrefix(t.Step.String(), "STEP_")
	fields := func(kv ...string) map[string]string {
		m := map[string]string{"step": strings.ToLower(step)}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	switch t.Step {
	case fedclaimspb.KeySetupTask_STEP_PUBLIC_KEY_SHARE:
		cfg, err := secureaggConfig(a.fed, t.Threshold)
		if err != nil {
			a.refuse(ctx, 0, "key setup", err)
			return err
		}
		roster, err := a.roster()
		if err != nil {
			return err
		}
		self, err := partyID(roster, a.cfg.SiteID)
		if err != nil {
			return err
		}
		// A party kept from before a restart answers again with the same share; a new
		// one is made only for a new federation or configuration (needNewParty).
		spec := partySpec{Config: cfg, Self: self, Sites: roster.Names()}
		var old *partySpec
		if a.party != nil {
			names, err := a.partySites()
			if err != nil {
				return err
			}
			old = &partySpec{Config: a.party.Config(), Self: a.party.Site(), Sites: names}
		}
		if needNewParty(old, spec) {
			if a.party, err = secureagg.NewParty(cfg, self); err != nil {
				return err
			}
			// The party first, then the names it was made for: a crash in between
			// leaves names that do not match, and so another new party, never an old
			// party taken for a new site list.
			if err := a.saveParty(); err != nil {
				return err
			}
			b, _ := json.Marshal(spec.Sites)
			if err := a.st.write(partySitesFile, b, 0o600); err != nil {
				return err
			}
			if err := os.Remove(a.st.path(dealtFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		share, err := a.party.PublicKeyShare()
		if err != nil {
			return err
		}
		b, err := share.MarshalBinary()
		if err != nil {
			return err
		}
		if err := a.record(ctx, audit.KeySetup, 0, fields("sha256", audit.SHA256(b), "bytes", fmt.Sprint(len(b)))); err != nil {
			return err
		}
		_, _, err = a.upload(ctx, 0, asg.Seq, &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_PUBLIC_KEY_SHARE}, [][]byte{b}, true)
		return err

	case fedclaimspb.KeySetupTask_STEP_DEAL_SHAMIR_SHARES:
		if a.party == nil {
			return errors.New("dealing shamir shares before the secret-key share was made")
		}
		dealt, err := a.dealt(t)
		if err != nil {
			a.refuse(ctx, 0, "shamir dealing", err)
			return err
		}
		for _, d := range dealt {
			if err := a.record(ctx, audit.KeySetup, 0, fields("to", d.To, "sha256", audit.SHA256(d.Blob))); err != nil {
				return err
			}
			if _, _, err := a.upload(ctx, 0, asg.Seq, &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_SHAMIR_SHARE, ToSiteId: d.To}, [][]byte{d.Blob}, true); err != nil {
				return err
			}
		}
		return nil

	case fedclaimspb.KeySetupTask_STEP_COLLECT_SHAMIR_SHARES:
		if a.party == nil {
			return errors.New("collecting shamir shares before the secret-key share was made")
		}
		roster, err := a.roster()
		if err != nil {
			return err
		}
		self, err := partyID(roster, a.cfg.SiteID)
		if err != nil {
			return err
		}
		if d := slices.Sorted(slices.Values(t.Dealers)); !slices.Equal(d, slices.Sorted(slices.Values(a.fed.Sites))) {
			err := fmt.Errorf("shares from dealers %v, but every site of %v must deal", t.Dealers, a.fed.Sites)
			a.refuse(ctx, 0, "shamir collection", err)
			return err
		}
		var shares []*secureagg.ShamirShare
		for _, dealer := range a.fed.Sites {
			b, err := a.download(ctx, 0, fedclaimspb.BlobKind_BLOB_KIND_SHAMIR_SHARE, dealer, nil)
			if err != nil {
				return err
			}
			from, _ := partyID(roster, dealer)
			sh, err := openShare(b.bytes(), a.tk, a.fed.FederationId, from, self)
			if err != nil {
				a.refuse(ctx, 0, "shamir share from "+dealer, err)
				return err
			}
			shares = append(shares, sh)
		}
		if err := a.record(ctx, audit.KeySetup, 0, fields("dealers", strings.Join(a.fed.Sites, ","))); err != nil {
			return err
		}
		if err := a.party.SetShamirShares(shares); err != nil {
			return err
		}
		if err := a.saveParty(); err != nil {
			return err
		}
		return a.acknowledge(ctx, asg, nil)

	case fedclaimspb.KeySetupTask_STEP_COLLECTIVE_KEY:
		if a.party == nil {
			return errors.New("collective key before the secret-key share was made")
		}
		b, err := a.download(ctx, 0, fedclaimspb.BlobKind_BLOB_KIND_COLLECTIVE_PUBLIC_KEY, "", t.CollectiveKey)
		if err != nil {
			return err
		}
		var pk secureagg.PublicKey
		if err := pk.UnmarshalBinary(b.bytes()); err != nil {
			a.refuse(ctx, 0, "collective key", err)
			return err
		}
		if err := a.record(ctx, audit.KeySetup, 0, fields("sha256", hexSum(b.sum))); err != nil {
			return err
		}
		if err := a.party.SetPublicKey(&pk); err != nil {
			a.refuse(ctx, 0, "collective key", err)
			return err
		}
		if err := a.saveParty(); err != nil {
			return err
		}
		return a.acknowledge(ctx, asg, nil)
	}
	return fmt.Errorf("unknown key setup step %v", t.Step)
}

// dealt returns this site's sealed Shamir shares: those dealt before, when a previous
// run dealt them, since every recipient must hold a share of one and the same
// polynomial; otherwise fresh ones, kept (they are sealed) before any is sent.
func (a *Agent) dealt(t *fedclaimspb.KeySetupTask) ([]sealedShare, error) {
	b, err := a.st.read(dealtFile)
	if err != nil {
		return nil, err
	}
	if b != nil {
		var out []sealedShare
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, fmt.Errorf("state %s: %w", a.st.path(dealtFile), err)
		}
		return out, nil
	}
	out, err := dealShares(a.party, a.fed.FederationId, a.fed.Sites, t.Participants, a.roots, a.now())
	if err != nil {
		return nil, err
	}
	b, _ = json.Marshal(out)
	return out, a.st.write(dealtFile, b, 0o600)
}

// minFloor is the smallest k a site publishes counts at, whatever it is asked.
const minFloor = 2

// counts uploads the site's code counts, floored at k patients: no code seen in fewer
// than k of the patients counted leaves it. The vocabulary shapes the encoder, so it
// is counted on the patients local training reads (pretrainingReader), and the audit
// entry says which those were and how many were left out.
func (a *Agent) counts(ctx context.Context, asg *fedclaimspb.Assignment, t *fedclaimspb.VocabularyTask) error {
	k := max(int(t.KFloor), minFloor)
	c := tokenizer.NewCounter()
	var leftOut int
	for _, path := range a.cfg.Data {
		src, err := a.openPretraining(path)
		if err != nil {
			return err
		}
		for {
			p, err := src.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				src.Close()
				return fmt.Errorf("%s: %w", path, err)
			}
			c.Add(p)
		}
		if pr, ok := src.(*tasks.PretrainingReader); ok {
			leftOut += pr.Excluded
		}
		src.Close()
	}
	table, err := c.Table(k)
	if err != nil {
		return err
	}
	msg := &fedclaimspb.CountTable{KFloor: uint32(k), Patients: uint64(table.Patients)}
	for code, n := range table.Counts {
		if n < int64(k) {
			return fmt.Errorf("count table: code %s has %d patients, below the floor %d", code, n, k)
		}
		msg.Counts = append(msg.Counts, &fedclaimspb.CodeCount{Code: code, Patients: uint64(n)})
	}
	sort.Slice(msg.Counts, func(i, j int) bool { return msg.Counts[i].Code < msg.Counts[j].Code })
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return err
	}
	if err := table.WriteFile(a.st.path(countsFile)); err != nil {
		return err
	}
	_, patients := pretrainingReader(a.cfg, nil)
	if err := a.record(ctx, audit.Vocabulary, 0, map[string]string{"k": fmt.Sprint(k), "codes": fmt.Sprint(len(msg.Counts)),
		"sha256": audit.SHA256(b), "patients": patients, "split": splitNames(a.cfg, a.splits), "patients_counted": fmt.Sprint(table.Patients),
		"patients_left_out": fmt.Sprint(leftOut)}); err != nil {
		return err
	}
	_, _, err = a.upload(ctx, 0, asg.Seq, &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_COUNT_TABLE}, [][]byte{b}, false)
	return err
}

// setVocab installs vocabulary bytes.
func (a *Agent) setVocab(b []byte) error {
	v, err := tokenizer.Load(bytes.NewReader(b))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	a.vocab, a.vocabBytes, a.vocabSum = v, b, sum[:]
	return nil
}

// ensureVocab makes sure the site holds the vocabulary ref names, downloading it when
// it holds another or none.
func (a *Agent) ensureVocab(ctx context.Context, round uint64, ref *fedclaimspb.BlobRef) error {
	if a.vocab != nil && (ref == nil || len(ref.Sha256) == 0 || bytes.Equal(ref.Sha256, a.vocabSum)) {
		return nil
	}
	b, err := a.download(ctx, round, fedclaimspb.BlobKind_BLOB_KIND_VOCABULARY, "", ref)
	if err != nil {
		return err
	}
	vb := b.bytes()
	if err := a.setVocab(vb); err != nil {
		return fmt.Errorf("vocabulary from the aggregator: %w", err)
	}
	if err := a.record(ctx, audit.Vocabulary, round, map[string]string{"installed_sha256": hexSum(a.vocabSum), "tokens": fmt.Sprint(a.vocab.Len())}); err != nil {
		return err
	}
	return a.st.write(vocabFile, vb, 0o600)
}

// dataset is the site's data encoded for one vocabulary and length.
type dataset struct {
	vocabSum []byte
	maxLen   int
	seqs     []model.Sequence
}

// openPretraining opens the dataset at path restricted to the patients the encoder
// may be pretrained on (pretrainingReader).
func (a *Agent) openPretraining(path string) (claims.Reader, error) {
	src, err := claims.Open(path, a.cfg.readerOptions()...)
	if err != nil {
		return nil, err
	}
	wrap, _ := pretrainingReader(a.cfg, a.splits[path])
	return wrap(src), nil
}

// sequences encodes the histories of the patients the site pretrains on
// (pretrainingReader) with the current vocabulary, at most maxLen tokens each, once
// per vocabulary: whole, or cut at a random visit with RandomCut.
func (a *Agent) sequences(ctx context.Context, maxLen int) ([]model.Sequence, error) {
	if d := a.data; d != nil && bytes.Equal(d.vocabSum, a.vocabSum) && d.maxLen == maxLen {
		return d.seqs, nil
	}
	enc, err := tokenizer.NewEncoder(a.vocab, maxLen)
	if err != nil {
		return nil, err
	}
	var all []model.Sequence
	for _, path := range a.cfg.Data {
		src, err := a.openPretraining(path)
		if err != nil {
			return nil, err
		}
		seqs, _, err := model.ReadSequencesWindows(ctx, src, enc, model.Windows{RandomCut: a.cfg.Train.RandomCut, Seed: a.cfg.Seed})
		src.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		all = append(all, seqs...)
	}
	if len(all) == 0 {
		_, patients := pretrainingReader(a.cfg, nil)
		return nil, fmt.Errorf("data %v: no patient (of %s) has a code in the federation's vocabulary", a.cfg.Data, patients)
	}
	a.data = &dataset{vocabSum: a.vocabSum, maxLen: maxLen, seqs: all}
	return all, nil
}

// installCheckpoint writes a model.safetensors blob into dir as a checkpoint
// (model.safetensors, config.json from the blob's metadata, vocab.json) and loads it
// back with model.Load, which checks every tensor against the config.
func installCheckpoint(dir string, blob, vocab []byte) (*model.Model, error) {
	f, err := safetensors.Read(blob)
	if err != nil {
		return nil, fmt.Errorf("model blob: %w", err)
	}
	cj, ok := f.Metadata["config"]
	if !ok {
		return nil, errors.New("model blob: no config in the safetensors metadata")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, model.ModelFile), blob, 0o644); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, model.ConfigFile), append([]byte(cj), '\n'), 0o644); err != nil {
		return nil, err
	}
	if vocab != nil {
		if err := atomicfile.WriteFile(filepath.Join(dir, model.VocabFile), vocab, 0o644); err != nil {
			return nil, err
		}
	}
	return model.Load(dir)
}

// globalModel downloads and installs the model ref names.
func (a *Agent) globalModel(ctx context.Context, round uint64, ref *fedclaimspb.BlobRef, dir string) (*model.Model, []byte, error) {
	if ref == nil {
		return nil, nil, errors.New("no model reference")
	}
	kind := ref.Kind
	if kind == fedclaimspb.BlobKind_BLOB_KIND_UNSPECIFIED {
		kind = fedclaimspb.BlobKind_BLOB_KIND_GLOBAL_MODEL
	}
	if kind != fedclaimspb.BlobKind_BLOB_KIND_GLOBAL_MODEL && kind != fedclaimspb.BlobKind_BLOB_KIND_FINAL_MODEL {
		return nil, nil, fmt.Errorf("model reference of kind %s", kind)
	}
	blob, sum := a.cachedModel(ref)
	if blob == nil {
		b, err := a.download(ctx, round, kind, "", ref)
		if err != nil {
			return nil, nil, err
		}
		blob, sum = b.bytes(), b.sum
	} else {
		a.log.Debug("model already held", "sha256", hexSum(sum))
	}
	m, err := a.installModel(dir, blob)
	if err != nil {
		return nil, nil, err
	}
	if m.Config().Vocab != a.vocab.Len() {
		return nil, nil, fmt.Errorf("model of %d tokens, the vocabulary has %d", m.Config().Vocab, a.vocab.Len())
	}
	return m, sum, nil
}

// cachedModel returns the bytes of the model ref names when the state directory
// already holds them (a round starts from the model the previous one published, and
// the final model is the last published one), so that each is downloaded once.
func (a *Agent) cachedModel(ref *fedclaimspb.BlobRef) ([]byte, []byte) {
	if len(ref.Sha256) == 0 {
		return nil, nil
	}
	for _, dir := range []string{globalDir, finalDir} {
		b, err := os.ReadFile(filepath.Join(a.st.path(dir), model.ModelFile))
		if err != nil {
			continue
		}
		if sum := sha256.Sum256(b); bytes.Equal(sum[:], ref.Sha256) && (ref.Size == 0 || ref.Size == uint64(len(b))) {
			return b, sum[:]
		}
	}
	return nil, nil
}

func (a *Agent) train(ctx context.Context, asg *fedclaimspb.Assignment, t *fedclaimspb.TrainTask) error {
	r := asg.Envelope.RoundId
	if a.party == nil || !a.party.Ready() {
		err := errors.New("training round before the key setup completed")
		a.refuse(ctx, r, "train", err)
		return err
	}
	_, patients := pretrainingReader(a.cfg, nil)
	if err := a.record(ctx, audit.RoundStart, r, map[string]string{"model_sha256": hexSum(t.GetModel().GetSha256()),
		"patients": patients, "split": splitNames(a.cfg, a.splits), "random_cut": fmt.Sprint(a.cfg.Train.RandomCut),
		"local_steps": fmt.Sprint(t.LocalSteps), "local_epochs": fmt.Sprint(t.LocalEpochs), "fedprox_mu": fmt.Sprint(t.FedproxMu),
		"clip_norm": fmt.Sprint(t.ClipNorm), "dp_noise_stddev": fmt.Sprint(t.DpNoiseStddev)}); err != nil {
		return err
	}
	if err := a.ensureVocab(ctx, r, t.Vocabulary); err != nil {
		return err
	}
	global, _, err := a.globalModel(ctx, r, t.Model, globalDir)
	if err != nil {
		return err
	}
	seqs, err := a.sequences(ctx, min(a.cfg.Train.MaxLen, global.Config().MaxLen))
	if err != nil {
		return err
	}
	batch := int(t.BatchSize)
	if a.cfg.Train.BatchSize > 0 {
		batch = a.cfg.Train.BatchSize
	}
	if batch == 0 {
		batch = 16
	}
	res, err := Train(ctx, global, seqs, LocalTraining{Steps: int(t.LocalSteps), Epochs: int(t.LocalEpochs), Batch: batch,
		LR: t.LearningRate, Mu: t.FedproxMu, Seed: t.Seed, Threads: a.cfg.Threads})
	if err != nil {
		return err
	}
	count := float64(res.Samples)
	weight := secureagg.Weight(count, a.party.Config().WeightCap)
	norm, err := protect(res.Delta, t.ClipNorm, t.DpNoiseStddev, len(a.fed.Sites), weight)
	if err != nil {
		return err
	}
	chunks, err := a.party.Encrypt(ctx, r, res.Delta, count)
	if err != nil {
		return err
	}
	msgs := make([][]byte, len(chunks))
	for i, c := range chunks {
		if msgs[i], err = c.MarshalBinary(); err != nil {
			return err
		}
		// Let each ciphertext go once encoded: peak memory is one copy of the update.
		chunks[i] = nil
	}
	h := sha256.New()
	var size int
	for _, m := range msgs {
		h.Write(m)
		size += len(m)
	}
	if err := a.record(ctx, audit.Upload, r, map[string]string{"kind": "encrypted_update", "sha256": hexSum(h.Sum(nil)),
		"bytes": fmt.Sprint(size), "chunks": fmt.Sprint(len(msgs)), "local_steps": fmt.Sprint(res.Steps),
		"train_loss": fmt.Sprintf("%.6g", res.Loss), "delta_norm": fmt.Sprintf("%.6g", norm)}); err != nil {
		return err
	}
	_, _, err = a.upload(ctx, r, asg.Seq, &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_ENCRYPTED_UPDATE,
		Update: &fedclaimspb.UpdateInfo{Chunks: uint32(len(msgs)), LocalSteps: uint32(res.Steps), TrainLoss: res.Loss}}, msgs, true)
	if err == nil {
		a.log.Info("update uploaded", "round", r, "bytes", size, "chunks", len(msgs), "train_loss", res.Loss, "steps", res.Steps)
	}
	return err
}

func (a *Agent) decrypt(ctx context.Context, asg *fedclaimspb.Assignment, t *fedclaimspb.DecryptTask) error {
	r := asg.Envelope.RoundId
	refuse := func(err error) error {
		a.refuse(ctx, r, "decryption share", err)
		return err
	}
	if a.party == nil || !a.party.Ready() {
		return refuse(errors.New("decryption before the key setup completed"))
	}
	roster, err := a.roster()
	if err != nil {
		return refuse(err)
	}
	contributors, err := roster.IDsOf(t.Contributors)
	if err != nil {
		return refuse(fmt.Errorf("contributors: %w", err))
	}
	set, err := roster.IDsOf(t.Decryptors)
	if err != nil {
		return refuse(fmt.Errorf("decryptors: %w", err))
	}
	self, err := partyID(roster, a.cfg.SiteID)
	if err != nil {
		return refuse(err)
	}
	pc := a.party.Config()
	policy := decryptPolicy{Roster: roster, Self: self, Threshold: pc.Threshold, MinSites: max(int(a.fed.MinSites), pc.MinSites)}
	req := decryptRequest{Round: r, Contributors: contributors, Decryptors: set}
	released, err := a.st.releasedRounds(a.fed.FederationId)
	if err != nil {
		return err
	}
	err = checkDecrypt(policy, req, released, nil)
	if errors.Is(err, ErrReleased) {
		return a.resendShares(ctx, asg, t, req, refuse)
	}
	if err != nil {
		return refuse(err)
	}
	b, err := a.download(ctx, r, fedclaimspb.BlobKind_BLOB_KIND_AGGREGATE, "", t.Aggregate)
	if err != nil {
		return err
	}
	sums := make([]*secureagg.SumChunk, len(b.chunks))
	for i, c := range b.chunks {
		var s secureagg.SumChunk
		if err := s.UnmarshalBinary(c); err != nil {
			return refuse(fmt.Errorf("aggregate chunk %d: %w", i, err))
		}
		sums[i] = &s
	}
	if err := checkDecrypt(policy, req, released, sums); err != nil {
		return refuse(err)
	}
	shares, err := a.party.DecryptShare(ctx, set, sums)
	if err != nil {
		return refuse(err)
	}
	msgs := make([][]byte, len(shares))
	h := sha256.New()
	var size int
	for i, s := range shares {
		if msgs[i], err = s.MarshalBinary(); err != nil {
			return err
		}
		h.Write(msgs[i])
		size += len(msgs[i])
	}
	if err := a.record(ctx, audit.DecryptionShare, r, map[string]string{"aggregate_sha256": hexSum(b.sum), "sha256": hexSum(h.Sum(nil)),
		"bytes": fmt.Sprint(size), "contributors": strings.Join(t.Contributors, ","), "decryptors": strings.Join(t.Decryptors, ",")}); err != nil {
		return err
	}
	// The shares are kept before the release is recorded, and the release before
	// they leave: an upload broken mid-stream is answered again with these very
	// bytes (resendShares), and a crash before the record only loses shares that
	// never left.
	kept := &releasedShares{Federation: a.fed.FederationId, Round: r, Set: set, Msgs: msgs}
	copy(kept.Aggregate[:], b.sum)
	if err := a.st.saveShares(kept); err != nil {
		return err
	}
	if err := a.st.release(a.fed.FederationId, r, a.audit.Anchor()); err != nil {
		return refuse(err)
	}
	if err := a.saveParty(); err != nil {
		return err
	}
	_, _, err = a.upload(ctx, r, asg.Seq, &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_DECRYPTION_SHARE}, msgs, true)
	return err
}

// resendShares answers a decryption task for a round whose share was already
// released: when the kept share is for the same aggregate and decrypting set
// (checkResend), the same bytes are uploaded again, so that an upload broken
// mid-stream does not cost the round; anything else is refused. The aggregate is
// identified by the task's SHA-256, or downloaded when the task gives none.
func (a *Agent) resendShares(ctx context.Context, asg *fedclaimspb.Assignment, t *fedclaimspb.DecryptTask, req decryptRequest, refuse func(error) error) error {
	r := req.Round
	kept, err := a.st.loadShares(a.fed.FederationId, r)
	if err != nil {
		return refuse(fmt.Errorf("round %d: %w; the kept share does not load: %w", r, ErrReleased, err))
	}
	sum := t.GetAggregate().GetSha256()
	if len(sum) == 0 {
		sum = nil
	}
	if err := checkResend(kept, req, sum); err != nil {
		return refuse(err)
	}
	if sum == nil {
		b, err := a.download(ctx, r, fedclaimspb.BlobKind_BLOB_KIND_AGGREGATE, "", t.Aggregate)
		if err != nil {
			return err
		}
		sum = b.sum
	}
	if err := checkResend(kept, req, sum); err != nil {
		return refuse(err)
	}
	h := sha256.New()
	var size int
	for _, m := range kept.Msgs {
		h.Write(m)
		size += len(m)
	}
	if err := a.record(ctx, audit.DecryptionShare, r, map[string]string{"aggregate_sha256": hexSum(sum), "sha256": hexSum(h.Sum(nil)),
		"bytes": fmt.Sprint(size), "contributors": strings.Join(t.Contributors, ","), "decryptors": strings.Join(t.Decryptors, ","),
		"resent": "true"}); err != nil {
		return err
	}
	a.log.Info("decryption share sent again", "round", r, "bytes", size, "chunks", len(kept.Msgs))
	_, _, err = a.upload(ctx, r, asg.Seq, &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_DECRYPTION_SHARE}, kept.Msgs, true)
	return err
}

// protect clips delta to L2 norm clip (0: no clipping) and, when dpStd is positive,
// adds this site's share of the federation's Gaussian noise: after Encrypt weighs the
// update, the share has standard deviation dpStd, and the shares of sites sites sum
// to noise of standard deviation dpStd·sqrt(sites) (secureagg.DP with Sigma =
// dpStd·sqrt(sites)/clip). It returns the norm before clipping.
func protect(delta []float32, clip, dpStd float64, sites int, weight float64) (float64, error) {
	if dpStd <= 0 {
		if clip > 0 {
			return secureagg.Clip(delta, clip), nil
		}
		return l2(delta), nil
	}
	if clip <= 0 {
		return 0, errors.New("differential privacy needs a clip norm")
	}
	dp := secureagg.DP{Clip: clip, Sigma: dpStd * math.Sqrt(float64(sites)) / clip, Sites: sites}
	if err := dp.Validate(); err != nil {
		return 0, err
	}
	// The noise must be secret to the site: noise drawn from a seed the aggregator
	// knows (such as the round's training seed) could be subtracted again.
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return 0, err
	}
	return dp.Apply(delta, weight, mrand.New(mrand.NewChaCha8(seed)))
}

// subset reports whether every element of a is in b.
func subset(a, b []secureagg.SiteID) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func (a *Agent) published(ctx context.Context, asg *fedclaimspb.Assignment, t *fedclaimspb.PublishedModel) error {
	r := asg.Envelope.RoundId
	if err := a.ensureVocab(ctx, r, t.Vocabulary); err != nil {
		return err
	}
	dir := globalDir
	if t.Final {
		dir = finalDir
	}
	if err := a.record(ctx, audit.ModelPublished, r, map[string]string{"sha256": hexSum(t.GetModel().GetSha256()), "final": fmt.Sprint(t.Final)}); err != nil {
		return err
	}
	m, sum, err := a.globalModel(ctx, r, t.Model, dir)
	if err != nil {
		return err
	}
	a.log.Info("model installed", "round", r, "final", t.Final, "dir", a.st.path(dir), "params", m.Config().Params(), "sha256", hexSum(sum))
	if err := a.acknowledge(ctx, asg, nil); err != nil {
		return err
	}
	if t.Final && a.cfg.ExitOnFinal {
		return errFinished
	}
	return nil
}

// FinalDir returns the directory the final model is installed in: a checkpoint that
// `fedclaims eval --model` loads.
func (a *Agent) FinalDir() string { return a.st.path(finalDir) }

// jitterSeed mixes the site's id into the backoff seed, so that sites of one
// configuration do not retry in step.
func jitterSeed(seed uint64, site string) uint64 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	h := sha256.Sum256(append(b[:], site...))
	return binary.LittleEndian.Uint64(h[:])
}
