package aggregator

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/fedclaims/fedclaims/certs"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/model/safetensors"
	"github.com/fedclaims/fedclaims/secureagg"
)

// testSite plays a hospital's site agent with the real pieces — its certificate,
// mutual TLS, secureagg parties and sealed Shamir shares — but sends updates the test
// chooses instead of training, so that the decrypted aggregate can be checked
// against a plaintext FedAvg of the same updates.
type testSite struct {
	t     *testing.T
	id    string
	addr  string
	files certs.Files
	count float64
	// delta returns the site's update for a model version, or nil to send none.
	delta func(version uint64, global []float32) []float32
	// hold, when set, is called before each key-setup step; it may block.
	hold func(*fedclaimspb.KeySetupTask)
	// withhold, when set, says whether to ignore a round's decryption task.
	withhold func(round uint64) bool
	withheld map[uint64]bool
	// breakShare, when set, says whether to break the first upload of a round's
	// share off after one chunk; broke records the rounds it did, with their chunks.
	breakShare func(round uint64) bool
	broke      map[uint64]int
	// software, when set, is the version the site enrols with ("test" otherwise);
	// loss, when set, the training loss it reports for a model version (2.5).
	software string
	loss     func(version uint64) float64

	mu        sync.Mutex
	conn      *grpc.ClientConn
	client    fedclaimspb.FederationClient
	fc        *fedclaimspb.FederationConfig
	party     *secureagg.Party
	tk        *secureagg.TransportKey
	after     uint64
	versions  map[string]uint64 // global model versions by sha256
	sent      map[uint64][]float32
	uploaded  map[uint64]bool     // versions whose update the aggregator acknowledged
	shared    map[uint64]bool     // rounds whose decryption share the aggregator acknowledged
	seeds     map[uint64][]uint64 // TrainTask seeds received, by model version
	published []*fedclaimspb.PublishedModel
	models    map[string][]byte // published model bytes by sha256
	final     chan struct{}
	errs      []error
}

func newTestSite(t *testing.T, id, addr, certDir string, count float64) *testSite {
	return &testSite{t: t, id: id, addr: addr, files: certs.SiteFiles(certDir, id), count: count,
		sent: map[uint64][]float32{}, uploaded: map[uint64]bool{}, shared: map[uint64]bool{}, withheld: map[uint64]bool{}, broke: map[uint64]int{}, seeds: map[uint64][]uint64{}, models: map[string][]byte{}, versions: map[string]uint64{}, final: make(chan struct{})}
}

func (s *testSite) env(round uint64) *fedclaimspb.Envelope {
	return &fedclaimspb.Envelope{FederationId: s.fc.GetFederationId(), RoundId: round, SiteId: s.id}
}

func (s *testSite) dial() error {
	tlsConf, err := certs.ClientTLS(s.files, "127.0.0.1")
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(s.addr, fedclaimspb.DialOptions(tlsConf)...)
	if err != nil {
		return err
	}
	s.conn, s.client = conn, fedclaimspb.NewFederationClient(conn)
	return nil
}

// enroll signs a fresh transport key with the site's certificate key and enrols.
func (s *testSite) enroll(ctx context.Context, federation string) error {
	pair, _, err := certs.LoadPair(s.files)
	if err != nil {
		return err
	}
	if s.tk, err = secureagg.NewTransportKey(); err != nil {
		return err
	}
	signed, err := fedclaimspb.SignShareKey(pair.PrivateKey.(crypto.Signer), pair.Leaf, federation, s.tk.PublicKey())
	if err != nil {
		return err
	}
	resp, err := s.client.Enroll(ctx, &fedclaimspb.EnrollRequest{
		Envelope: &fedclaimspb.Envelope{FederationId: federation, SiteId: s.id}, SoftwareVersion: cmp.Or(s.software, "test"), ShareKey: signed})
	if err != nil {
		return err
	}
	s.fc = resp.Config
	params, err := secureagg.NewParameters(secureagg.Preset(s.fc.SecureaggPreset))
	if err != nil {
		return err
	}
	ids := make([]secureagg.SiteID, len(s.fc.Sites))
	for i := range ids {
		ids[i] = secureagg.SiteID(i)
	}
	me := secureagg.SiteID(slices.Index(s.fc.Sites, s.id))
	s.party, err = secureagg.NewParty(secureagg.Config{Params: params, Federation: s.fc.FederationId, Sites: ids,
		Threshold: int(s.fc.Threshold), WeightCap: s.fc.WeightCap}, me)
	return err
}

