package baseline

import (
	"bytes"
	"strings"
	"testing"
)

func TestReadLibSVM(t *testing.T) {
	in := "1 0:1.5 3:2 # comment\n\n0 qid:7 2:1 1:-0.25 4:0\n1\n"
	x, labels, err := ReadLibSVM(strings.NewReader(in), "in.svm", 0)
	if err != nil {
		t.Fatal(err)
	}
	if x.Rows() != 3 || x.NumCols != 5 || x.NNZ() != 4 {
		t.Fatalf("rows %d cols %d nnz %d, want 3 5 4", x.Rows(), x.NumCols, x.NNZ())
	}
	if got := x.At(1, 1); got != -0.25 {
		t.Errorf("At(1,1) = %v, want -0.25 (indices sorted on read)", got)
	}
	if got := x.At(0, 3); got != 2 {
		t.Errorf("At(0,3) = %v, want 2", got)
	}
	if labels[0] != 1 || labels[1] != 0 || labels[2] != 1 {
		t.Errorf("labels %v", labels)
	}
	var out bytes.Buffer
	y, _ := BinaryLabels(labels, "in.svm")
	if err := WriteLibSVM(&out, x, y); err != nil {
		t.Fatal(err)
	}
	x2, l2, err := ReadLibSVM(&out, "out.svm", 5)
	if err != nil {
		t.Fatal(err)
	}
	if x2.NNZ() != x.NNZ() || x2.NumCols != 5 || len(l2) != 3 {
		t.Errorf("round trip changed the matrix")
	}
}

func TestReadLibSVMErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"bad label", "1 0:1\nx 0:1\n", "f.svm:2: label"},
		{"no colon", "1 3\n", "f.svm:1: token"},
		{"negative index", "1 -1:2\n", "f.svm:1: index"},
		{"bad value", "0 1:abc\n", "f.svm:1: value"},
		{"nan value", "0 1:nan\n", "f.svm:1: value"},
		{"duplicate", "0 1:1 1:2\n", "f.svm:1: index 1 appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadLibSVM(strings.NewReader(tt.in), "f.svm", 0)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := BinaryLabels([]float64{0, 1, 2}, "f.svm"); err == nil || !strings.Contains(err.Error(), "row 3") {
		t.Errorf("BinaryLabels error %v, want row 3", err)
	}
}

func FuzzReadLibSVM(f *testing.F) {
	f.Add("1 0:1.5 3:2\n0 2:1\n")
	f.Add("0 qid:1 5:1e3 # c\n")
	f.Add("1\n\n0 0:0\n")
	f.Fuzz(func(t *testing.T, in string) {
		x, labels, err := ReadLibSVM(strings.NewReader(in), "fuzz", 0)
		if err != nil {
			return
		}
		if x.Rows() != len(labels) || x.Indptr[len(x.Indptr)-1] != x.NNZ() {
			t.Fatalf("inconsistent matrix: %d rows, %d labels", x.Rows(), len(labels))
		}
		for i := range x.Rows() {
			idx, _ := x.Row(i)
			for k := range idx {
				if int(idx[k]) >= x.NumCols || (k > 0 && idx[k] <= idx[k-1]) {
					t.Fatalf("row %d: bad indices %v for %d columns", i, idx, x.NumCols)
				}
			}
		}
	})
}
