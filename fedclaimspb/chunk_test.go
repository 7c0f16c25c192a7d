package fedclaimspb

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"testing"
)

// feed returns a next function over chunks, then io.EOF.
func feed(chunks ...*Chunk) func() (*Chunk, error) {
	return func() (*Chunk, error) {
		if len(chunks) == 0 {
			return nil, io.EOF
		}
		c := chunks[0]
		chunks = chunks[1:]
		return c, nil
	}
}

func TestBlobReader(t *testing.T) {
	data := bytes.Repeat([]byte("fedclaims"), 1000)
	sum := sha256.Sum256(data)
	split := func(at ...int) []*Chunk {
		var out []*Chunk
		prev := 0
		for i, a := range append(at, len(data)) {
			out = append(out, &Chunk{Offset: uint64(prev), Index: uint32(i), Data: data[prev:a]})
			prev = a
		}
		return out
	}
	good := split(100, 5000)
	tests := []struct {
		name   string
		chunks []*Chunk
		size   uint64
		sum    []byte
		ok     bool
	}{
		{"whole", good, uint64(len(data)), sum[:], true},
		{"no hash announced", good, uint64(len(data)), nil, true},
		{"one chunk", split(), uint64(len(data)), sum[:], true},
		{"wrong hash", good, uint64(len(data)), make([]byte, 32), false},
		{"short", good[:2], uint64(len(data)), nil, false},
		{"announced too small", good, uint64(len(data)) - 1, nil, false},
		{"gap", []*Chunk{good[0], good[2]}, uint64(len(data)), nil, false},
		{"repeat", []*Chunk{good[0], good[0], good[1], good[2]}, uint64(len(data)), nil, false},
		{"wrong index", []*Chunk{good[0], {Offset: 100, Index: 7, Data: data[100:5000]}, good[2]}, uint64(len(data)), nil, false},
		{"empty chunk", []*Chunk{good[0], {Offset: 100, Index: 1}, good[1]}, uint64(len(data)), nil, false},
		{"nil chunk", []*Chunk{good[0], nil}, uint64(len(data)), nil, false},
		{"oversized chunk", []*Chunk{{Data: make([]byte, MaxChunk+1)}}, MaxChunk + 1, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewBlobReader(feed(tt.chunks...), tt.size, tt.sum)
			got, err := io.ReadAll(r)
			if tt.ok {
				if err != nil || !bytes.Equal(got, data) || !bytes.Equal(r.Sum(), sum[:]) {
					t.Fatalf("read %d bytes, %v", len(got), err)
				}
				return
			}
			if !errors.Is(err, ErrBlob) {
				t.Fatalf("got %v, want ErrBlob", err)
			}
		})
	}
}

func TestSendBlobRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, MaxChunk - 1, MaxChunk, MaxChunk + 1, 3*MaxChunk + 17} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i * 7)
		}
		var chunks []*Chunk
		size, sum, err := SendBlob(bytes.NewReader(data), func(c *Chunk) error {
			chunks = append(chunks, c)
			return nil
		})
		want := sha256.Sum256(data)
		if err != nil || size != uint64(n) || !bytes.Equal(sum, want[:]) {
			t.Fatalf("n=%d: size %d, %v", n, size, err)
		}
		if len(chunks) != (n+MaxChunk-1)/MaxChunk {
			t.Errorf("n=%d: %d chunks", n, len(chunks))
		}
		got, err := io.ReadAll(NewBlobReader(feed(chunks...), size, sum))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("n=%d: round trip: %v", n, err)
		}
	}
}

func TestSendMessages(t *testing.T) {
	msgs := [][]byte{[]byte("one"), []byte("two!"), []byte("three")}
	var chunks []*Chunk
	size, sum, err := SendMessages(msgs, func(c *Chunk) error { chunks = append(chunks, c); return nil })
	if err != nil || size != 12 {
		t.Fatal(size, err)
	}
	r := NewBlobReader(feed(chunks...), size, sum)
	for i, m := range msgs {
		c, err := r.NextChunk()
		if err != nil || !bytes.Equal(c.Data, m) || c.Index != uint32(i) {
			t.Fatalf("chunk %d: %v, %v", i, c, err)
		}
	}
	if _, err := r.NextChunk(); err != io.EOF {
		t.Errorf("after the last chunk: %v", err)
	}
	if _, _, err := SendMessages([][]byte{make([]byte, MaxChunk+1)}, func(*Chunk) error { return nil }); !errors.Is(err, ErrBlob) {
		t.Errorf("oversized message: %v", err)
	}
}