// run handles assignments until ctx ends, reopening the Work stream after errors as
// a site agent does.
func (s *testSite) run(ctx context.Context) {
	for ctx.Err() == nil {
		stream, err := s.client.Work(ctx, &fedclaimspb.WorkRequest{Envelope: s.env(0), AfterSeq: s.after})
		if err == nil {
			for {
				var a *fedclaimspb.Assignment
				if a, err = stream.Recv(); err != nil {
					break
				}
				if herr := s.handle(ctx, a); herr != nil && ctx.Err() == nil {
					s.mu.Lock()
					s.errs = append(s.errs, fmt.Errorf("site %s, assignment %d (%s): %w", s.id, a.Seq, taskName(a), herr))
					s.mu.Unlock()
				}
				s.after = a.Seq
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *testSite) handle(ctx context.Context, a *fedclaimspb.Assignment) error {
	if a.Envelope.GetSiteId() != s.id || a.Envelope.GetFederationId() != s.fc.FederationId {
		return fmt.Errorf("assignment for %s", a.Envelope.Describe())
	}
	round := a.Envelope.RoundId
	switch task := a.Task.(type) {
	case *fedclaimspb.Assignment_KeySetup:
		return s.keySetup(ctx, a.Seq, task.KeySetup)
	case *fedclaimspb.Assignment_Vocabulary:
		ct := &fedclaimspb.CountTable{KFloor: task.Vocabulary.KFloor, Patients: 40, Counts: []*fedclaimspb.CodeCount{
			{Code: "ICD10//E11.9", Patients: 30}, {Code: "ICD10//I10", Patients: 25}, {Code: "ATC//A10BA02", Patients: 20}, {Code: "ICD10//" + s.id, Patients: 12},
		}}
		b, err := proto.Marshal(ct)
		if err != nil {
			return err
		}
		return s.uploadBlob(ctx, 0, &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_COUNT_TABLE, Size: uint64(len(b)), AssignmentSeq: a.Seq}, [][]byte{b})
	case *fedclaimspb.Assignment_Train:
		blob, err := s.download(ctx, round, fedclaimspb.BlobKind_BLOB_KIND_GLOBAL_MODEL, "", task.Train.Model)
		if err != nil {
			return err
		}
		global, err := flatModel(blob)
		if err != nil {
			return err
		}
		version := s.versionOf(blob)
		s.mu.Lock()
		s.seeds[version] = append(s.seeds[version], task.Train.Seed)
		s.mu.Unlock()
		d := s.delta(version, global)
		if d == nil {
			return nil
		}
		chunks, err := s.party.Encrypt(ctx, round, d, s.count)
		if err != nil {
			return err
		}
		msgs := make([][]byte, len(chunks))
		var size uint64
		for i, c := range chunks {
			if msgs[i], err = c.MarshalBinary(); err != nil {
				return err
			}
			size += uint64(len(msgs[i]))
		}
		s.mu.Lock()
		s.sent[version] = d
		s.mu.Unlock()
		loss := 2.5
		if s.loss != nil {
			loss = s.loss(version)
		}
		if err := s.uploadBlob(ctx, round, &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_ENCRYPTED_UPDATE, Size: size, AssignmentSeq: a.Seq,
			Update: &fedclaimspb.UpdateInfo{Chunks: uint32(len(chunks)), LocalSteps: 1, TrainLoss: loss}}, msgs); err != nil {
			return err
		}
		s.mu.Lock()
		s.uploaded[version] = true
		s.mu.Unlock()
		return nil
	case *fedclaimspb.Assignment_Decrypt:
		dt := task.Decrypt
		if s.withhold != nil && s.withhold(round) {
			s.mu.Lock()
			s.withheld[round] = true
			s.mu.Unlock()
			return nil
		}
		if len(dt.Contributors) < int(s.fc.MinSites) || !slices.Contains(dt.Decryptors, s.id) {
			return fmt.Errorf("decrypt task with contributors %v, decryptors %v", dt.Contributors, dt.Decryptors)
		}
		msgs, err := s.downloadMessages(ctx, round, fedclaimspb.BlobKind_BLOB_KIND_AGGREGATE, dt.Aggregate)
		if err != nil {
			return err
		}
		sums := make([]*secureagg.SumChunk, len(msgs))
		for i, m := range msgs {
			sums[i] = new(secureagg.SumChunk)
			if err := sums[i].UnmarshalBinary(m); err != nil {
				return err
			}
		}
		set := make([]secureagg.SiteID, len(dt.Decryptors))
		for i, d := range dt.Decryptors {
			set[i] = secureagg.SiteID(slices.Index(s.fc.Sites, d))
		}
		shares, err := s.party.DecryptShare(ctx, set, sums)
		if err != nil {
			return err
		}
		out := make([][]byte, len(shares))
		var size uint64
		for i, sh := range shares {
			if out[i], err = sh.MarshalBinary(); err != nil {
				return err
			}
			size += uint64(len(out[i]))
		}
		if s.breakShare != nil && s.breakShare(round) {
			// The first attempt breaks off after its first chunk, as a network blip
			// would; the retry sends the same bytes whole.
			if err := s.uploadPartial(ctx, round, &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_DECRYPTION_SHARE, Size: size, AssignmentSeq: a.Seq}, out); err != nil {
				return err
			}
			s.mu.Lock()
			s.broke[round] = len(out)
			s.mu.Unlock()
		}
		if err := s.uploadBlob(ctx, round, &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_DECRYPTION_SHARE, Size: size, AssignmentSeq: a.Seq}, out); err != nil {
			return err
		}
		s.mu.Lock()
		s.shared[round] = true
		s.mu.Unlock()
		return nil
	case *fedclaimspb.Assignment_Published:
		p := task.Published
		blob, err := s.download(ctx, round, p.Model.Kind, "", p.Model)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.published = append(s.published, p)
		s.models[string(p.Model.Sha256)] = blob
		s.mu.Unlock()
		if _, err := s.client.Acknowledge(ctx, &fedclaimspb.AcknowledgeRequest{Envelope: s.env(round), AssignmentSeq: a.Seq}); err != nil {
			return err
		}
		if p.Final {
			close(s.final)
		}
	}
	return nil
}

