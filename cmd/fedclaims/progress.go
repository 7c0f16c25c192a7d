package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows how far a long command is: a bar on a terminal, and where stderr
// is a file or a pipe (a container's log, CI) plain log lines, at most one per
// logEvery and one at the end, so that a redirected log holds no \r frames.
type progress interface {
	Describe(desc string)
	Set(n int)
	Add(n int)
	Finish()
}

// logEvery spaces the log lines of a progress off a terminal.
const logEvery = 15 * time.Second

// newProgress returns a bar of n steps on a.stderr when it is a terminal, log
// lines otherwise.
func (a *app) newProgress(n int, desc string) progress {
	if f, ok := a.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &barProgress{w: a.stderr, bar: progressbar.NewOptions(n,
			progressbar.OptionSetWriter(a.stderr),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionThrottle(250*time.Millisecond),
			progressbar.OptionSetWidth(20))}
	}
	return &logProgress{log: a.log, now: time.Now, total: n, desc: desc}
}

type barProgress struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

func (b *barProgress) Describe(desc string) { b.bar.Describe(desc) }
func (b *barProgress) Set(n int)            { _ = b.bar.Set(n) }
func (b *barProgress) Add(n int)            { _ = b.bar.Add(n) }
func (b *barProgress) Finish() {
	_ = b.bar.Finish()
	fmt.Fprintln(b.w)
}

// logProgress logs "progress" lines: what, done of total, and the elapsed time.
type logProgress struct {
	log         *slog.Logger
	now         func() time.Time
	total, done int
	desc        string
	start, last time.Time
}

func (l *logProgress) Describe(desc string) {
	if desc != l.desc {
		l.desc = desc
		l.emit(false)
	}
}

func (l *logProgress) Set(n int) {
	l.done = n
	l.emit(false)
}

func (l *logProgress) Add(n int) { l.Set(l.done + n) }

func (l *logProgress) Finish() { l.emit(true) }

func (l *logProgress) emit(force bool) {
	now := l.now()
	if l.start.IsZero() {
		l.start = now
	}
	if !force && !l.last.IsZero() && now.Sub(l.last) < logEvery {
		return
	}
	l.last = now
	l.log.Info("progress", "what", l.desc, "done", l.done, "of", l.total, "elapsed", now.Sub(l.start).Round(time.Second).String())
}
