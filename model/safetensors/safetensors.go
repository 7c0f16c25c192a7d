// Package safetensors reads and writes the safetensors format
// (https://github.com/huggingface/safetensors) for float32 tensors: an 8-byte
// little-endian header length N, N bytes of JSON mapping each tensor name to its
// dtype, shape and [begin, end) byte offsets into the data that follows (plus an
// optional "__metadata__" map of strings), then the little-endian tensor data.
// Files written here load with PyTorch's safetensors.torch.load_file.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// Tensor is a named float32 tensor in row-major order.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

type entry struct {
	Dtype   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// maxHeader bounds the JSON header a reader accepts, as the reference
// implementation does, so that a corrupt length cannot exhaust memory.
const maxHeader = 100 << 20

// Write writes tensors, in the order given, with metadata to w.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	header := make(map[string]any, len(tensors)+1)
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, t := range tensors {
		if t.Name == "" || t.Name == "__metadata__" {
			return fmt.Errorf("safetensors: invalid tensor name %q", t.Name)
		}
		if _, dup := header[t.Name]; dup {
			return fmt.Errorf("safetensors: tensor %q named twice", t.Name)
		}
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		if n != len(t.Data) {
			return fmt.Errorf("safetensors: tensor %q: shape %v holds %d values, data has %d", t.Name, t.Shape, n, len(t.Data))
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = entry{Dtype: "F32", Shape: shape, Offsets: [2]int64{off, off + 4*int64(n)}}
		off += 4 * int64(n)
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("safetensors: header: %w", err)
	}
	// Pad the header with spaces so that the data starts 8-byte aligned.
	if pad := (8 - len(hj)%8) % 8; pad > 0 {
		hj = append(hj, bytes.Repeat([]byte{' '}, pad)...)
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hj)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(hj); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<16)
	for _, t := range tensors {
		for _, v := range t.Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err = w.Write(buf)
	return err
}

// File is a parsed safetensors file.
type File struct {
	Metadata map[string]string
	Tensors  []Tensor // sorted by data offset
}

// Get returns the named tensor.
func (f *File) Get(name string) (Tensor, bool) {
	for _, t := range f.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

// Read parses a whole safetensors file held in data. It accepts only F32
// tensors, and checks what the format requires: offsets inside the data, no
// overlap, no gap, shapes matching sizes.
func Read(data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("safetensors: %d bytes, shorter than the 8-byte header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > maxHeader || n > uint64(len(data)-8) {
		return nil, fmt.Errorf("safetensors: header length %d exceeds the file (%d bytes) or the %d-byte limit", n, len(data), maxHeader)
	}
	hj := data[8 : 8+n]
	body := data[8+n:]
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(hj))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("safetensors: header JSON: %w", err)
	}
	if rest := strings.TrimSpace(string(hj[dec.InputOffset():])); rest != "" {
		return nil, fmt.Errorf("safetensors: header: trailing bytes after the JSON object")
	}
	f := &File{}
	type placed struct {
		name string
		e    entry
	}
	var ps []placed
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("safetensors: header field __metadata__: %w", err)
			}
			continue
		}
		var e entry
		d := json.NewDecoder(bytes.NewReader(msg))
		d.DisallowUnknownFields()
		if err := d.Decode(&e); err != nil {
			return nil, fmt.Errorf("safetensors: header field %q: %w", name, err)
		}
		if e.Dtype != "F32" {
			return nil, fmt.Errorf("safetensors: tensor %q: dtype %q, only F32 is supported", name, e.Dtype)
		}
		ps = append(ps, placed{name, e})
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].e.Offsets[0] != ps[j].e.Offsets[0] {
			return ps[i].e.Offsets[0] < ps[j].e.Offsets[0]
		}
		return ps[i].name < ps[j].name
	})
	var next int64
	for _, p := range ps {
		begin, end := p.e.Offsets[0], p.e.Offsets[1]
		if begin != next || end < begin || end > int64(len(body)) {
			return nil, fmt.Errorf("safetensors: tensor %q: data_offsets [%d, %d) leave a gap, overlap or pass the end of %d data bytes (expected to begin at %d)", p.name, begin, end, len(body), next)
		}
		size := int64(1)
		for _, d := range p.e.Shape {
			if d < 0 || (d > 0 && size > math.MaxInt32/int64(d)) {
				return nil, fmt.Errorf("safetensors: tensor %q: invalid shape %v", p.name, p.e.Shape)
			}
			size *= int64(d)
		}
		if 4*size != end-begin {
			return nil, fmt.Errorf("safetensors: tensor %q: shape %v needs %d bytes, data_offsets give %d", p.name, p.e.Shape, 4*size, end-begin)
		}
		vals := make([]float32, size)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[begin+4*int64(i):]))
		}
		f.Tensors = append(f.Tensors, Tensor{Name: p.name, Shape: p.e.Shape, Data: vals})
		next = end
	}
	if next != int64(len(body)) {
		return nil, fmt.Errorf("safetensors: %d data bytes after the last tensor", int64(len(body))-next)
	}
	return f, nil
}
