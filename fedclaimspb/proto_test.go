package fedclaimspb

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fedclaims/fedclaims/certs"
)

const federation = "fed-test"

// testFederation is the least Federation server that exercises the wire rules:
// envelope checks, identities, chunked uploads and downloads.
type testFederation struct {
	UnimplementedFederationServer
	blob []byte // served by Download
}

func (s *testFederation) Enroll(ctx context.Context, req *EnrollRequest) (*EnrollResponse, error) {
	if err := CheckEnvelope(ctx, req.Envelope, federation, 0); err != nil {
		return nil, err
	}
	id, _ := Caller(ctx)
	return &EnrollResponse{
		Envelope: &Envelope{FederationId: federation, SiteId: id.ID},
		Config:   &FederationConfig{FederationId: federation, Sites: []string{id.ID}},
	}, nil
}

func (s *testFederation) Upload(stream grpc.ClientStreamingServer[UploadRequest, UploadResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if err := CheckEnvelope(ctx, first.Envelope, federation, 1); err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return status.Error(codes.InvalidArgument, "upload without a header")
	}
	br := NewBlobReader(func() (*Chunk, error) {
		m, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		if err := CheckEnvelope(ctx, m.Envelope, federation, 1); err != nil {
			return nil, err
		}
		return m.GetChunk(), nil
	}, h.Size, h.Sha256)
	if _, err := io.Copy(io.Discard, br); err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return stream.SendAndClose(&UploadResponse{Envelope: first.Envelope, Size: br.Size(), Sha256: br.Sum()})
}

func (s *testFederation) Download(req *DownloadRequest, stream grpc.ServerStreamingServer[DownloadResponse]) error {
	if err := CheckEnvelope(stream.Context(), req.Envelope, federation, 1); err != nil {
		return err
	}
	sum := sha256.Sum256(s.blob)
	env := &Envelope{FederationId: federation, RoundId: 1, SiteId: req.Envelope.SiteId}
	if err := stream.Send(&DownloadResponse{Envelope: env, Part: &DownloadResponse_Header{Header: &BlobRef{Kind: req.Kind, Size: uint64(len(s.blob)), Sha256: sum[:]}}}); err != nil {
		return err
	}
	_, _, err := SendBlob(bytes.NewReader(s.blob), func(c *Chunk) error {
		return stream.Send(&DownloadResponse{Envelope: env, Part: &DownloadResponse_Chunk{Chunk: c}})
	})
	return err
}

// Work sends one assignment and then holds the stream open until the caller leaves,
// as the aggregator's Work does between assignments.
func (s *testFederation) Work(req *WorkRequest, stream grpc.ServerStreamingServer[Assignment]) error {
	ctx := stream.Context()
	if err := CheckEnvelope(ctx, req.Envelope, federation, 0); err != nil {
		return err
	}
	if err := stream.Send(&Assignment{Envelope: req.Envelope, Seq: req.AfterSeq + 1}); err != nil {
		return err
	}
	<-ctx.Done()
	return status.FromContextError(ctx.Err()).Err()
}

type testAdmin struct {
	UnimplementedAdminServer
}

func (testAdmin) Status(ctx context.Context, req *StatusRequest) (*StatusResponse, error) {
	if err := CheckEnvelope(ctx, req.Envelope, federation, 0); err != nil {
		return nil, err
	}
	id, _ := Caller(ctx)
	return &StatusResponse{Envelope: req.Envelope, Phase: "called by " + id.String()}, nil
}

// federationFixture is a consortium with sites a, b (not allow-listed) and c
// (revoked), and an aggregator serving on loopback.
type federationFixture struct {
	dir, other string
	addr       string
	blob       []byte

	mu      sync.Mutex
	refused []string // "identity method" of each call refused before its handler
}

// fixtureConfig changes the fixture: which sites are revoked before the server
// starts (c by default) and what the guard adds.
type fixtureConfig struct {
	revoked []string
	guard   func(f *federationFixture, g *Guard)
}

