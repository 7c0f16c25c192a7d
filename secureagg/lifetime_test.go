package secureagg

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestKeyContext(t *testing.T) {
	long := strings.Repeat("f", maxBaseFederationID)
	for _, tc := range []struct {
		fed   string
		epoch uint64
		want  string
	}{
		{"fed", 0, "fed"},
		{"fed", 1, "fed#k1"},
		{"fed", 42, "fed#k42"},
		{"fed", math.MaxUint64, "fed#k18446744073709551615"},
		{long, 0, long},
		{long, math.MaxUint64, long + "#k18446744073709551615"},
	} {
		got := KeyContext(tc.fed, tc.epoch)
		if got != tc.want {
			t.Errorf("KeyContext(%.10q…, %d) = %.10q…, want %.10q…", tc.fed, tc.epoch, got, tc.want)
		}
		if len(got) > maxFederationID {
			t.Errorf("KeyContext(%d bytes, %d) has %d bytes, beyond %d", len(tc.fed), tc.epoch, len(got), maxFederationID)
		}
	}
	if KeyContext("fed", 1) == KeyContext("fed", 2) || KeyContext("fed", 0) == KeyContext("fed", 1) {
		t.Fatal("two epochs share a key context")
	}
}

// TestKeyContextFits: every epoch of the longest federation id a
// configuration allows is a valid Config.Federation and survives every header.
func TestKeyContextFits(t *testing.T) {
	params, err := NewParameters(PresetN12Q60)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("f", maxBaseFederationID)
	for _, fed := range []string{"f", long[:254], long, KeyContext(long, 1), KeyContext(long, math.MaxUint64)} {
		cfg := Config{Params: params, Federation: fed, Sites: []SiteID{1, 2, 3}, Threshold: 2}
		if _, err := cfg.Normalize(); err != nil {
			t.Fatalf("federation of %d bytes: %v", len(fed), err)
		}
		h := Header{Params: params.ID(), Federation: fed, Round: 7, Site: 2, Index: 1, Total: 3}
		b, err := h.append(nil, kindChunk)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != h.size() {
			t.Fatalf("federation of %d bytes: header of %d bytes, size() says %d", len(fed), len(b), h.size())
		}
		if len(fed) <= maxBaseFederationID && int(b[4]) != len(fed) {
			t.Fatalf("federation of %d bytes: length byte %d, the first wire format's is the length", len(fed), b[4])
		}
		back, rest, err := decodeHeader(b, kindChunk)
		if err != nil || back != h || len(rest) != 0 {
			t.Fatalf("federation of %d bytes: decoded %v, %d bytes left, %v", len(fed), back, len(rest), err)
		}
	}
	tooLong := Config{Params: params, Federation: KeyContext(long, math.MaxUint64) + "x", Sites: []SiteID{1, 2, 3}}
	if _, err := tooLong.Normalize(); !errors.Is(err, ErrSetup) {
		t.Fatalf("federation of %d bytes: %v, want ErrSetup", len(tooLong.Federation), err)
	}
	// The extended prefix is the only encoding of a long id: a short one in it is refused.
	h := Header{Params: params.ID(), Federation: "fed"}
	b, err := h.append(nil, kindChunk)
	if err != nil {
		t.Fatal(err)
	}
	ext := append(append([]byte{}, b[:4]...), 0, 3, 0)
	ext = append(ext, b[5:]...)
	if _, _, err := decodeHeader(ext, kindChunk); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short id in the extended prefix: %v, want ErrMalformed", err)
	}
}
