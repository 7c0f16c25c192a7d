package eval

import (
	"fmt"
	"strings"
)

// MarkdownTable renders rows as a Markdown table, the first row its header. A
// newline inside a cell would end the row early, so it becomes a space.
func MarkdownTable(rows [][]string) string {
	var b strings.Builder
	for i, row := range rows {
		b.WriteString("| " + strings.ReplaceAll(strings.Join(row, " | "), "\n", " ") + " |\n")
		if i == 0 {
			b.WriteString(strings.Repeat("|---", len(row)) + "|\n")
		}
	}
	return b.String()
}

// FormatCI is v with its 95% interval, or v alone where the split had too few
// positives for one (c nil): the reports never print an interval they did not
// compute.
func FormatCI(v float64, c *[2]float64) string {
	if c == nil {
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.3f [%.3f, %.3f]", v, c[0], c[1])
}