func (s *testSite) hasUploaded(version uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uploaded[version]
}

func (s *testSite) hasWithheld(round uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.withheld[round]
}

func (s *testSite) hasShared(round uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shared[round]
}

// versionOf numbers the distinct global models the site has trained from: models
// only move forward, so the n-th distinct one is version n-1.
func (s *testSite) versionOf(blob []byte) uint64 {
	sum := sha256.Sum256(blob)
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.versions[string(sum[:])]; ok {
		return v
	}
	v := uint64(len(s.versions))
	s.versions[string(sum[:])] = v
	return v
}

func (s *testSite) keySetup(ctx context.Context, seq uint64, task *fedclaimspb.KeySetupTask) error {
	if s.hold != nil {
		s.hold(task)
	}
	switch task.Step {
	case fedclaimspb.KeySetupTask_STEP_PUBLIC_KEY_SHARE:
		sh, err := s.party.PublicKeyShare()
		if err != nil {
			return err
		}
		b, err := sh.MarshalBinary()
		if err != nil {
			return err
		}
		return s.uploadBlob(ctx, 0, &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_PUBLIC_KEY_SHARE, Size: uint64(len(b)), AssignmentSeq: seq}, [][]byte{b})
	case fedclaimspb.KeySetupTask_STEP_DEAL_SHAMIR_SHARES:
		ca, err := certs.LoadCert(s.files.CA)
		if err != nil {
			return err
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		shares, err := s.party.ShamirShares()
		if err != nil {
			return err
		}
		for j, k := range task.Participants {
			if k.SiteId != s.fc.Sites[j] {
				return fmt.Errorf("participant %d is %q, party order says %q", j, k.SiteId, s.fc.Sites[j])
			}
			if err := fedclaimspb.VerifyShareKey(k, s.fc.FederationId, roots, time.Now()); err != nil {
				return err
			}
			sealed, err := shares[j].Seal(k.PublicKey)
			if err != nil {
				return err
			}
			b, err := sealed.MarshalBinary()
			if err != nil {
				return err
			}
			if err := s.uploadBlob(ctx, 0, &fedclaimspb.UploadHeader{Kind: fedclaimspb.BlobKind_BLOB_KIND_SHAMIR_SHARE, Size: uint64(len(b)), AssignmentSeq: seq, ToSiteId: k.SiteId}, [][]byte{b}); err != nil {
				return err
			}
		}
		return nil
	case fedclaimspb.KeySetupTask_STEP_COLLECT_SHAMIR_SHARES:
		var got []*secureagg.ShamirShare
		for _, d := range task.Dealers {
			b, err := s.download(ctx, 0, fedclaimspb.BlobKind_BLOB_KIND_SHAMIR_SHARE, d, nil)
			if err != nil {
				return err
			}
			var sealed secureagg.SealedShamirShare
			if err := sealed.UnmarshalBinary(b); err != nil {
				return err
			}
			sh, err := sealed.Open(s.tk)
			if err != nil {
				return err
			}
			got = append(got, sh)
		}
		if err := s.party.SetShamirShares(got); err != nil {
			return err
		}
	case fedclaimspb.KeySetupTask_STEP_COLLECTIVE_KEY:
		b, err := s.download(ctx, 0, fedclaimspb.BlobKind_BLOB_KIND_COLLECTIVE_PUBLIC_KEY, "", task.CollectiveKey)
		if err != nil {
			return err
		}
		var pk secureagg.PublicKey
		if err := pk.UnmarshalBinary(b); err != nil {
			return err
		}
		if err := s.party.SetPublicKey(&pk); err != nil {
			return err
		}
	}
	_, err := s.client.Acknowledge(ctx, &fedclaimspb.AcknowledgeRequest{Envelope: s.env(0), AssignmentSeq: seq})
	return err
}

