package aggregator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/model"
	"github.com/fedclaims/fedclaims/secureagg"
	"github.com/fedclaims/fedclaims/tokenizer"
)

func unmarshalProto(b []byte, m proto.Message) error { return proto.Unmarshal(b, m) }

// Setup blob names under setup/. A name joining two site ids hex-encodes each, since
// "-" is legal in site ids: "shamir-a-b-c" could be a to b-c or a-b to c.
func pkShareBlob(site string) string { return "pkshare-" + site }
func shamirBlob(dealer, to string) string {
	return "shamir-" + hex.EncodeToString([]byte(dealer)) + "." + hex.EncodeToString([]byte(to))
}
func countsBlob(site string) string { return "counts-" + site }
func enrolBlob(site string) string  { return "enrol-" + site }
func crsSeed(federation string) []byte {
	h := sha256.Sum256([]byte("fedclaims crs " + federation))
	return h[:]
}

// onSetupReady carries out what the setup machine asks, in SetupReady's order.
func (s *Server) onSetupReady(ctx context.Context, rd SetupReady) {
	if err := s.saveSetup(); err != nil {
		s.halt(err)
		return
	}
	if rd.BuildKey {
		if err := s.buildKey(ctx); err != nil {
			s.halt(err)
			return
		}
	}
	if rd.Assign != nil {
		s.assignSetup(ctx, rd.Assign)
	}
	if rd.BuildVocabulary {
		if err := s.buildVocabulary(ctx); err != nil {
			s.halt(err)
			return
		}
		if s.cfg.AutoStart {
			s.stepRound(ctx, Start{})
		}
	}
}

// assignSetup audits a setup step and gives it to its sites.
func (s *Server) assignSetup(ctx context.Context, as *Assign) {
	if !s.mustRecord(ctx, audit.KeySetup, 0, "", map[string]string{"step": as.Phase.String(), "sites": strings.Join(as.Sites, ",")}) {
		return
	}
	for _, site := range as.Sites {
		s.assign(site, 0, time.Time{}, func(a *fedclaimspb.Assignment) {
			switch as.Phase {
			case SetupPublicKey:
				a.Task = &fedclaimspb.Assignment_KeySetup{KeySetup: &fedclaimspb.KeySetupTask{
					Step: fedclaimspb.KeySetupTask_STEP_PUBLIC_KEY_SHARE, CrsSeed: crsSeed(s.cfg.Federation), Threshold: uint32(s.cfg.Threshold)}}
			case SetupDealing:
				parts := make([]*fedclaimspb.SignedKey, len(s.sites))
				for i, id := range s.sites {
					parts[i] = s.keys[id]
				}
				a.Task = &fedclaimspb.Assignment_KeySetup{KeySetup: &fedclaimspb.KeySetupTask{
					Step: fedclaimspb.KeySetupTask_STEP_DEAL_SHAMIR_SHARES, Threshold: uint32(s.cfg.Threshold), Participants: parts}}
			case SetupCollecting:
				a.Task = &fedclaimspb.Assignment_KeySetup{KeySetup: &fedclaimspb.KeySetupTask{
					Step: fedclaimspb.KeySetupTask_STEP_COLLECT_SHAMIR_SHARES, Threshold: uint32(s.cfg.Threshold), Dealers: s.sites}}
			case SetupInstallingKey:
				sum := sha256.Sum256(s.pubKey)
				a.Task = &fedclaimspb.Assignment_KeySetup{KeySetup: &fedclaimspb.KeySetupTask{
					Step: fedclaimspb.KeySetupTask_STEP_COLLECTIVE_KEY, Threshold: uint32(s.cfg.Threshold),
					CollectiveKey: &fedclaimspb.BlobRef{Kind: fedclaimspb.BlobKind_BLOB_KIND_COLLECTIVE_PUBLIC_KEY, Size: uint64(len(s.pubKey)), Sha256: sum[:]}}}
			case SetupVocabulary:
				a.Task = &fedclaimspb.Assignment_Vocabulary{Vocabulary: &fedclaimspb.VocabularyTask{KFloor: uint32(s.cfg.Vocabulary.KFloor)}}
			}
		})
	}
	s.saveSeqs()
	s.log.Info("setup step", "step", as.Phase.String(), "sites", as.Sites)
}

// buildKey sums the sites' public-key shares into the collective public key.
func (s *Server) buildKey(ctx context.Context) error {
	g, err := secureagg.NewPublicKeyGen(s.params, s.cfg.Federation)
	if err != nil {
		return err
	}
	var agg *secureagg.PublicKeyShare
	for _, site := range s.sites {
		b, err := s.store.getBlob(pkShareBlob(site))
		if err != nil {
			return err
		}
		var sh secureagg.PublicKeyShare
		if err := sh.UnmarshalBinary(b); err != nil {
			return fmt.Errorf("public-key share of %s: %w", site, err)
		}
		if agg == nil {
			agg = &sh
			continue
		}
		if err := g.AggregateShares(agg, &sh, agg); err != nil {
			return fmt.Errorf("public-key share of %s: %w", site, err)
		}
	}
	pk, err := g.GenPublicKey(agg)
	if err != nil {
		return err
	}
	b, err := pk.MarshalBinary()
	if err != nil {
		return err
	}
	if err := s.record(ctx, audit.KeySetup, 0, "", map[string]string{"step": "collective key built", "sha256": audit.SHA256(b)}); err != nil {
		return err
	}
	if err := s.store.putBlob("collective.key", b); err != nil {
		return err
	}
	s.pubKey = b
	return nil
}

