package secureagg

import (
	"bytes"
	"testing"
)

// fuzzUnmarshal checks that decoding arbitrary bytes never panics, and that
// whatever decodes re-encodes to the same bytes.
func fuzzUnmarshal(f *testing.F, name string, newMsg func() binaryMessage) {
	if m, ok := messages(f)[name]; ok {
		b, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m := newMsg()
		if err := m.UnmarshalBinary(in); err != nil {
			return
		}
		out, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded message does not re-encode: %v", err)
		}
		if !bytes.Equal(in, out) {
			t.Fatal("re-encoding differs from the input")
		}
	})
}

func FuzzPublicKeyShare(f *testing.F) {
	fuzzUnmarshal(f, "public-key share", func() binaryMessage { return new(PublicKeyShare) })
}

func FuzzPublicKey(f *testing.F) {
	fuzzUnmarshal(f, "public key", func() binaryMessage { return new(PublicKey) })
}

func FuzzShamirShare(f *testing.F) {
	fuzzUnmarshal(f, "shamir share", func() binaryMessage { return new(ShamirShare) })
}

func FuzzChunk(f *testing.F) {
	fuzzUnmarshal(f, "chunk", func() binaryMessage { return new(Chunk) })
}

func FuzzSumChunk(f *testing.F) {
	fuzzUnmarshal(f, "sum chunk", func() binaryMessage { return new(SumChunk) })
}

func FuzzShareChunk(f *testing.F) {
	fuzzUnmarshal(f, "decryption share", func() binaryMessage { return new(ShareChunk) })
}

func FuzzSealedShamirShare(f *testing.F) {
	fuzzUnmarshal(f, "sealed shamir share", func() binaryMessage { return new(SealedShamirShare) })
}
