package fedclaimspb

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // gRPC's default codec, for comparison
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

func chunkResponse(n int) *DownloadResponse {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i * 7)
	}
	return &DownloadResponse{
		Envelope: &Envelope{FederationId: "f", RoundId: 3, SiteId: "b"},
		Part:     &DownloadResponse_Chunk{Chunk: &Chunk{Offset: 1 << 20, Index: 1, Data: data}},
	}
}

// TestCodecRoundTrip: what the codec marshals it unmarshals to an equal message,
// from one buffer or split across many (as the transport hands over a message that
// came in several frames), and the message keeps nothing of the buffers.
func TestCodecRoundTrip(t *testing.T) {
	c := Codec()
	if c.Name() != "proto" {
		t.Fatalf("codec name %q, want proto", c.Name())
	}
	for _, n := range []int{0, 1, 32<<10 - 1, 33 << 10, 64 << 10, MaxChunk} {
		in := chunkResponse(n)
		data, err := c.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		flat := data.Materialize()
		for _, pieces := range []int{1, 2, 7} {
			var split mem.BufferSlice
			step := len(flat)/pieces + 1
			for off := 0; off < len(flat); off += step {
				// Copies, so that scribbling on them below cannot reach flat.
				split = append(split, mem.SliceBuffer(bytes.Clone(flat[off:min(off+step, len(flat))])))
			}
			var out DownloadResponse
			if err := c.Unmarshal(split, &out); err != nil {
				t.Fatalf("%d bytes in %d pieces: %v", n, pieces, err)
			}
			for _, b := range split {
				clear(b.ReadOnlyData())
			}
			if !proto.Equal(in, &out) {
				t.Fatalf("%d bytes in %d pieces: round trip differs", n, pieces)
			}
		}
	}
	if _, err := c.Marshal("not a message"); err == nil {
		t.Error("marshalled a string")
	}
	var s string
	if err := c.Unmarshal(nil, &s); err == nil {
		t.Error("unmarshalled into a string")
	}
}

// TestCodecExactSize: a message is marshalled into one buffer of exactly its size,
// where gRPC's default codec takes a pooled buffer of the next tier (1 MiB for
// anything from 32 KiB): the memory this codec exists to save.
func TestCodecExactSize(t *testing.T) {
	for _, n := range []int{1, 33 << 10, 64 << 10, MaxChunk} {
		in := chunkResponse(n)
		want := proto.Size(in)
		data, err := Codec().Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != 1 || data.Len() != want {
			t.Fatalf("%d-byte chunk: %d buffers, %d bytes; want 1 of %d", n, len(data), data.Len(), want)
		}
		if b := data[0].ReadOnlyData(); cap(b) != want {
			t.Errorf("%d-byte chunk: buffer capacity %d, message %d bytes", n, cap(b), want)
		}
		data.Free()
	}
	// The comparison that motivates it: the default codec rounds a 64 KiB chunk up.
	def := encoding.GetCodecV2("proto")
	data, err := def.Marshal(chunkResponse(64 << 10))
	if err != nil {
		t.Fatal(err)
	}
	defer data.Free()
	if b := data[0].ReadOnlyData(); cap(b) <= 2*len(b) {
		t.Logf("gRPC's default codec no longer rounds up (capacity %d for %d bytes): the exact-size codec may be unnecessary", cap(b), len(b))
	}
}
