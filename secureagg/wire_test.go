package secureagg

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"
)

// messages returns one of every wire message from a small federation.
func messages(t testing.TB) map[string]binaryMessage {
	t.Helper()
	ctx := context.Background()
	cfg, parties := federation(t, 3, 2)
	pks, err := parties[0].PublicKeyShare()
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewPublicKeyGen(cfg.Params, cfg.Federation)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := g.GenPublicKey(pks)
	if err != nil {
		t.Fatal(err)
	}
	shamir, err := parties[0].ShamirShares()
	if err != nil {
		t.Fatal(err)
	}
	agg, err := NewAggregate(cfg, 3, 10)
	if err != nil {
		t.Fatal(err)
	}
	var chunks []*Chunk
	for i, p := range parties { // MinSites is t+1 = 3: every site contributes
		c, err := p.Encrypt(ctx, 3, randomUpdate(uint64(1+i), 10), 5)
		if err != nil {
			t.Fatal(err)
		}
		if err := agg.Add(c[0]); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			chunks = c
		}
	}
	sums := agg.Seal()
	shares, err := parties[1].DecryptShare(ctx, cfg.Sites[:2], sums)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := NewTransportKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := shamir[1].Seal(tk.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]binaryMessage{
		"sealed shamir share": sealed,
		"public-key share":    pks,
		"public key":          pk,
		"shamir share":        shamir[1],
		"chunk":               chunks[0],
		"sum chunk":           sums[0],
		"decryption share":    shares[0],
	}
}

func fresh(m binaryMessage) binaryMessage {
	switch m.(type) {
	case *PublicKeyShare:
		return new(PublicKeyShare)
	case *PublicKey:
		return new(PublicKey)
	case *ShamirShare:
		return new(ShamirShare)
	case *Chunk:
		return new(Chunk)
	case *SumChunk:
		return new(SumChunk)
	case *ShareChunk:
		return new(ShareChunk)
	case *SealedShamirShare:
		return new(SealedShamirShare)
	}
	panic("unknown message type")
}

func TestRoundTrip(t *testing.T) {
	for name, m := range messages(t) {
		t.Run(name, func(t *testing.T) {
			b, err := m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if b[0] != Version {
				t.Fatalf("first byte %d, want version %d", b[0], Version)
			}
			back := fresh(m)
			if err := back.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			b2, err := back.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, b2) {
				t.Fatal("re-encoding differs from the original encoding")
			}
		})
	}
}

func TestUnmarshalRefused(t *testing.T) {
	msgs := messages(t)
	chunk, err := msgs["chunk"].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(chunk)) }
	hdr := Header{Federation: "fed-test"}.size()
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"other version", mutate(func(b []byte) []byte { b[0] = 2; return b }), ErrMalformed},
		{"other message type", mutate(func(b []byte) []byte { b[1] = byte(kindSumChunk); return b }), ErrMalformed},
		{"unknown parameter set", mutate(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[2:], 77); return b }), ErrParams},
		{"truncated", chunk[:len(chunk)-1], ErrMalformed},
		{"trailing bytes", append(bytes.Clone(chunk), 0), ErrMalformed},
		{"coefficient not reduced", mutate(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[hdr:], ^uint64(0))
			return b
		}), ErrMalformed},
		{"index beyond total", mutate(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[hdr-8:], 5)
			return b
		}), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := new(Chunk).UnmarshalBinary(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("UnmarshalBinary: %v, want %v", err, tc.want)
			}
		})
	}
}
