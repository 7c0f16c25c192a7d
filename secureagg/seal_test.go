package secureagg

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealedShamirShare(t *testing.T) {
	_, parties := federation(t, 3, 2)
	shares, err := parties[0].ShamirShares()
	if err != nil {
		t.Fatal(err)
	}
	alice, err := NewTransportKey()
	if err != nil {
		t.Fatal(err)
	}
	mallory, err := NewTransportKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := shares[1].Seal(alice.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	wire := roundTrip(t, sealed, new(SealedShamirShare))
	plain, err := shares[1].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := wire.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, plain[len(plain)-64:]) {
		t.Fatal("sealed share contains the share's coefficients in the clear")
	}
	opened, err := wire.Open(alice)
	if err != nil {
		t.Fatal(err)
	}
	got, err := opened.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, plain) {
		t.Fatal("opened share differs from the sealed one")
	}
	if _, err := wire.Open(mallory); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Open with another site's key: %v, want ErrMalformed", err)
	}
	moved := *wire
	moved.Index = uint32(parties[2].Site())
	if _, err := moved.Open(alice); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Open under a rewritten header: %v, want ErrMalformed", err)
	}
	keyBytes, err := alice.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var restored TransportKey
	if err := restored.UnmarshalBinary(keyBytes); err != nil {
		t.Fatal(err)
	}
	if _, err := wire.Open(&restored); err != nil {
		t.Fatalf("Open with the restored key: %v", err)
	}
}