// startUpload opens an upload and sends hdr, with the SHA-256 of msgs.
func (s *testSite) startUpload(ctx context.Context, round uint64, hdr *fedclaimspb.UploadHeader, msgs [][]byte) (fedclaimspb.Federation_UploadClient, error) {
	st, err := s.client.Upload(ctx)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	for _, m := range msgs {
		h.Write(m)
	}
	hdr.Sha256 = h.Sum(nil)
	if err := st.Send(&fedclaimspb.UploadRequest{Envelope: s.env(round), Part: &fedclaimspb.UploadRequest_Header{Header: hdr}}); err != nil {
		return nil, err
	}
	return st, nil
}

func (s *testSite) uploadBlob(ctx context.Context, round uint64, hdr *fedclaimspb.UploadHeader, msgs [][]byte) error {
	st, err := s.startUpload(ctx, round, hdr, msgs)
	if err != nil {
		return err
	}
	if _, _, err := fedclaimspb.SendMessages(msgs, func(c *fedclaimspb.Chunk) error {
		return st.Send(&fedclaimspb.UploadRequest{Envelope: s.env(round), Part: &fedclaimspb.UploadRequest_Chunk{Chunk: c}})
	}); err != nil {
		return err
	}
	resp, err := st.CloseAndRecv()
	if err != nil {
		return err
	}
	if !bytes.Equal(resp.Sha256, hdr.Sha256) || resp.Size != hdr.Size {
		return fmt.Errorf("aggregator received %d bytes hashing to %x, sent %d hashing to %x", resp.Size, resp.Sha256, hdr.Size, hdr.Sha256)
	}
	return nil
}

