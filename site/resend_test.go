package site

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/secureagg"
)

// fakeAggregator serves one aggregate blob for download and records uploads; an
// upload whose chunk breakAt (when positive) is sent fails there, as a broken
// stream would.
type fakeAggregator struct {
	fedclaimspb.FederationClient // unused methods: nil
	aggregate                    [][]byte
	breakAt                      int
	uploads                      [][][]byte // chunks received per upload, the broken ones included
}

type fakeStream struct{ grpc.ClientStream }

type fakeUpload struct {
	fakeStream
	f     *fakeAggregator
	env   *fedclaimspb.Envelope
	i     int
	chunk int
}

func (u *fakeUpload) Send(m *fedclaimspb.UploadRequest) error {
	u.env = m.Envelope
	c := m.GetChunk()
	if c == nil {
		u.f.uploads = append(u.f.uploads, nil)
		u.i = len(u.f.uploads) - 1
		return nil
	}
	if u.f.breakAt > 0 && u.chunk == u.f.breakAt {
		return status.Error(codes.Unavailable, "connection reset")
	}
	u.chunk++
	u.f.uploads[u.i] = append(u.f.uploads[u.i], slices.Clone(c.Data))
	return nil
}

func (u *fakeUpload) CloseAndRecv() (*fedclaimspb.UploadResponse, error) {
	got := bytes.Join(u.f.uploads[u.i], nil)
	sum := sha256.Sum256(got)
	return &fedclaimspb.UploadResponse{Envelope: u.env, Size: uint64(len(got)), Sha256: sum[:]}, nil
}

func (f *fakeAggregator) Upload(context.Context, ...grpc.CallOption) (grpc.ClientStreamingClient[fedclaimspb.UploadRequest, fedclaimspb.UploadResponse], error) {
	return &fakeUpload{f: f}, nil
}

type fakeDownload struct {
	fakeStream
	env  *fedclaimspb.Envelope
	msgs []*fedclaimspb.DownloadResponse
}

func (d *fakeDownload) Recv() (*fedclaimspb.DownloadResponse, error) {
	if len(d.msgs) == 0 {
		return nil, io.EOF
	}
	m := d.msgs[0]
	d.msgs = d.msgs[1:]
	return m, nil
}

func (f *fakeAggregator) ref() *fedclaimspb.BlobRef {
	b := bytes.Join(f.aggregate, nil)
	sum := sha256.Sum256(b)
	return &fedclaimspb.BlobRef{Kind: fedclaimspb.BlobKind_BLOB_KIND_AGGREGATE, Size: uint64(len(b)), Sha256: sum[:]}
}

func (f *fakeAggregator) Download(_ context.Context, in *fedclaimspb.DownloadRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[fedclaimspb.DownloadResponse], error) {
	d := &fakeDownload{env: in.Envelope}
	d.msgs = append(d.msgs, &fedclaimspb.DownloadResponse{Envelope: in.Envelope, Part: &fedclaimspb.DownloadResponse_Header{Header: f.ref()}})
	var off uint64
	for i, c := range f.aggregate {
		d.msgs = append(d.msgs, &fedclaimspb.DownloadResponse{Envelope: in.Envelope, Part: &fedclaimspb.DownloadResponse_Chunk{Chunk: &fedclaimspb.Chunk{Offset: off, Index: uint32(i), Data: c}}})
		off += uint64(len(c))
	}
	return d, nil
}

