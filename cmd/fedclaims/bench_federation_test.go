package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestBenchFederationRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--sites", "2"}, "--sites"},
		{[]string{"--sites", "3,65"}, "--sites"},
		{[]string{"--sites", "3", "--rounds", "0"}, "--rounds"},
		{[]string{"--sites", "3", "--preset", "N99"}, "--preset"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"bench", "federation"}, tc.args...), &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.flag)
		}
		if out.Len() != 0 {
			t.Errorf("%v: printed %q on failure", tc.args, out.String())
		}
	}
}
