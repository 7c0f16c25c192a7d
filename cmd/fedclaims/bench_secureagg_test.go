package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchSecureAgg(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"bench", "secureagg", "--params", "5000", "--sites", "3", "--threshold", "2"}, &out, &errOut); err != nil {
		t.Fatalf("bench secureagg: %v (stderr %s)", err, errOut.String())
	}
	var line map[string]any
	if err := json.Unmarshal(out.Bytes(), &line); err != nil {
		t.Fatalf("output is not one JSON object: %v: %s", err, out.String())
	}
	if line["name"] != "secureagg" {
		t.Fatalf("name %v, want secureagg", line["name"])
	}
	for _, k := range []string{"expansion", "encrypt_params_per_s_per_core", "sum_params_per_s_per_core",
		"share_params_per_s_per_core", "max_abs_error", "site_cpu_seconds", "aggregator_cpu_seconds"} {
		v, ok := line[k].(float64)
		if !ok || !(v > 0) {
			t.Errorf("field %s = %v, want a positive number", k, line[k])
		}
	}
	if e := line["max_abs_error"].(float64); e >= 1e-5 {
		t.Errorf("max_abs_error %v, want under 1e-5", e)
	}
}

func TestBenchSecureAggRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--threshold", "9", "--sites", "8"}, "--threshold"},
		{[]string{"--sites", "65"}, "--sites"},
		{[]string{"--params", "0"}, "--params"},
		{[]string{"--preset", "N99"}, "--preset"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"bench", "secureagg"}, tc.args...), &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.flag)
		}
		if out.Len() != 0 {
			t.Errorf("%v: printed %q on failure", tc.args, out.String())
		}
	}
}
