package fedclaimspb

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
)

// MaxChunk is the most data one Chunk carries: 1 MiB, a quarter of gRPC's default
// message limit, leaving room for the envelope and framing.
const MaxChunk = 1 << 20

// ErrBlob reports a blob whose chunks do not add up: a gap, an overlap, an oversized
// chunk, more or fewer bytes than announced, or a hash that does not match.
var ErrBlob = errors.New("bad blob")

// SendBytes passes b to send in chunks of at most MaxChunk bytes, each a slice of b
// rather than a copy, returning the blob's size and SHA-256. b must not change while
// send may hold a chunk: use it for blobs held in memory and never written again (a
// gRPC stream's Send has encoded the message by the time it returns). An empty b
// sends no chunk.
func SendBytes(b []byte, send func(*Chunk) error) (uint64, []byte, error) {
	h := sha256.New()
	var off uint64
	for index := uint32(0); len(b) > 0; index++ {
		n := min(len(b), MaxChunk)
		h.Write(b[:n])
		// A full slice expression, so that nothing send does with the chunk's Data
		// (an append) can reach the bytes after it.
		if err := send(&Chunk{Offset: off, Index: index, Data: b[:n:n]}); err != nil {
			return off, nil, fmt.Errorf("sending chunk %d at offset %d: %w", index, off, err)
		}
		off += uint64(n)
		b = b[n:]
	}
	return off, h.Sum(nil), nil
}

// SendBlob reads r to EOF and passes it to send in chunks of at most MaxChunk bytes,
// returning the blob's size and SHA-256. Its read buffer is MaxChunk, or the length
// left in r when r says (a *bytes.Reader, *bytes.Buffer or *strings.Reader) and it is
// less, so that a small blob does not cost a 1 MiB buffer per download.
func SendBlob(r io.Reader, send func(*Chunk) error) (uint64, []byte, error) {
	h := sha256.New()
	size := MaxChunk
	if l, ok := r.(interface{ Len() int }); ok && l.Len() < size {
		// One byte more, so that the read that fills it sees EOF and ends the loop.
		size = l.Len() + 1
	}
	buf := make([]byte, size)
	var off uint64
	for index := uint32(0); ; index++ {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			h.Write(buf[:n])
			// The chunk is handed to gRPC, which may hold it until sent; give it its own slice.
			c := &Chunk{Offset: off, Index: index, Data: append([]byte(nil), buf[:n]...)}
			if serr := send(c); serr != nil {
				return off, nil, fmt.Errorf("sending chunk %d at offset %d: %w", index, off, serr)
			}
			off += uint64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return off, h.Sum(nil), nil
		}
		if err != nil {
			return off, nil, fmt.Errorf("reading blob at offset %d: %w", off, err)
		}
	}
}

// SendMessages sends each message as one chunk, for blobs made of secureagg messages
// that the receiver decodes one chunk at a time. It returns the blob's size and SHA-256.
func SendMessages(msgs [][]byte, send func(*Chunk) error) (uint64, []byte, error) {
	h := sha256.New()
	var off uint64
	for i, m := range msgs {
		if len(m) > MaxChunk {
			return off, nil, fmt.Errorf("%w: message %d is %d bytes, more than a chunk's %d", ErrBlob, i, len(m), MaxChunk)
		}
		h.Write(m)
		if err := send(&Chunk{Offset: off, Index: uint32(i), Data: m}); err != nil {
			return off, nil, fmt.Errorf("sending chunk %d at offset %d: %w", i, off, err)
		}
		off += uint64(len(m))
	}
	return off, h.Sum(nil), nil
}

// BlobReader reassembles a blob from its chunks as they arrive. It checks that each
// chunk starts where the last ended, carries the next index and at most MaxChunk
// bytes, and that the blob ends at the announced size with the announced SHA-256
// (when one was announced): Read returns an error wrapping ErrBlob instead of
// io.EOF when it does not.
type BlobReader struct {
	next func() (*Chunk, error)
	size uint64
	want []byte
	h    hash.Hash
	off  uint64
	idx  uint32
	buf  []byte
	err  error
}

// NewBlobReader returns a reader over the chunks that next yields until it returns
// io.EOF. size is the announced size; sum the announced SHA-256, or nil.
func NewBlobReader(next func() (*Chunk, error), size uint64, sum []byte) *BlobReader {
	return &BlobReader{next: next, size: size, want: sum, h: sha256.New()}
}

// NextChunk returns the next chunk whole, checked like Read checks it, or io.EOF after
// the last one once the size and hash have been checked. Use it, rather than Read, for
// blobs of one message per chunk. Do not mix NextChunk and Read on one reader.
func (r *BlobReader) NextChunk() (*Chunk, error) {
	if r.err != nil {
		return nil, r.err
	}
	c, err := r.next()
	if err == io.EOF {
		r.err = r.finish()
		return nil, r.err
	}
	if err != nil {
		r.err = err
		return nil, err
	}
	if c == nil {
		r.err = fmt.Errorf("%w: message without a chunk at offset %d", ErrBlob, r.off)
		return nil, r.err
	}
	if err := r.check(c); err != nil {
		r.err = err
		return nil, err
	}
	return c, nil
}

func (r *BlobReader) check(c *Chunk) error {
	switch {
	case c.Offset != r.off:
		return fmt.Errorf("%w: chunk %d at offset %d, expected offset %d", ErrBlob, c.Index, c.Offset, r.off)
	case c.Index != r.idx:
		return fmt.Errorf("%w: chunk index %d, expected %d", ErrBlob, c.Index, r.idx)
	case len(c.Data) == 0:
		return fmt.Errorf("%w: empty chunk %d", ErrBlob, c.Index)
	case len(c.Data) > MaxChunk:
		return fmt.Errorf("%w: chunk %d is %d bytes, at most %d", ErrBlob, c.Index, len(c.Data), MaxChunk)
	case r.off+uint64(len(c.Data)) > r.size:
		return fmt.Errorf("%w: chunk %d runs past the announced size %d", ErrBlob, c.Index, r.size)
	}
	r.h.Write(c.Data)
	r.off += uint64(len(c.Data))
	r.idx++
	return nil
}

func (r *BlobReader) finish() error {
	if r.off != r.size {
		return fmt.Errorf("%w: %d bytes received, %d announced", ErrBlob, r.off, r.size)
	}
	if r.want != nil {
		if got := r.h.Sum(nil); string(got) != string(r.want) {
			return fmt.Errorf("%w: SHA-256 %x, announced %x", ErrBlob, got, r.want)
		}
	}
	return io.EOF
}

// Read implements io.Reader over the blob's bytes.
func (r *BlobReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		c, err := r.NextChunk()
		if err != nil {
			return 0, err
		}
		r.buf = c.Data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Sum returns the SHA-256 of the bytes received so far; after io.EOF, of the blob.
func (r *BlobReader) Sum() []byte { return r.h.Sum(nil) }

// Size returns the number of bytes received so far.
func (r *BlobReader) Size() uint64 { return r.off }