// TestDecryptShareResent: a decryption-share upload broken mid-stream is answered,
// when the task comes again (also after a restart), with the very bytes released
// the first time, which the aggregator's Decryption accepts again chunk by chunk;
// the same round with another decrypting set or another aggregate stays refused.
func TestDecryptShareResent(t *testing.T) {
	ctx := context.Background()
	a := newTestAgent(t)
	sites := []string{"a", "b", "c"}
	a.fed = &fedclaimspb.FederationConfig{FederationId: "fed", Sites: sites, Threshold: 2, MinSites: 3}
	params, err := secureagg.NewParameters(secureagg.PresetN12Q60)
	if err != nil {
		t.Fatal(err)
	}
	parties, err := secureagg.SetupLocal(secureagg.Config{Params: params, Federation: "fed", Sites: rosterIDs(t, sites), Threshold: 2, MinSites: 3})
	if err != nil {
		t.Fatal(err)
	}
	a.party = parties[0]
	cfg := parties[0].Config()
	const round, values = 3, 2*4095 + 1 // three chunks
	agg, err := secureagg.NewAggregate(cfg, round, values)
	if err != nil {
		t.Fatal(err)
	}
	update := make([]float32, values)
	for i := range update {
		update[i] = float32(i%7) / 10
	}
	for _, p := range parties {
		chunks, err := p.Encrypt(ctx, round, update, cfg.WeightCap)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chunks {
			if err := agg.Add(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	fake := &fakeAggregator{breakAt: 1}
	sums := agg.Seal()
	for _, s := range sums {
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		fake.aggregate = append(fake.aggregate, b)
	}
	a.client = fake
	task := func(decryptors []string, ref *fedclaimspb.BlobRef) *fedclaimspb.Assignment {
		return &fedclaimspb.Assignment{Envelope: &fedclaimspb.Envelope{FederationId: "fed", RoundId: round, SiteId: "a"}, Seq: 4,
			Task: &fedclaimspb.Assignment_Decrypt{Decrypt: &fedclaimspb.DecryptTask{Contributors: sites, Decryptors: decryptors, Aggregate: ref}}}
	}
	ab := []string{"a", "b"}

	// The first upload breaks after one chunk, once the release is recorded.
	if err := a.handle(ctx, task(ab, fake.ref())); !transient(err) {
		t.Fatalf("broken upload: %v, want a transient error", err)
	}
	if rounds, _ := a.st.releasedRounds("fed"); !slices.Equal(rounds, []uint64{round}) {
		t.Fatalf("released rounds %v", rounds)
	}
	// The agent restarts and the task comes again: the kept bytes go again, whole;
	// also with a task that names no SHA-256 (the aggregate is then downloaded).
	fake.breakAt = 0
	a.st, err = openState(a.cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	noSum := fake.ref()
	noSum.Sha256 = nil
	for _, ref := range []*fedclaimspb.BlobRef{fake.ref(), noSum} {
		if err := a.handle(ctx, task(ab, ref)); err != nil {
			t.Fatalf("retried task: %v", err)
		}
	}
	if len(fake.uploads) != 3 || len(fake.uploads[0]) != 1 || len(fake.uploads[1]) != 3 ||
		!slices.EqualFunc(fake.uploads[1], fake.uploads[2], bytes.Equal) || !bytes.Equal(fake.uploads[0][0], fake.uploads[1][0]) {
		t.Fatalf("uploads of %v chunks: the retries are not the first upload's bytes", len(fake.uploads))
	}

	// The aggregator adds the broken upload, then the retries: the repeated chunks
	// are accepted and counted once, and the round decrypts.
	set := cfg.Sites[:2]
	dec, err := secureagg.NewDecryption(agg, set)
	if err != nil {
		t.Fatal(err)
	}
	for _, up := range fake.uploads {
		for _, c := range up {
			if err := dec.AddBinary(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	shares, err := parties[1].DecryptShare(ctx, set, sums)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shares {
		if err := dec.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	res, err := dec.Result(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for j, v := range update {
		if d := res.Mean[j] - v; d > 1e-4 || d < -1e-4 {
			t.Fatalf("value %d: %v, want %v", j, res.Mean[j], v)
		}
	}

	// What the rule is for: no share of another set or another aggregate.
	other := fake.ref()
	other.Sha256 = bytes.Repeat([]byte{7}, 32)
	for _, tt := range []struct {
		name string
		asg  *fedclaimspb.Assignment
		want string
	}{
		{"another decrypting set", task([]string{"a", "c"}, fake.ref()), "decrypting set"},
		{"another aggregate", task(ab, other), "aggregate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := len(fake.uploads)
			err := a.handle(ctx, tt.asg)
			if !errors.Is(err, ErrReleased) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrReleased naming the %s", err, tt.want)
			}
			if len(fake.uploads) != n {
				t.Fatal("something was uploaded")
			}
		})
	}
	// A share not kept (released before shares were kept, or lost) is not resent.
	if err := os.Remove(a.st.path(sharesFile)); err != nil {
		t.Fatal(err)
	}
	if err := a.handle(ctx, task(ab, fake.ref())); !errors.Is(err, ErrReleased) || !strings.Contains(err.Error(), "not kept") {
		t.Fatalf("released round without a kept share: %v", err)
	}
}

func TestCheckResend(t *testing.T) {
	agg := sha256.Sum256([]byte("aggregate"))
	kept := &releasedShares{Federation: "fed", Round: 4, Aggregate: agg, Set: []secureagg.SiteID{0, 2}, Msgs: [][]byte{{1}, {2}}}
	req := decryptRequest{Round: 4, Contributors: []secureagg.SiteID{0, 1, 2}, Decryptors: []secureagg.SiteID{0, 2}}
	otherAgg := sha256.Sum256([]byte("another aggregate"))
	tests := []struct {
		name      string
		kept      *releasedShares
		req       decryptRequest
		aggregate []byte
		want      string // "" for a resend
	}{
		{"same aggregate and set", kept, req, agg[:], ""},
		{"aggregate not known yet", kept, req, nil, ""},
		{"contributors listed otherwise (the sums say who)", kept, decryptRequest{Round: 4, Contributors: []secureagg.SiteID{0, 2, 3}, Decryptors: req.Decryptors}, agg[:], ""},
		{"nothing kept", nil, req, agg[:], "not kept"},
		{"kept for another round", &releasedShares{Round: 3, Aggregate: agg, Set: kept.Set, Msgs: kept.Msgs}, req, agg[:], "not kept"},
		{"another aggregate", kept, req, otherAgg[:], "for aggregate"},
		{"a truncated digest", kept, req, agg[:16], "for aggregate"},
		{"another set", kept, decryptRequest{Round: 4, Contributors: req.Contributors, Decryptors: []secureagg.SiteID{0, 1}}, agg[:], "decrypting set"},
		{"another set, aggregate not known yet", kept, decryptRequest{Round: 4, Contributors: req.Contributors, Decryptors: []secureagg.SiteID{1, 2}}, nil, "decrypting set"},
		{"kept share without chunks", &releasedShares{Round: 4, Aggregate: agg, Set: kept.Set}, req, agg[:], "no chunks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkResend(tt.kept, tt.req, tt.aggregate)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrReleased) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("checkResend: %v, want ErrReleased with %q", err, tt.want)
			}
		})
	}
}

func TestKeptShares(t *testing.T) {
	st, err := openState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if r, err := st.loadShares("fed", 1); r != nil || err != nil {
		t.Fatalf("nothing kept: %v, %v", r, err)
	}
	first := &releasedShares{Federation: "fed", Round: 1, Aggregate: sha256.Sum256([]byte("a")), Set: []secureagg.SiteID{0, 3}, Msgs: [][]byte{{1, 2, 3}, {}, {4}}}
	second := &releasedShares{Federation: "fed", Round: 2, Aggregate: sha256.Sum256([]byte("b")), Set: []secureagg.SiteID{1, 2}, Msgs: [][]byte{{9}}}
	if err := st.saveShares(first); err != nil {
		t.Fatal(err)
	}
	got, err := st.loadShares("fed", 1)
	if err != nil || got == nil || got.Round != 1 || got.Aggregate != first.Aggregate || !slices.Equal(got.Set, first.Set) ||
		!slices.EqualFunc(got.Msgs, first.Msgs, bytes.Equal) {
		t.Fatalf("loaded %+v, %v; saved %+v", got, err, first)
	}
	if fi, err := os.Stat(st.path(sharesFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kept shares file: %v", err)
	}
	// A later round's shares replace the older round's.
	if err := st.saveShares(second); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		fed   string
		round uint64
		want  *releasedShares
	}{{"fed", 1, nil}, {"fed", 2, second}, {"other", 2, nil}} {
		got, err := st.loadShares(tt.fed, tt.round)
		if err != nil || (got == nil) != (tt.want == nil) {
			t.Fatalf("%s round %d: %+v, %v", tt.fed, tt.round, got, err)
		}
	}
	b, err := os.ReadFile(st.path(sharesFile))
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"a flipped byte": append(append([]byte(nil), b[:20]...), append([]byte{b[20] ^ 1}, b[21:]...)...),
		"truncated":      b[:len(b)-1],
		"other magic":    append([]byte("xxxxxxxx"), b[8:]...),
	} {
		if err := os.WriteFile(st.path(sharesFile), bad, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := st.loadShares("fed", 2); err == nil {
			t.Fatalf("%s: kept shares loaded", name)
		}
	}
}
