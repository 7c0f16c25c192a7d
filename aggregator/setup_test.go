package aggregator

import (
	"errors"
	"slices"
	"testing"
)

func TestSetupSequence(t *testing.T) {
	all := []string{"a", "b", "c", "d"}
	steps := func(p SetupPhase) []Msg {
		var out []Msg
		for _, s := range all {
			out = append(out, StepDone{Site: s, Phase: p})
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		threshold int
		phases    []SetupPhase // assigned in this order after Begin
	}{
		{"threshold below sites", 2, []SetupPhase{SetupPublicKey, SetupDealing, SetupCollecting, SetupInstallingKey, SetupVocabulary}},
		{"threshold equals sites", 4, []SetupPhase{SetupPublicKey, SetupInstallingKey, SetupVocabulary}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testRules()
			r.Threshold, r.MinSites = tc.threshold, tc.threshold
			m, err := NewSetupMachine(r, SetupState{})
			if err != nil {
				t.Fatal(err)
			}
			var ref *Refused
			if err := stepAll(m, Enrolled{Site: "a"}, Enrolled{Site: "b"}, Enrolled{Site: "c"}, Begin{}); !errors.As(err, &ref) {
				t.Fatalf("begin with a site missing: err = %v", err)
			}
			if err := m.Step(Enrolled{Site: "x"}); !errors.As(err, &ref) {
				t.Fatalf("enrolment of a site off the allow-list: err = %v", err)
			}
			if err := stepAll(m, Enrolled{Site: "d"}, Begin{}); err != nil {
				t.Fatal(err)
			}
			for i, p := range tc.phases {
				rd := m.Ready()
				if rd.Assign == nil || rd.Assign.Phase != p || !slices.Equal(rd.Assign.Sites, all) {
					t.Fatalf("step %d: ready %+v, want an assignment of %s to all", i, rd, p)
				}
				if rd.BuildKey != (i == 1) {
					t.Fatalf("step %d: BuildKey = %v", i, rd.BuildKey)
				}
				m.Advance()
				// A step of another phase, and a repeat, are refused without effect.
				if err := m.Step(StepDone{Site: "a", Phase: p + 1}); !errors.As(err, &ref) {
					t.Fatalf("step of another phase: err = %v", err)
				}
				msgs := steps(p)
				if err := stepAll(m, msgs[:3]...); err != nil {
					t.Fatal(err)
				}
				if err := m.Step(msgs[0]); !errors.As(err, &ref) {
					t.Fatalf("repeated step: err = %v", err)
				}
				if !slices.Equal(m.Pending(), []string{"d"}) || !m.Ready().IsEmpty() {
					t.Fatalf("pending %v, ready %+v", m.Pending(), m.Ready())
				}
				// A restart here resumes with the same site pending.
				r2, err := NewSetupMachine(r, m.State())
				if err != nil || r2.Phase() != p || !slices.Equal(r2.Pending(), []string{"d"}) {
					t.Fatalf("restored: %v, phase %s, pending %v", err, r2.Phase(), r2.Pending())
				}
				if err := m.Step(msgs[3]); err != nil {
					t.Fatal(err)
				}
			}
			if rd := m.Ready(); !rd.BuildVocabulary || m.Phase() != SetupDone {
				t.Fatalf("after the last step: ready %+v, phase %s", rd, m.Phase())
			}
			if err := m.Step(Begin{}); !errors.As(err, &ref) {
				t.Fatalf("begin after setup: err = %v", err)
			}
		})
	}
}

func TestSetupStateValidation(t *testing.T) {
	for _, st := range []SetupState{
		{Phase: SetupDone + 1},
		{Enrolled: []string{"x"}},
		{Phase: SetupPublicKey, Finished: []string{"x"}},
	} {
		if _, err := NewSetupMachine(testRules(), st); err == nil {
			t.Errorf("state %+v accepted", st)
		}
	}
}
