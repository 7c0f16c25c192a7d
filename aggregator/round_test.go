package aggregator

import (
	"errors"
	"reflect"
	"slices"
	"testing"
)

func testRules() Rules {
	return Rules{FederationID: "fed", Sites: []string{"a", "b", "c", "d"}, MinSites: 3, Threshold: 2, Rounds: 2}
}

func mustMachine(t *testing.T, cfg Rules) *Machine {
	t.Helper()
	m, err := NewMachine(cfg, State{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// stepAll steps msgs in order and returns the last error.
func stepAll(m interface{ Step(Msg) error }, msgs ...Msg) error {
	var err error
	for _, msg := range msgs {
		err = m.Step(msg)
	}
	return err
}

func TestRulesValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(*Rules)
	}{
		{"no federation", func(c *Rules) { c.FederationID = "" }},
		{"no sites", func(c *Rules) { c.Sites = nil }},
		{"threshold zero", func(c *Rules) { c.Threshold = 0 }},
		{"threshold above sites", func(c *Rules) { c.Threshold = 5; c.MinSites = 5 }},
		{"min below threshold", func(c *Rules) { c.MinSites = 1 }},
		// A sum of exactly t updates: the aggregator and t-1 colluders recover the
		// last one. Accepted before min_sites >= t+1.
		{"min equals threshold", func(c *Rules) { c.MinSites = 2 }},
		{"min above sites", func(c *Rules) { c.MinSites = 5 }},
		{"no rounds", func(c *Rules) { c.Rounds = 0 }},
		{"repeated site", func(c *Rules) { c.Sites = []string{"a", "a", "b"}; c.MinSites = 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testRules()
			tc.mut(&cfg)
			if _, err := NewMachine(cfg, State{}); err == nil {
				t.Fatal("invalid config accepted")
			}
		})
	}
}

func TestRoundHappyPath(t *testing.T) {
	m := mustMachine(t, testRules())
	if err := m.Step(Start{}); err != nil {
		t.Fatal(err)
	}
	rd := m.Ready()
	if rd.Announce == nil || rd.Announce.Round != 1 || rd.Announce.Version != 0 {
		t.Fatalf("announce = %+v", rd.Announce)
	}
	m.Advance()
	if err := stepAll(m, Uploaded{Site: "b", Round: 1}, Uploaded{Site: "a", Round: 1}, Uploaded{Site: "c", Round: 1}); err != nil {
		t.Fatal(err)
	}
	if !m.Ready().IsEmpty() {
		t.Fatalf("sum closed before the deadline with a site missing: %+v", m.Ready())
	}
	if err := stepAll(m, Deadline{Round: 1}, Sealed{Round: 1, Complete: []string{"a", "b", "c"}}); err != nil {
		t.Fatal(err)
	}
	rd = m.Ready()
	// t=2 decryptors, picked by site id whatever the arrival order.
	if rd.ShareRequest == nil || !slices.Equal(rd.ShareRequest.Sites, []string{"a", "b"}) ||
		!slices.Equal(rd.ShareRequest.Contributors, []string{"b", "a", "c"}) {
		t.Fatalf("share request = %+v", rd.ShareRequest)
	}
	m.Advance()
	var ref *Refused
	// c contributed but is not in the decrypting set.
	if err := m.Step(Share{Site: "c", Round: 1}); !errors.As(err, &ref) {
		t.Fatalf("share from outside the set: err = %v", err)
	}
	if err := m.Step(Share{Site: "b", Round: 1}); err != nil {
		t.Fatal(err)
	}
	if m.Ready().Combine != nil {
		t.Fatal("combined with fewer than t shares")
	}
	if err := m.Step(Share{Site: "a", Round: 1}); err != nil {
		t.Fatal(err)
	}
	rd = m.Ready()
	if rd.Combine == nil || !slices.Equal(rd.Combine.Sites, []string{"a", "b"}) {
		t.Fatalf("combine = %+v", rd.Combine)
	}
	m.Advance()
	// A share after the set is complete is refused: the sum is being applied.
	if err := m.Step(Share{Site: "b", Round: 1}); !errors.As(err, &ref) {
		t.Fatalf("late share: err = %v", err)
	}
	if err := m.Step(Applied{Round: 1}); err != nil {
		t.Fatal(err)
	}
	if st := m.State(); st.Version != 1 || st.Round != 1 || m.Phase() != PhaseIdle {
		t.Fatalf("after round 1: %+v %s", st, m.Phase())
	}
	// Round 2, everyone uploads: the sum closes without waiting for the deadline.
	if err := m.Step(Start{}); err != nil {
		t.Fatal(err)
	}
	m.Advance()
	for _, s := range []string{"a", "b", "c", "d"} {
		if err := m.Step(Uploaded{Site: s, Round: 2}); err != nil {
			t.Fatal(err)
		}
	}
	if m.Ready().Seal == nil {
		t.Fatal("all sites in, but the sum is not sealed")
	}
	if err := m.Step(Sealed{Round: 2, Complete: []string{"a", "b", "c", "d"}}); err != nil {
		t.Fatal(err)
	}
	if m.Ready().ShareRequest == nil {
		t.Fatal("all sites in, but no share request")
	}
	m.Advance()
	if err := stepAll(m, Share{Site: "b", Round: 2}, Share{Site: "a", Round: 2}); err != nil {
		t.Fatal(err)
	}
	m.Advance()
	if err := m.Step(Applied{Round: 2}); err != nil {
		t.Fatal(err)
	}
	if !m.Ready().Done || m.Phase() != PhaseDone {
		t.Fatalf("not done after the last round: %+v %s", m.Ready(), m.Phase())
	}
	if err := m.Step(Start{}); !errors.As(err, &ref) {
		t.Fatalf("start after done: err = %v", err)
	}
}

func TestRefusals(t *testing.T) {
	// open returns a machine in round 1 with a and b uploaded.
	open := func(t *testing.T) *Machine {
		m := mustMachine(t, testRules())
		if err := stepAll(m, Start{}, Uploaded{Site: "a", Round: 1}, Uploaded{Site: "b", Round: 1}); err != nil {
			t.Fatal(err)
		}
		m.Advance()
		return m
	}
	decrypting := func(t *testing.T) *Machine {
		m := open(t)
		if err := stepAll(m, Uploaded{Site: "c", Round: 1}, Deadline{Round: 1}, Sealed{Round: 1, Complete: []string{"a", "b", "c"}}); err != nil {
			t.Fatal(err)
		}
		m.Advance()
		return m
	}
	for _, tc := range []struct {
		name  string
		setup func(*testing.T) *Machine
		msg   Msg
	}{
		{"upload from unknown site", open, Uploaded{Site: "z", Round: 1}},
		{"duplicate upload", open, Uploaded{Site: "a", Round: 1}},
		{"upload for a future round", open, Uploaded{Site: "c", Round: 2}},
		{"upload for a past round", open, Uploaded{Site: "c", Round: 0}},
		{"share while collecting", open, Share{Site: "a", Round: 1}},
		{"upload after the sum closed", decrypting, Uploaded{Site: "d", Round: 1}},
		{"share from a non-contributor", decrypting, Share{Site: "d", Round: 1}},
		{"share for another round", decrypting, Share{Site: "a", Round: 2}},
		{"start while a round is open", open, Start{}},
		{"applied before the shares", decrypting, Applied{Round: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.setup(t)
			before, phase, contributors := m.State(), m.Phase(), m.Contributors()
			var ref *Refused
			if err := m.Step(tc.msg); !errors.As(err, &ref) {
				t.Fatalf("err = %v, want *Refused", err)
			}
			if !reflect.DeepEqual(m.State(), before) || m.Phase() != phase || !slices.Equal(m.Contributors(), contributors) || !m.Ready().IsEmpty() {
				t.Fatal("a refused message changed the state")
			}
		})
	}
}

func TestDuplicateShareRefused(t *testing.T) {
	cfg := testRules()
	cfg.Threshold = 3
	cfg.MinSites = 4
	m := mustMachine(t, cfg)
	if err := stepAll(m, Start{}, Uploaded{Site: "a", Round: 1}, Uploaded{Site: "b", Round: 1}, Uploaded{Site: "c", Round: 1}, Uploaded{Site: "d", Round: 1},
		Sealed{Round: 1, Complete: []string{"a", "b", "c", "d"}}, Share{Site: "a", Round: 1}); err != nil {
		t.Fatal(err)
	}
	var ref *Refused
	if err := m.Step(Share{Site: "a", Round: 1}); !errors.As(err, &ref) {
		t.Fatalf("second share from one site: err = %v", err)
	}
}

func TestAbortsAndRetries(t *testing.T) {
	m := mustMachine(t, testRules())
	// Too few contributions at the deadline: the round aborts, its id is spent.
	if err := stepAll(m, Start{}, Uploaded{Site: "a", Round: 1}, Uploaded{Site: "b", Round: 1}, Deadline{Round: 1},
		Sealed{Round: 1, Complete: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	if ab := m.Ready().Abort; ab == nil || ab.Round != 1 || m.Phase() != PhaseIdle {
		t.Fatalf("abort = %+v, phase %s", ab, m.Phase())
	}
	m.Advance()
	// A stale deadline for the aborted round does nothing.
	if err := m.Step(Deadline{Round: 1}); err != nil || !m.Ready().IsEmpty() {
		t.Fatalf("stale deadline: %v %+v", err, m.Ready())
	}
	// The retry opens a new id: no site is asked to decrypt twice under one id.
	if err := m.Step(Start{}); err != nil {
		t.Fatal(err)
	}
	if an := m.Ready().Announce; an == nil || an.Round != 2 || an.Version != 0 {
		t.Fatalf("retry announce = %+v", an)
	}
	m.Advance()
	// Too few shares at the decryption deadline aborts too.
	if err := stepAll(m, Uploaded{Site: "a", Round: 2}, Uploaded{Site: "b", Round: 2}, Uploaded{Site: "c", Round: 2}, Deadline{Round: 2}, Sealed{Round: 2, Complete: []string{"a", "b", "c"}}, Share{Site: "a", Round: 2}, Deadline{Round: 2}); err != nil {
		t.Fatal(err)
	}
	if ab := m.Ready().Abort; ab == nil || ab.Round != 2 {
		t.Fatalf("decryption abort = %+v", ab)
	}
	if m.State().Version != 0 {
		t.Fatal("an aborted round changed the model version")
	}
}

func TestPauseAndRestore(t *testing.T) {
	m := mustMachine(t, testRules())
	if err := m.Step(Pause{}); err != nil {
		t.Fatal(err)
	}
	var ref *Refused
	if err := m.Step(Start{}); !errors.As(err, &ref) {
		t.Fatalf("start while paused: err = %v", err)
	}
	if err := stepAll(m, Resume{}, Start{}); err != nil {
		t.Fatal(err)
	}
	// The aggregator stops mid-round; restored from its saved state it is idle and
	// the next round gets a fresh id.
	saved := m.State()
	r, err := NewMachine(testRules(), saved)
	if err != nil {
		t.Fatal(err)
	}
	if r.Phase() != PhaseIdle {
		t.Fatalf("restored phase %s", r.Phase())
	}
	if err := r.Step(Start{}); err != nil {
		t.Fatal(err)
	}
	if an := r.Ready().Announce; an == nil || an.Round != saved.Round+1 {
		t.Fatalf("restored announce = %+v", an)
	}
	// A machine restored after its last round is done.
	done, err := NewMachine(testRules(), State{Round: 5, Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	if done.Phase() != PhaseDone {
		t.Fatalf("restored finished federation: phase %s", done.Phase())
	}
}

func TestStop(t *testing.T) {
	var ref *Refused
	for _, tc := range []struct {
		name  string
		msgs  []Msg
		phase Phase
	}{
		{"while idle", []Msg{Stop{}}, PhaseIdle},
		// The open round runs to its end; only the next one is refused.
		{"mid-round", []Msg{Start{}, Stop{}, Uploaded{Site: "a", Round: 1}, Uploaded{Site: "b", Round: 1}, Uploaded{Site: "c", Round: 1}, Uploaded{Site: "d", Round: 1},
			Sealed{Round: 1, Complete: []string{"a", "b", "c", "d"}}, Share{Site: "a", Round: 1}, Share{Site: "b", Round: 1}, Applied{Round: 1}}, PhaseIdle},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustMachine(t, testRules())
			if err := stepAll(m, tc.msgs...); err != nil {
				t.Fatal(err)
			}
			if m.Phase() != tc.phase || !m.State().Stopped {
				t.Fatalf("phase %s, state %+v", m.Phase(), m.State())
			}
			if err := m.Step(Resume{}); !errors.As(err, &ref) {
				t.Fatalf("resume after stop: err = %v", err)
			}
			if err := m.Step(Start{}); !errors.As(err, &ref) {
				t.Fatalf("start after stop: err = %v", err)
			}
			r, err := NewMachine(testRules(), m.State())
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Step(Start{}); !errors.As(err, &ref) {
				t.Fatalf("start after a restart of a stopped federation: err = %v", err)
			}
		})
	}
}

func TestFailedCombineAborts(t *testing.T) {
	m := mustMachine(t, testRules())
	var ref *Refused
	if err := m.Step(Failed{Round: 1, Reason: "x"}); !errors.As(err, &ref) {
		t.Fatalf("failed outside applying: err = %v", err)
	}
	if err := stepAll(m, Start{}, Uploaded{Site: "a", Round: 1}, Uploaded{Site: "b", Round: 1}, Uploaded{Site: "c", Round: 1}, Deadline{Round: 1}, Sealed{Round: 1, Complete: []string{"a", "b", "c"}},
		Share{Site: "a", Round: 1}, Share{Site: "b", Round: 1}, Failed{Round: 1, Reason: "bad share"}); err != nil {
		t.Fatal(err)
	}
	if ab := m.Ready().Abort; ab == nil || ab.Round != 1 || ab.Reason != "bad share" || m.Phase() != PhaseIdle || m.State().Version != 0 {
		t.Fatalf("abort %+v, phase %s, state %+v", ab, m.Phase(), m.State())
	}
}

// TestSealDecidesContributors: a site whose every chunk is in the sealed sum
// contributes even when its stream closes after the seal (before, it was refused
// and audited as refused while its update was in the applied model); a site with
// only part of its update in is not a contributor and its late Uploaded is refused.
func TestSealDecidesContributors(t *testing.T) {
	m := mustMachine(t, testRules())
	if err := stepAll(m, Start{}, Uploaded{Site: "a", Round: 1}, Uploaded{Site: "b", Round: 1}, Deadline{Round: 1}); err != nil {
		t.Fatal(err)
	}
	if rd := m.Ready(); rd.Seal == nil || rd.ShareRequest != nil {
		t.Fatalf("deadline: %+v, want a Seal and no decision yet", rd)
	}
	m.Advance()
	if err := m.Step(Sealed{Round: 1, Complete: []string{"a", "b", "c"}, Partial: []string{"d"}}); err != nil {
		t.Fatal(err)
	}
	sr := m.Ready().ShareRequest
	if sr == nil || !slices.Equal(sr.Contributors, []string{"a", "b", "c"}) || !slices.Equal(sr.Partial, []string{"d"}) {
		t.Fatalf("share request = %+v", sr)
	}
	m.Advance()
	if err := m.Step(Uploaded{Site: "c", Round: 1}); err != nil {
		t.Fatalf("c's stream closed after the seal with all its chunks in: %v", err)
	}
	var ref *Refused
	if err := m.Step(Uploaded{Site: "d", Round: 1}); !errors.As(err, &ref) {
		t.Fatalf("partial site d: err = %v, want refused", err)
	}
	if !slices.Equal(m.Contributors(), []string{"a", "b", "c"}) {
		t.Fatalf("contributors %v", m.Contributors())
	}
}

// TestWithholderPassedOver: a decryptor that does not share by the deadline is
// counted, and the next round's set passes over it while enough others
// contributed; a share clears the count.
func TestWithholderPassedOver(t *testing.T) {
	m := mustMachine(t, testRules())
	all := []string{"a", "b", "c", "d"}
	round := func(r uint64) *ShareRequest {
		t.Helper()
		if err := stepAll(m, Start{}, Uploaded{Site: "a", Round: r}, Uploaded{Site: "b", Round: r}, Uploaded{Site: "c", Round: r}, Uploaded{Site: "d", Round: r},
			Sealed{Round: r, Complete: all}); err != nil {
			t.Fatal(err)
		}
		sr := m.Ready().ShareRequest
		m.Advance()
		return sr
	}
	if sr := round(1); !slices.Equal(sr.Sites, []string{"a", "b"}) {
		t.Fatalf("round 1 set %v", sr.Sites)
	}
	if err := stepAll(m, Share{Site: "b", Round: 1}, Deadline{Round: 1}); err != nil {
		t.Fatal(err)
	}
	m.Advance()
	if st := m.State(); st.Withheld["a"] != 1 || st.Withheld["b"] != 0 || st.SharesReleased["b"] != 1 {
		t.Fatalf("after a withheld: %+v", st)
	}
	// Restored from its state, the machine still passes over a.
	r, err := NewMachine(testRules(), m.State())
	if err != nil {
		t.Fatal(err)
	}
	m = r
	if sr := round(2); !slices.Equal(sr.Sites, []string{"b", "c"}) {
		t.Fatalf("round 2 set %v, want b and c (a withheld)", sr.Sites)
	}
}
