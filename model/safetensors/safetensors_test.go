package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	in := []Tensor{
		{Name: "b", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
		{Name: "a", Shape: []int{1}, Data: []float32{-1.5}},
		{Name: "scalar", Shape: []int{}, Data: []float32{7}},
	}
	var buf bytes.Buffer
	if err := Write(&buf, in, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	hl := binary.LittleEndian.Uint64(buf.Bytes()[:8])
	if (8+hl)%8 != 0 {
		t.Errorf("data starts at %d, not 8-byte aligned", 8+hl)
	}
	f, err := Read(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata = %v", f.Metadata)
	}
	for _, want := range in {
		got, ok := f.Get(want.Name)
		if !ok || !reflect.DeepEqual(got.Shape, want.Shape) || !reflect.DeepEqual(got.Data, want.Data) {
			t.Errorf("tensor %s: got %+v, want %+v", want.Name, got, want)
		}
	}
}

// TestSpecBytes reads bytes laid out by hand from the format description, as
// the reference writer lays them out: metadata first, space padding to 8 bytes.
func TestSpecBytes(t *testing.T) {
	h := `{"__metadata__":{"format":"pt"},"weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}`
	for len(h)%8 != 0 {
		h += " "
	}
	data := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	data = append(data, h...)
	for _, v := range []float32{1, 2, 3, 4} {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
	}
	f, err := Read(data)
	if err != nil {
		t.Fatal(err)
	}
	w, ok := f.Get("weight")
	if !ok || !reflect.DeepEqual(w.Shape, []int{2, 2}) || !reflect.DeepEqual(w.Data, []float32{1, 2, 3, 4}) {
		t.Errorf("weight = %+v", w)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata = %v", f.Metadata)
	}
	// Our writer produces the same bytes for the same content.
	var buf bytes.Buffer
	if err := Write(&buf, []Tensor{w}, f.Metadata); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("writer output differs:\n got %q\nwant %q", buf.Bytes(), data)
	}
}

func TestReadErrors(t *testing.T) {
	good := func() []byte {
		var buf bytes.Buffer
		if err := Write(&buf, []Tensor{{Name: "x", Shape: []int{2}, Data: []float32{1, 2}}}, nil); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	withHeader := func(h string, data int) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		return append(append(b, h...), make([]byte, data)...)
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"short", []byte{1, 2}, "shorter than"},
		{"huge header", binary.LittleEndian.AppendUint64(nil, 1<<40), "header length"},
		{"bad json", withHeader("{", 0), "header JSON"},
		{"dtype", withHeader(`{"x":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}`, 2), "only F32"},
		{"gap", withHeader(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "gap"},
		{"shape", withHeader(`{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8), "needs 12 bytes"},
		{"trailing data", append(good(), 0, 0, 0, 0), "after the last tensor"},
		{"past end", withHeader(`{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, 8), "pass the end"},
	}
	for _, c := range cases {
		_, err := Read(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	_ = Write(&buf, []Tensor{{Name: "x", Shape: []int{2, 1}, Data: []float32{1, 2}}}, map[string]string{"k": "v"})
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Read(data)
		if err != nil {
			return
		}
		// Whatever parses must write back and parse to the same tensors.
		var out bytes.Buffer
		if err := Write(&out, file.Tensors, file.Metadata); err != nil {
			t.Fatalf("re-writing a parsed file: %v", err)
		}
		again, err := Read(out.Bytes())
		if err != nil {
			t.Fatalf("re-reading: %v", err)
		}
		if len(again.Tensors) != len(file.Tensors) {
			t.Fatalf("%d tensors after round trip, want %d", len(again.Tensors), len(file.Tensors))
		}
	})
}
