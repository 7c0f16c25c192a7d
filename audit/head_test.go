package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// headsOf returns the head after each entry of a log: heads[i] is the head a state
// file written after entry i+1 would record.
func headsOf(t *testing.T, b []byte) []Head {
	t.Helper()
	var hs []Head
	for _, l := range lines(b) {
		var e Entry
		if err := json.Unmarshal(bytes.TrimSuffix(l, []byte("\n")), &e); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, Head{Seq: e.Seq, Hash: e.Hash})
	}
	return hs
}

func TestAnchor(t *testing.T) {
	path, b := writeSample(t, Options{})
	hs := headsOf(t, b)
	l, err := Open(path, Options{Actor: "site/a", Now: clock()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.Anchor(); got != hs[len(hs)-1] {
		t.Fatalf("anchor %v, want %v", got, hs[len(hs)-1])
	}
	e, err := l.Append(context.Background(), Entry{Type: ConfigChange})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Anchor(); got != (Head{Seq: e.Seq, Hash: e.Hash}) {
		t.Fatalf("anchor after append %v, want seq %d", got, e.Seq)
	}
	// A head is what a state file keeps; it must survive JSON both ways.
	j, _ := json.Marshal(hs[2])
	var back Head
	if err := json.Unmarshal(j, &back); err != nil || back != hs[2] || !strings.HasPrefix(string(j), `{"seq":3,"hash":"`) {
		t.Fatalf("json %s -> %v, %v", j, back, err)
	}
}

// TestOpenExpect opens logs against heads recorded in state files: a log cut by
// whole entries, one rewritten, one intact and one that went on after the checkpoint.
func TestOpenExpect(t *testing.T) {
	_, b := writeSample(t, Options{})
	ls := lines(b)
	hs := headsOf(t, b)
	n := len(ls)
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	// A forger who drops entry 5 and rewrites 6 to follow 4 keeps a valid chain.
	forged := rewrite(t, join(ls[:4]...), 4, true, func(e *Entry) { e.Fields["bytes"] = "1" })
	tests := []struct {
		name   string
		log    []byte
		expect []Head
		repair bool
		want   error // nil: Open succeeds
	}{
		{"intact, last head", b, hs[n-1:], false, nil},
		{"intact, every head", b, hs, false, nil},
		{"longer than the checkpoint", b, hs[2:3], false, nil},
		{"no heads recorded", join(ls[:4]...), nil, false, nil},
		{"zero head from an old state file", join(ls[:4]...), []Head{{}}, false, nil},
		{"last entry cut", join(ls[:n-1]...), hs[n-1:], false, ErrCut},
		{"two entries cut", join(ls[:n-2]...), hs[n-1:], false, ErrCut},
		{"two entries cut, repair asked", join(ls[:n-2]...), hs[n-1:], true, ErrCut},
		{"every entry cut", nil, hs[n-1:], false, ErrCut},
		{"cut below an older head too", join(ls[:2]...), hs[2:4], false, ErrCut},
		{"cut, then a torn line", join(join(ls[:n-2]...), ls[n-2][:40]), hs[n-1:], true, ErrCut},
		{"torn after the head, repaired", join(b, ls[0][:40]), hs[n-1:], true, nil},
		{"rewritten at the head", forged, hs[3:4], false, ErrRewritten},
		{"heads disagree", b, []Head{hs[2], {Seq: 3, Hash: hs[1].Hash}}, false, ErrRewritten},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := t.TempDir() + "/audit.jsonl"
			if err := os.WriteFile(path, tt.log, 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := Open(path, Options{Actor: "site/a", Expect: tt.expect, RepairTorn: tt.repair})
			if tt.want == nil {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				l.Close()
				return
			}
			if err == nil {
				l.Close()
				t.Fatalf("open succeeded, want %v", tt.want)
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("open: %v, want %v naming %s", err, tt.want, path)
			}
			// A refused log is left as it was: no repair entry, nothing cut.
			if after, _ := os.ReadFile(path); !bytes.Equal(after, tt.log) {
				t.Errorf("refused log changed from %d to %d bytes", len(tt.log), len(after))
			}
		})
	}
}

// TestCutUnnoticedWithoutHead is the defect Expect closes: without a recorded head, a
// log cut by whole entries opens and its chain continues from the earlier seq,
// reusing the seqs of the entries that vanished.
func TestCutUnnoticedWithoutHead(t *testing.T) {
	path, b := writeSample(t, Options{})
	ls := lines(b)
	if err := os.WriteFile(path, bytes.Join(ls[:len(ls)-2], nil), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, Options{Actor: "site/a", Now: clock()})
	if err != nil {
		t.Fatalf("without a head the cut log should still open (the old behaviour): %v", err)
	}
	defer l.Close()
	e, err := l.Append(context.Background(), Entry{Type: Enrol, Site: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != uint64(len(ls)-1) {
		t.Fatalf("appended at seq %d, want %d (a vanished entry's seq)", e.Seq, len(ls)-1)
	}
}

func TestVerifierExpect(t *testing.T) {
	_, b := writeSample(t, Options{})
	ls := lines(b)
	hs := headsOf(t, b)
	cut := bytes.Join(ls[:3], nil)
	if _, err := (Verifier{Expect: hs[:3]}).Verify(bytes.NewReader(cut)); err != nil {
		t.Fatalf("prefix reaching its heads: %v", err)
	}
	_, err := Verifier{Expect: hs[4:5]}.Verify(bytes.NewReader(cut))
	wantBad(t, err, 3, ErrCut)
	if !strings.Contains(err.Error(), "ends at seq 3") || !strings.Contains(err.Error(), "seq 5") {
		t.Errorf("error %q should name both seqs", err)
	}
	other := hs[1]
	other.Hash = hs[0].Hash
	_, err = Verifier{Expect: []Head{other}}.Verify(bytes.NewReader(b))
	wantBad(t, err, 2, ErrRewritten)
	for _, bad := range []Head{{Seq: 2, Hash: "nothex"}, {Seq: 0, Hash: hs[0].Hash}} {
		if _, err := (Verifier{Expect: []Head{bad}}).Verify(bytes.NewReader(b)); err == nil {
			t.Errorf("head %+v accepted", bad)
		}
	}
}
