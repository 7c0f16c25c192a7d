package site

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/fedclaims/fedclaims/audit"
	"github.com/fedclaims/fedclaims/fedclaimspb"
	"github.com/fedclaims/fedclaims/secureagg"
)

// TestDecryptRefusals: the agent gives no decryption share for an aggregate of too
// few contributors, for a set it is not in or of the wrong size, or for a round it
// already gave one for, also after a restart. Each refusal is audited, and comes
// before anything is downloaded: the agent has no connection here, so a refusal that
// came too late would panic on the nil client.
func TestDecryptRefusals(t *testing.T) {
	a := newTestAgent(t)
	sites := []string{"a", "b", "c", "d"}
	a.fed = &fedclaimspb.FederationConfig{FederationId: "fed", Sites: sites, Threshold: 2, MinSites: 3}
	params, err := secureagg.NewParameters(secureagg.PresetN12Q60)
	if err != nil {
		t.Fatal(err)
	}
	parties, err := secureagg.SetupLocal(secureagg.Config{Params: params, Federation: "fed", Sites: rosterIDs(t, sites), Threshold: 2, MinSites: 3})
	if err != nil {
		t.Fatal(err)
	}
	a.party = parties[0]
	if err := a.st.release("fed", 5, audit.Head{}); err != nil {
		t.Fatal(err)
	}
	// A restarted agent reads the record from the state directory.
	a.st, err = openState(a.cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                     string
		round                    uint64
		contributors, decryptors []string
		want                     string
		wantReleased             bool
	}{
		{"as few contributors as decryptors", 6, []string{"a", "b"}, []string{"a", "b"}, "below min_sites", false},
		{"not a decryptor", 6, sites, []string{"b", "c"}, "not among the decryptors", false},
		{"set larger than the threshold", 6, sites, []string{"a", "b", "c"}, "threshold", false},
		{"decryptor that did not contribute", 6, []string{"a", "b", "c"}, []string{"a", "d"}, "did not contribute", false},
		{"unknown site", 6, []string{"a", "b", "x"}, []string{"a", "b"}, "not in the federation", false},
		{"share already released", 5, sites, []string{"a", "b"}, "already released", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asg := &fedclaimspb.Assignment{Envelope: &fedclaimspb.Envelope{FederationId: "fed", RoundId: tt.round, SiteId: "a"}, Seq: 1,
				Task: &fedclaimspb.Assignment_Decrypt{Decrypt: &fedclaimspb.DecryptTask{Contributors: tt.contributors, Decryptors: tt.decryptors}}}
			err := a.handle(context.Background(), asg)
			if err == nil || !strings.Contains(err.Error(), tt.want) || fatal(err) {
				t.Fatalf("got %v, want a refusal with %q", err, tt.want)
			}
			if tt.wantReleased != errors.Is(err, ErrReleased) {
				t.Fatalf("ErrReleased: %v", err)
			}
			b, err := os.ReadFile(a.cfg.AuditLog)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if last := lines[len(lines)-1]; !strings.Contains(last, `"type":"refusal"`) {
				t.Fatalf("refusal not audited; last entry %s", last)
			}
		})
	}
	if rounds, _ := a.st.releasedRounds("fed"); len(rounds) != 1 {
		t.Fatalf("released rounds %v after refusals", rounds)
	}
}
