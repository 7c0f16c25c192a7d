package aggregator

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/secureagg"
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testRules()
			r.Threshold, r.MinSites = tc.threshold, tc.threshold+1
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

// TestShamirBlobNamesUnambiguous: site ids may contain "-", so "shamir-D-R" made
// the share a deals to b-a and the one a-b deals to a the same file.
func TestShamirBlobNamesUnambiguous(t *testing.T) {
	sites := []string{"a", "a-b", "b-a", "b", "a-b-a"}
	seen := map[string]string{}
	for _, d := range sites {
		for _, r := range sites {
			n := shamirBlob(d, r)
			if prev, dup := seen[n]; dup {
				t.Fatalf("%s and %s->%s share blob name %q", prev, d, r, n)
			}
			seen[n] = d + "->" + r
		}
	}
}

// TestCountTableBounds: a table of implausibly many codes is refused with the
// reason, before it can inflate every party's model.
func TestCountTableBounds(t *testing.T) {
	vc := DefaultConfig().Vocabulary
	table := func(patients uint64, codes int) []byte {
		ct := &fedclaimspb.CountTable{KFloor: 10, Patients: patients}
		for i := range codes {
			ct.Counts = append(ct.Counts, &fedclaimspb.CodeCount{Code: fmt.Sprintf("ICD10//X%06d", i), Patients: 10})
		}
		b, err := proto.Marshal(ct)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, _, err := parseCountTable(table(100, 300), vc); err != nil {
		t.Fatalf("plausible table refused: %v", err)
	}
	for name, tc := range map[string]struct {
		b    []byte
		want string
	}{
		"codes per patient": {table(10, 10*vc.MaxCodesPerPatient+1), "max_codes_per_patient"},
	} {
		_, _, err := parseCountTable(tc.b, vc)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one naming %s", name, err, tc.want)
		}
	}
	small := vc
	small.MaxCodesPerTable = 100
	if _, _, err := parseCountTable(table(1000, 101), small); err == nil || !strings.Contains(err.Error(), "max_codes_per_table") {
		t.Errorf("table over max_codes_per_table: err = %v", err)
	}
}

// TestKeyShareOfAnotherParameterSet: a public-key share made under another
// parameter set is refused at upload, naming its sender. Before, it was stored,
// and building the collective key failed at every restart, naming no one.
func TestKeyShareOfAnotherParameterSet(t *testing.T) {
	ours, err := secureagg.NewParameters(secureagg.PresetN12Q60)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		preset secureagg.Preset
		fed    string
		party  secureagg.SiteID
		want   codes.Code
	}{
		{"ours", secureagg.PresetN12Q60, "fed", 0, codes.OK},
		{"another parameter set", secureagg.PresetN13Q60, "fed", 0, codes.InvalidArgument},
		{"another federation", secureagg.PresetN12Q60, "other", 0, codes.PermissionDenied},
		{"another party", secureagg.PresetN12Q60, "fed", 1, codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params, err := secureagg.NewParameters(tc.preset)
			if err != nil {
				t.Fatal(err)
			}
			p, err := secureagg.NewParty(secureagg.Config{Params: params, Federation: tc.fed, Sites: []secureagg.SiteID{0, 1, 2}, Threshold: 2, MinSites: 3}, tc.party)
			if err != nil {
				t.Fatal(err)
			}
			sh, err := p.PublicKeyShare()
			if err != nil {
				t.Fatal(err)
			}
			err = checkKeyShare(sh, ours, "fed", "h01", 0)
			if status.Code(err) != tc.want {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), "h01") {
				t.Fatalf("refusal does not name the sender: %v", err)
			}
		})
	}
}
