package fedclaimspb

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fedclaims/fedclaims/certs"
)

// sink receives uploads and checks only the chunking, so that the benchmark's two
// transports do the same work above gRPC.
type sink struct {
	UnimplementedFederationServer
}

func (sink) Upload(stream grpc.ClientStreamingServer[UploadRequest, UploadResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	br := NewBlobReader(func() (*Chunk, error) {
		m, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		return m.GetChunk(), nil
	}, first.GetHeader().GetSize(), nil)
	if _, err := io.Copy(io.Discard, br); err != nil {
		return err
	}
	return stream.SendAndClose(&UploadResponse{Size: br.Size(), Sha256: br.Sum()})
}

// BenchmarkUpload sends an 8 MiB blob in chunks over loopback: through mutual TLS 1.3
// with the identity interceptors, and through plaintext gRPC as the baseline.
func BenchmarkUpload(b *testing.B) {
	blob := bytes.Repeat([]byte{0x5a, 0xa5, 0x3c}, 8<<20/3)
	dir := b.TempDir()
	if err := certs.Init(dir, certs.Options{Sites: []string{"a"}}); err != nil {
		b.Fatal(err)
	}
	serverTLS, err := certs.ServerTLS(certs.AggregatorFiles(dir))
	if err != nil {
		b.Fatal(err)
	}
	clientTLS, err := certs.ClientTLS(certs.SiteFiles(dir, "a"), "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		server []grpc.ServerOption
		dial   []grpc.DialOption
	}{
		{"mtls", ServerOptions(serverTLS, Guard{}), DialOptions(clientTLS)},
		{"plaintext", nil, []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			srv := grpc.NewServer(tt.server...)
			RegisterFederationServer(srv, sink{})
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(lis)
			defer srv.Stop()
			conn, err := grpc.NewClient(lis.Addr().String(), tt.dial...)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			client := NewFederationClient(conn)
			env := &Envelope{FederationId: "bench", RoundId: 1, SiteId: "a"}
			b.SetBytes(int64(len(blob)))
			for b.Loop() {
				stream, err := client.Upload(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				if err := stream.Send(&UploadRequest{Envelope: env, Part: &UploadRequest_Header{Header: &UploadHeader{Kind: BlobKind_BLOB_KIND_ENCRYPTED_UPDATE, Size: uint64(len(blob))}}}); err != nil {
					b.Fatal(err)
				}
				if _, _, err := SendBlob(bytes.NewReader(blob), func(c *Chunk) error {
					return stream.Send(&UploadRequest{Envelope: env, Part: &UploadRequest_Chunk{Chunk: c}})
				}); err != nil {
					b.Fatal(err)
				}
				resp, err := stream.CloseAndRecv()
				if err != nil || resp.Size != uint64(len(blob)) {
					b.Fatal(resp, err)
				}
			}
		})
	}
}
