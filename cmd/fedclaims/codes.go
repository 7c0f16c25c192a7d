package main

// The --codes flag and what the data commands say about codes. They live together
// because a dataset written in a convention fedclaims does not know reads without
// error: only the share of its events outside every known system, and the empty
// vocabulary it leads to, show that the data was not understood, so every command
// that reads data takes the same rules and the commands that build something name
// this cause when they refuse an empty result.

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fedclaims/fedclaims/claims"
	"github.com/fedclaims/fedclaims/tokenizer"
)

// unrecognisedWarnShare is the share of events outside every known system above
// which data inspect warns.
const unrecognisedWarnShare = 0.10

// addCodesFlag adds --codes, read by codesOption.
func addCodesFlag(cmd *cobra.Command) {
	cmd.Flags().String("codes", "", "codes file (YAML list of rules: pattern -> system and code, or drop: true) applied before the built-in MIMIC-IV and OMOP MEDS conventions")
}

// codesOption is the reader option of --codes; a bad file fails claims.Open.
func codesOption(a *app) claims.Option {
	return claims.CodesFile(a.v.GetString("codes"))
}

// formatPrefixes writes prefixes as "A (12 events), B (3 events)".
func formatPrefixes(ps []claims.PrefixCount) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%q (%d events)", p.Prefix, p.Events)
	}
	return strings.Join(parts, ", ")
}

// warnUnrecognised warns when more than 10% of s's events fall outside every
// known code system, naming the commonest prefixes of those events.
func (a *app) warnUnrecognised(path string, s claims.Summary) {
	if share := s.UnrecognisedShare(); share > unrecognisedWarnShare {
		a.log.Warn("events outside every known code system: they stay tokens of their own, without kind or hierarchy; map them with --codes FILE",
			"data", path, "share", fmt.Sprintf("%.1f%%", 100*share),
			"events", s.EventsBySystem[claims.SystemUnrecognised], "top_prefixes", formatPrefixes(s.TopUnrecognised))
	}
}

// codeTally counts, while a command reads patients, what it needs to explain an
// empty result: patients, events, events that can become tokens, and events in
// no known system by prefix.
type codeTally struct {
	patients, events, tokenEvents, known int64
	unrecognised                         map[string]int64
}

func newCodeTally() *codeTally { return &codeTally{unrecognised: make(map[string]int64)} }

func (t *codeTally) add(p *claims.Patient) {
	t.patients++
	for _, e := range p.Events {
		t.events++
		if tokenizer.Tokenized(e.Code) {
			t.tokenEvents++
		}
		if claims.SystemOf(e.Code) == claims.SystemUnrecognised {
			t.unrecognised[claims.CodePrefix(e.Code)]++
		} else {
			t.known++
		}
	}
}

// merge adds o's counts to t.
func (t *codeTally) merge(o *codeTally) {
	t.patients += o.patients
	t.events += o.events
	t.tokenEvents += o.tokenEvents
	t.known += o.known
	for k, n := range o.unrecognised {
		t.unrecognised[k] += n
	}
}

// topPrefixes returns the n unrecognised prefixes with the most events.
func (t *codeTally) topPrefixes(n int) []claims.PrefixCount {
	return claims.TopPrefixes(t.unrecognised, n)
}

// emptyCause names the likely cause of a vocabulary or count table with no code
// when the floor was k: no patients, no events, no event that can become a token,
// no event in a known system, or codes all below the floor.
func (t *codeTally) emptyCause(k int) string {
	switch {
	case t.patients == 0:
		return "no patient was read (is the dataset, or its training split, empty?)"
	case t.events == 0:
		return fmt.Sprintf("the %d patients read have no events", t.patients)
	case t.known == 0:
		return fmt.Sprintf("no event matched a known code system; the data's top prefixes are %s: map them to systems with --codes FILE",
			formatPrefixes(t.topPrefixes(5)))
	case t.tokenEvents == 0:
		return fmt.Sprintf("none of the %d events is a code that becomes a token (only visit markers, sex and MEDS codes such as death)", t.events)
	}
	cause := fmt.Sprintf("every code of the %d patients read is seen in fewer than --min-count %d of them", t.patients, k)
	if share := float64(t.events-t.known) / float64(t.events); share > unrecognisedWarnShare {
		cause += fmt.Sprintf("; %.0f%% of events matched no known code system (top prefixes %s: map them with --codes FILE)",
			100*share, formatPrefixes(t.topPrefixes(5)))
	}
	return cause
}
