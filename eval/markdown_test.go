package eval

import "testing"

func TestMarkdownTable(t *testing.T) {
	got := MarkdownTable([][]string{{"task", "AUPRC"}, {"t2d", "0.240\n[0.1, 0.3]"}})
	want := "| task | AUPRC |\n|---|---|\n| t2d | 0.240 [0.1, 0.3] |\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if MarkdownTable(nil) != "" {
		t.Error("no rows should give no table")
	}
}

func TestFormatCI(t *testing.T) {
	if got := FormatCI(0.2404, nil); got != "0.240" {
		t.Errorf("without interval: %q", got)
	}
	if got := FormatCI(0.2404, &[2]float64{0.13, 0.376}); got != "0.240 [0.130, 0.376]" {
		t.Errorf("with interval: %q", got)
	}
}
