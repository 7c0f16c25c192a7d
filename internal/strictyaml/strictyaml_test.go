package strictyaml

import (
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	type cfg struct {
		Seed int `yaml:"seed"`
	}
	tests := []struct {
		name, data, wantErr string
		want                int
	}{
		{name: "known key", data: "seed: 7\n", want: 7},
		{name: "misspelt key", data: "sede: 7\n", wantErr: "field sede not found"},
		{name: "empty", data: "", wantErr: "f.yaml: empty run file"},
		{name: "malformed", data: "seed: [\n", wantErr: "f.yaml:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c cfg
			err := Decode("f.yaml", "run file", []byte(tc.data), &c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.Seed != tc.want {
				t.Fatalf("got %+v, %v; want seed %d", c, err, tc.want)
			}
		})
	}
}