// uploadPartial sends hdr and the first chunk of msgs, then ends the stream.
func (s *testSite) uploadPartial(ctx context.Context, round uint64, hdr *fedclaimspb.UploadHeader, msgs [][]byte) error {
	st, err := s.startUpload(ctx, round, proto.Clone(hdr).(*fedclaimspb.UploadHeader), msgs)
	if err != nil {
		return err
	}
	c := &fedclaimspb.Chunk{Index: 0, Data: msgs[0]}
	if err := st.Send(&fedclaimspb.UploadRequest{Envelope: s.env(round), Part: &fedclaimspb.UploadRequest_Chunk{Chunk: c}}); err != nil {
		return err
	}
	// The stream ends early: the aggregator reads chunk 0 into the decryption, then
	// refuses the short share.
	if _, err := st.CloseAndRecv(); err == nil {
		return errors.New("a share cut after its first chunk was accepted")
	}
	return nil
}

func (s *testSite) openDownload(ctx context.Context, round uint64, kind fedclaimspb.BlobKind, from string, want *fedclaimspb.BlobRef) (*fedclaimspb.BlobReader, error) {
	st, err := s.client.Download(ctx, &fedclaimspb.DownloadRequest{Envelope: s.env(round), Kind: kind, FromSiteId: from})
	if err != nil {
		return nil, err
	}
	first, err := st.Recv()
	if err != nil {
		return nil, err
	}
	ref := first.GetHeader()
	if ref == nil {
		return nil, errors.New("download without a header")
	}
	if want != nil && (ref.Size != want.Size || !bytes.Equal(ref.Sha256, want.Sha256)) {
		return nil, fmt.Errorf("download of %s is %d bytes %x, the assignment named %d bytes %x", kind, ref.Size, ref.Sha256, want.Size, want.Sha256)
	}
	return fedclaimspb.NewBlobReader(func() (*fedclaimspb.Chunk, error) {
		m, err := st.Recv()
		if err != nil {
			return nil, err
		}
		return m.GetChunk(), nil
	}, ref.Size, ref.Sha256), nil
}

func (s *testSite) download(ctx context.Context, round uint64, kind fedclaimspb.BlobKind, from string, want *fedclaimspb.BlobRef) ([]byte, error) {
	r, err := s.openDownload(ctx, round, kind, from, want)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func (s *testSite) downloadMessages(ctx context.Context, round uint64, kind fedclaimspb.BlobKind, want *fedclaimspb.BlobRef) ([][]byte, error) {
	r, err := s.openDownload(ctx, round, kind, "", want)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		c, err := r.NextChunk()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c.Data)
	}
}

// flatModel reads a model.safetensors blob into Flatten's order, which is the order
// model.Save writes the tensors in.
func flatModel(blob []byte) ([]float32, error) {
	f, err := safetensors.Read(blob)
	if err != nil {
		return nil, err
	}
	var out []float32
	for _, t := range f.Tensors {
		out = append(out, t.Data...)
	}
	return out, nil
}

// randomDelta is a site's update for a version: small values, fixed by the seed.
func randomDelta(site string, version uint64, n int) []float32 {
	rng := rand.New(rand.NewPCG(version, uint64(len(site))*7919+uint64(site[0])))
	d := make([]float32, n)
	for i := range d {
		d[i] = float32(rng.Float64()*0.2 - 0.1)
	}
	return d
}