// buildVocabulary merges the sites' count tables, builds the vocabulary and the
// initial global model, and checkpoints them as version 0.
func (s *Server) buildVocabulary(ctx context.Context) error {
	tables := make([]*tokenizer.CountTable, 0, len(s.sites))
	for _, site := range s.sites {
		b, err := s.store.getBlob(countsBlob(site))
		if err != nil {
			return err
		}
		t, err := tokenizer.LoadCounts(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("count table of %s: %w", site, err)
		}
		tables = append(tables, t)
	}
	merged, err := tokenizer.Merge(tables...)
	if err != nil {
		return err
	}
	v, err := tokenizer.New(merged, s.cfg.Vocabulary.KFloor)
	if err != nil {
		return err
	}
	capped := 0
	if v.Len()-tokenizer.NumSpecial > s.cfg.Vocabulary.MaxVocab {
		capped = v.Len() - tokenizer.NumSpecial
		if v, err = tokenizer.NewTop(merged, s.cfg.Vocabulary.KFloor, s.cfg.Vocabulary.MaxVocab); err != nil {
			return err
		}
	}
	var vb bytes.Buffer
	if err := v.Save(&vb); err != nil {
		return err
	}
	mc, err := s.cfg.ModelConfig(v.Len())
	if err != nil {
		return err
	}
	m, err := model.New(mc, s.cfg.Model.Seed)
	if err != nil {
		return err
	}
	if err := s.record(ctx, audit.Vocabulary, 0, "", map[string]string{
		"tokens": itoa(v.Len()), "k_floor": itoa(s.cfg.Vocabulary.KFloor), "sha256": audit.SHA256(vb.Bytes()),
		"model_preset": s.cfg.Model.Preset, "model_params": itoa(mc.Params()), "codes_over_max_vocab": itoa(max(0, capped-s.cfg.Vocabulary.MaxVocab)),
	}); err != nil {
		return err
	}
	s.model, s.vocab = m, vb.Bytes()
	if err := s.checkpoint(); err != nil {
		return err
	}
	s.log.Info("vocabulary built", "tokens", v.Len(), "model_params", mc.Params())
	return nil
}

// parseCountTable decodes an uploaded CountTable (protobuf), checks it against the
// federation's floor and bounds vc and returns it with its canonical JSON encoding,
// which is what the state directory keeps.
func parseCountTable(b []byte, vc VocabularyConfig) (*tokenizer.CountTable, []byte, error) {
	var ct fedclaimspb.CountTable
	if err := proto.Unmarshal(b, &ct); err != nil {
		return nil, nil, fmt.Errorf("count table: %w", err)
	}
	if int64(ct.KFloor) < int64(vc.KFloor) {
		return nil, nil, fmt.Errorf("count table: field k_floor: %d is below the federation's %d", ct.KFloor, vc.KFloor)
	}
	if ct.Patients > math.MaxInt64 {
		return nil, nil, fmt.Errorf("count table: field patients: %d overflows", ct.Patients)
	}
	if n := uint64(len(ct.Counts)); n > uint64(vc.MaxCodesPerTable) {
		return nil, nil, fmt.Errorf("count table: field counts: %d codes, more than the federation's vocabulary.max_codes_per_table %d", n, vc.MaxCodesPerTable)
	} else if n > ct.Patients*uint64(vc.MaxCodesPerPatient) {
		return nil, nil, fmt.Errorf("count table: field counts: %d codes from %d patients, more than %d per patient (vocabulary.max_codes_per_patient): not a plausible table", n, ct.Patients, vc.MaxCodesPerPatient)
	}
	t := &tokenizer.CountTable{MinCount: int(ct.KFloor), Patients: int64(ct.Patients), Counts: make(map[string]int64, len(ct.Counts))}
	for i, c := range ct.Counts {
		if c.Patients < uint64(ct.KFloor) {
			return nil, nil, fmt.Errorf("count table: counts[%d] (%q): %d patients, below the floor %d", i, c.Code, c.Patients, ct.KFloor)
		}
		if c.Patients > ct.Patients {
			return nil, nil, fmt.Errorf("count table: counts[%d] (%q): %d patients, more than the table's %d", i, c.Code, c.Patients, ct.Patients)
		}
		if _, dup := t.Counts[c.Code]; dup {
			return nil, nil, fmt.Errorf("count table: counts[%d]: code %q repeated", i, c.Code)
		}
		t.Counts[c.Code] = int64(c.Patients)
	}
	// Merge validates the rest when the vocabulary is built; check it now so that a
	// bad table is refused to its sender.
	if _, err := tokenizer.Merge(t); err != nil {
		return nil, nil, fmt.Errorf("count table: %w", err)
	}
	var out bytes.Buffer
	if err := t.Save(&out); err != nil {
		return nil, nil, err
	}
	return t, out.Bytes(), nil
}

// setupPhaseOf is the setup step a blob kind belongs to.
func setupPhaseOf(k fedclaimspb.BlobKind) SetupPhase {
	switch k {
	case fedclaimspb.BlobKind_BLOB_KIND_PUBLIC_KEY_SHARE:
		return SetupPublicKey
	case fedclaimspb.BlobKind_BLOB_KIND_SHAMIR_SHARE:
		return SetupDealing
	case fedclaimspb.BlobKind_BLOB_KIND_COUNT_TABLE:
		return SetupVocabulary
	}
	return SetupDone // no step: AdmitStep refuses it
}
