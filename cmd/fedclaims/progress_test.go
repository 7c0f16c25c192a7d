package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestProgressOffTerminalLogs: where stderr is not a terminal, progress is plain
// log lines, spaced by logEvery, with none of a bar's \r frames.
func TestProgressOffTerminalLogs(t *testing.T) {
	var buf bytes.Buffer
	a := &app{stderr: &buf, log: slog.New(slog.NewTextHandler(&buf, nil))}
	p := a.newProgress(100, "pretrain")
	lp, ok := p.(*logProgress)
	if !ok {
		t.Fatalf("progress on a buffer is %T, want log lines", p)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lp.now = func() time.Time { return now }
	for step := 1; step <= 100; step++ {
		now = now.Add(time.Second) // 100 s in all
		p.Describe("loss 1.0")
		p.Set(step)
	}
	p.Finish()
	out := buf.String()
	if strings.Contains(out, "\r") {
		t.Fatalf("carriage returns in a redirected log: %q", out)
	}
	// One line at the start, one per 15 s of the 100 s, one at the end.
	if n := strings.Count(out, "msg=progress"); n < 7 || n > 9 {
		t.Fatalf("%d progress lines, want about 8:\n%s", n, out)
	}
	if !strings.Contains(out, "done=100 of=100") {
		t.Fatalf("no final line:\n%s", out)
	}
}