// FuzzBlobReader cuts a blob into chunks at fuzzed places, with a fuzzed offset error,
// and checks the reader returns the blob exactly when the chunks are right and
// ErrBlob otherwise, never anything in between.
func FuzzBlobReader(f *testing.F) {
	f.Add([]byte("hello, federation"), uint16(5), uint16(9), int8(0), true)
	f.Add([]byte("hello, federation"), uint16(5), uint16(9), int8(-2), false)
	f.Add([]byte(""), uint16(0), uint16(0), int8(0), true)
	f.Fuzz(func(t *testing.T, data []byte, cut1, cut2 uint16, skew int8, announce bool) {
		a, b := int(cut1)%(len(data)+1), int(cut2)%(len(data)+1)
		if a > b {
			a, b = b, a
		}
		var chunks []*Chunk
		for i, part := range [][2]int{{0, a}, {a, b}, {b, len(data)}} {
			if part[0] == part[1] {
				continue
			}
			chunks = append(chunks, &Chunk{Offset: uint64(part[0]), Index: uint32(len(chunks)), Data: data[part[0]:part[1]]})
			if i == 1 {
				chunks[len(chunks)-1].Offset += uint64(int64(skew))
			}
		}
		var sum []byte
		if announce {
			s := sha256.Sum256(data)
			sum = s[:]
		}
		got, err := io.ReadAll(NewBlobReader(feed(chunks...), uint64(len(data)), sum))
		if err != nil {
			if !errors.Is(err, ErrBlob) {
				t.Fatalf("error %v is not ErrBlob", err)
			}
			return
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("read %q, want %q", got, data)
		}
	})
}

// TestSendBytes: chunks of at most MaxChunk, split exactly at its multiples, each a
// slice of the blob (no copy) that cannot be appended into the next, and a blob
// that BlobReader reassembles with the size and hash SendBytes returns.
func TestSendBytes(t *testing.T) {
	for _, n := range []int{0, 1, MaxChunk - 1, MaxChunk, MaxChunk + 1, 2 * MaxChunk, 2*MaxChunk + 5} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i % 251)
		}
		var chunks []*Chunk
		size, sum, err := SendBytes(data, func(c *Chunk) error { chunks = append(chunks, c); return nil })
		if err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(data)
		if size != uint64(n) || !bytes.Equal(sum, want[:]) {
			t.Fatalf("%d bytes: size %d, sum %x", n, size, sum)
		}
		if wantChunks := (n + MaxChunk - 1) / MaxChunk; len(chunks) != wantChunks {
			t.Fatalf("%d bytes: %d chunks, want %d", n, len(chunks), wantChunks)
		}
		for i, c := range chunks {
			off := i * MaxChunk
			wantLen := min(MaxChunk, n-off)
			switch {
			case c.Index != uint32(i) || c.Offset != uint64(off):
				t.Fatalf("%d bytes: chunk %d has index %d offset %d", n, i, c.Index, c.Offset)
			case len(c.Data) != wantLen || cap(c.Data) != wantLen:
				t.Fatalf("%d bytes: chunk %d has %d bytes (capacity %d), want %d", n, i, len(c.Data), cap(c.Data), wantLen)
			case &c.Data[0] != &data[off]:
				t.Fatalf("%d bytes: chunk %d is a copy, not a slice of the blob", n, i)
			}
		}
		r := NewBlobReader(feed(chunks...), size, sum)
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: reassembled %d bytes, %v", n, len(got), err)
		}
	}
	// A send that fails stops the blob at the chunk it failed on.
	boom := errors.New("boom")
	sent := 0
	off, _, err := SendBytes(make([]byte, 3*MaxChunk), func(*Chunk) error {
		if sent++; sent == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || off != MaxChunk || sent != 2 {
		t.Fatalf("after a failed send: offset %d, %d sends, %v", off, sent, err)
	}
}

// TestSendBlobSizes: SendBlob over a reader that tells its length (its read buffer
// sized to it) and over one that does not cuts the same chunks at the same
// boundaries.
func TestSendBlobSizes(t *testing.T) {
	for _, n := range []int{0, 1, MaxChunk - 1, MaxChunk, MaxChunk + 1, 2*MaxChunk + 5} {
		data := bytes.Repeat([]byte{7}, n)
		var lens [2][]int
		for i, r := range []io.Reader{bytes.NewReader(data), io.MultiReader(bytes.NewReader(data))} {
			size, _, err := SendBlob(r, func(c *Chunk) error { lens[i] = append(lens[i], len(c.Data)); return nil })
			if err != nil || size != uint64(n) {
				t.Fatalf("%d bytes: size %d, %v", n, size, err)
			}
		}
		if fmt.Sprint(lens[0]) != fmt.Sprint(lens[1]) {
			t.Fatalf("%d bytes: chunks %v with the length known, %v without", n, lens[0], lens[1])
		}
	}
}
