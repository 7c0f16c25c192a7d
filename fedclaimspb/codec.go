package fedclaimspb

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// exactCodec is the aggregator's gRPC codec: protobuf, like gRPC's default, but it
// never rounds a message up to a pooled buffer. gRPC's default codec puts every
// message between 32 KiB and 1 MiB into a pooled 1 MiB buffer, on the way out
// (held until the message is on the wire, which on a slow link is a while) and on
// the way in; with a stream per site in flight that is 1–2 MiB per site, for
// 64 KiB ciphertext chunks and 33 KiB sealed shares. Here a message sent gets a
// buffer of exactly its size, which the garbage collector frees, and a message
// received is decoded from the transport's own buffer when it arrived in one, or
// else from one exact-size copy: protobuf copies bytes fields out, so nothing of
// either is kept after Unmarshal.
type exactCodec struct{}

// Codec returns the exact-size codec that ServerOptions installs, registered under
// gRPC's name for protobuf, "proto".
func Codec() encoding.CodecV2 { return exactCodec{} }

func (exactCodec) Name() string { return "proto" }

func (exactCodec) Marshal(v any) (mem.BufferSlice, error) {
	m := messageOf(v)
	if m == nil {
		return nil, fmt.Errorf("proto codec: cannot marshal %T, not a protobuf message", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, nil
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (exactCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m := messageOf(v)
	if m == nil {
		return fmt.Errorf("proto codec: cannot unmarshal into %T, not a protobuf message", v)
	}
	var b []byte
	switch len(data) {
	case 0:
	case 1:
		// The transport's own buffer, reused once this returns: protobuf copies
		// bytes fields out, so the message keeps nothing of it.
		b = data[0].ReadOnlyData()
	default:
		// A message that came in several frames: one copy of exactly its size,
		// garbage once decoded, rather than a pooled 1 MiB buffer.
		b = data.Materialize()
	}
	return proto.Unmarshal(b, m)
}

func messageOf(v any) proto.Message {
	switch v := v.(type) {
	case protoadapt.MessageV2:
		return v
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(v)
	}
	return nil
}