func newFixture(t *testing.T, opts ...func(*fixtureConfig)) *federationFixture {
	t.Helper()
	cfg := fixtureConfig{revoked: []string{"c"}}
	for _, o := range opts {
		o(&cfg)
	}
	f := &federationFixture{dir: t.TempDir(), other: t.TempDir()}
	if err := certs.Init(f.dir, certs.Options{Sites: []string{"a", "b", "c"}}); err != nil {
		t.Fatal(err)
	}
	if err := certs.Init(f.other, certs.Options{Sites: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range cfg.revoked {
		if err := certs.Revoke(f.dir, certs.SiteFiles(f.dir, id).Cert); err != nil {
			t.Fatal(err)
		}
	}
	tlsConf, err := certs.ServerTLS(certs.AggregatorFiles(f.dir))
	if err != nil {
		t.Fatal(err)
	}
	guard := Guard{
		Allow: func(ctx context.Context, id certs.Identity, method string) error {
			if id.Role == certs.RoleSite && id.ID == "b" {
				return errors.New("site b is not on the allow-list")
			}
			return nil
		},
		Refused: func(ctx context.Context, method string, id certs.Identity, err error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.refused = append(f.refused, id.String()+" "+method)
		},
	}
	if cfg.guard != nil {
		cfg.guard(f, &guard)
	}
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	f.blob = make([]byte, 5*MaxChunk/2+123)
	for i := range f.blob {
		f.blob[i] = byte(rng.Uint32())
	}
	srv := grpc.NewServer(ServerOptions(tlsConf, guard)...)
	RegisterFederationServer(srv, &testFederation{blob: f.blob})
	RegisterAdminServer(srv, testAdmin{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	f.addr = lis.Addr().String()
	return f
}

// dial connects with the given certificate files.
func (f *federationFixture) dial(t *testing.T, files certs.Files) *grpc.ClientConn {
	t.Helper()
	conf, err := certs.ClientTLS(files, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return f.dialConf(t, conf)
}

func (f *federationFixture) dialConf(t *testing.T, conf *tls.Config) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient(f.addr, DialOptions(conf)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLoopbackIdentity(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// An impostor: a site certificate from another consortium, trusting ours.
	foreign := certs.SiteFiles(f.other, "a")
	foreignConf, err := certs.ClientTLS(foreign, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ours, err := certs.ClientTLS(certs.SiteFiles(f.dir, "a"), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	foreignConf.RootCAs = ours.RootCAs
	noCert := ours.Clone()
	noCert.Certificates = nil

	site := func(id string) *Envelope { return &Envelope{FederationId: federation, SiteId: id} }
	tests := []struct {
		name string
		conn *grpc.ClientConn
		env  *Envelope
		want codes.Code
	}{
		{"site a", f.dial(t, certs.SiteFiles(f.dir, "a")), site("a"), codes.OK},
		{"site a claims to be b", f.dial(t, certs.SiteFiles(f.dir, "a")), site("b"), codes.PermissionDenied},
		{"site a in another federation", f.dial(t, certs.SiteFiles(f.dir, "a")), &Envelope{FederationId: "other", SiteId: "a"}, codes.FailedPrecondition},
		{"site a in the wrong round", f.dial(t, certs.SiteFiles(f.dir, "a")), &Envelope{FederationId: federation, RoundId: 3, SiteId: "a"}, codes.FailedPrecondition},
		{"site a without envelope", f.dial(t, certs.SiteFiles(f.dir, "a")), nil, codes.InvalidArgument},
		{"site b not allow-listed", f.dial(t, certs.SiteFiles(f.dir, "b")), site("b"), codes.PermissionDenied},
		{"site c revoked", f.dial(t, certs.SiteFiles(f.dir, "c")), site("c"), codes.Unavailable},
		{"certificate from another CA", f.dialConf(t, foreignConf), site("a"), codes.Unavailable},
		{"no certificate", f.dialConf(t, noCert), site("a"), codes.Unavailable},
		{"admin calls a site method", f.dial(t, certs.AdminFiles(f.dir)), &Envelope{FederationId: federation}, codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := NewFederationClient(tt.conn).Enroll(ctx, &EnrollRequest{Envelope: tt.env})
			if got := status.Code(err); got != tt.want {
				t.Fatalf("code %v (%v), want %v", got, err, tt.want)
			}
			if tt.want == codes.OK && resp.Envelope.SiteId != tt.env.SiteId {
				t.Errorf("handler saw site %q, want %q", resp.Envelope.SiteId, tt.env.SiteId)
			}
		})
	}

	admin := NewAdminClient(f.dial(t, certs.AdminFiles(f.dir)))
	st, err := admin.Status(ctx, &StatusRequest{Envelope: &Envelope{FederationId: federation}})
	if err != nil || st.Phase != "called by fedclaims://admin/admin" {
		t.Errorf("admin status: %v, %v", st, err)
	}
	_, err = NewAdminClient(f.dial(t, certs.SiteFiles(f.dir, "a"))).Status(ctx, &StatusRequest{Envelope: site("a")})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("site calling admin: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	want := []string{
		"fedclaims://site/b /fedclaims.v1.Federation/Enroll",
		"fedclaims://admin/admin /fedclaims.v1.Federation/Enroll",
		"fedclaims://site/a /fedclaims.v1.Admin/Status",
	}
	if !slices.Equal(f.refused, want) {
		t.Errorf("refusals reported %q, want %q", f.refused, want)
	}
}

func TestLoopbackBlobs(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := NewFederationClient(f.dial(t, certs.SiteFiles(f.dir, "a")))
	env := &Envelope{FederationId: federation, RoundId: 1, SiteId: "a"}
	sum := sha256.Sum256(f.blob)

	upload := func(header *UploadHeader, chunkEnv *Envelope) (*UploadResponse, error) {
		stream, err := client.Upload(ctx)
		if err != nil {
			return nil, err
		}
		if err := stream.Send(&UploadRequest{Envelope: env, Part: &UploadRequest_Header{Header: header}}); err != nil {
			return nil, err
		}
		_, _, err = SendBlob(bytes.NewReader(f.blob), func(c *Chunk) error {
			return stream.Send(&UploadRequest{Envelope: chunkEnv, Part: &UploadRequest_Chunk{Chunk: c}})
		})
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return stream.CloseAndRecv()
	}

	resp, err := upload(&UploadHeader{Kind: BlobKind_BLOB_KIND_ENCRYPTED_UPDATE, Size: uint64(len(f.blob)), Sha256: sum[:]}, env)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Size != uint64(len(f.blob)) || !bytes.Equal(resp.Sha256, sum[:]) {
		t.Errorf("upload received %d bytes %x, sent %d %x", resp.Size, resp.Sha256, len(f.blob), sum)
	}

	wrong := sha256.Sum256([]byte("something else"))
	_, err = upload(&UploadHeader{Kind: BlobKind_BLOB_KIND_ENCRYPTED_UPDATE, Size: uint64(len(f.blob)), Sha256: wrong[:]}, env)
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("upload with a wrong hash: %v", err)
	}
	_, err = upload(&UploadHeader{Kind: BlobKind_BLOB_KIND_ENCRYPTED_UPDATE, Size: uint64(len(f.blob)) - 1}, env)
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("upload longer than announced: %v", err)
	}
	// Chunks that switch site mid-stream are refused like a bad header.
	_, err = upload(&UploadHeader{Kind: BlobKind_BLOB_KIND_ENCRYPTED_UPDATE, Size: uint64(len(f.blob))}, &Envelope{FederationId: federation, RoundId: 1, SiteId: "b"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("chunks from another site id: %v", err)
	}

	stream, err := client.Download(ctx, &DownloadRequest{Envelope: env, Kind: BlobKind_BLOB_KIND_GLOBAL_MODEL})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	h := first.GetHeader()
	chunks := 0
	br := NewBlobReader(func() (*Chunk, error) {
		m, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		chunks++
		return m.GetChunk(), nil
	}, h.GetSize(), h.GetSha256())
	got, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, f.blob) || chunks != 3 {
		t.Errorf("downloaded %d bytes in %d chunks, want %d in 3", len(got), chunks, len(f.blob))
	}
}

func TestShareKey(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	if err := certs.Init(dir, certs.Options{Sites: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	if err := certs.Init(other, certs.Options{Sites: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	load := func(dir, site string) tls.Certificate {
		pair, _, err := certs.LoadPair(certs.SiteFiles(dir, site))
		if err != nil {
			t.Fatal(err)
		}
		return pair
	}
	a, foreign := load(dir, "a"), load(other, "a")
	ca, err := certs.LoadCert(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	pub := bytes.Repeat([]byte{7}, 32)
	good, err := SignShareKey(a.PrivateKey.(crypto.Signer), a.Leaf, federation, pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyShareKey(good, federation, roots, time.Now()); err != nil {
		t.Fatal(err)
	}
	tampered := func(edit func(k *SignedKey)) *SignedKey {
		k := &SignedKey{SiteId: good.SiteId, PublicKey: bytes.Clone(good.PublicKey), Certificate: good.Certificate, Signature: good.Signature}
		edit(k)
		return k
	}
	fromForeign, err := SignShareKey(foreign.PrivateKey.(crypto.Signer), foreign.Leaf, federation, pub)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  *SignedKey
		fed  string
	}{
		{"key swapped", tampered(func(k *SignedKey) { k.PublicKey[0] ^= 1 }), federation},
		{"site relabelled", tampered(func(k *SignedKey) { k.SiteId = "b" }), federation},
		{"other federation", good, "other"},
		{"signature cut", tampered(func(k *SignedKey) { k.Signature = k.Signature[:10] }), federation},
		{"certificate from another CA", fromForeign, federation},
		{"missing", nil, federation},
	}
	for _, tt := range tests {
		if err := VerifyShareKey(tt.key, tt.fed, roots, time.Now()); !errors.Is(err, ErrShareKey) {
			t.Errorf("%s: %v, want ErrShareKey", tt.name, err)
		}
	}
	if err := VerifyShareKey(good, federation, roots, time.Now().Add(10*365*24*time.Hour)); !errors.Is(err, ErrShareKey) {
		t.Errorf("expired certificate: %v", err)
	}
}
