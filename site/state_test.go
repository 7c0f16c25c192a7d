package site

import (
	"errors"
	"os"
	"testing"

	"github.com/fedclaims/fedclaims/audit"
)

// TestReleaseOncePerRoundAcrossRestart: the record of a released share is on disk
// before the share leaves, so a restarted agent (a fresh state over the same
// directory) refuses a second share for the round.
func TestReleaseOncePerRoundAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	st, err := openState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.release("fed", 3, audit.Head{}); err != nil {
		t.Fatal(err)
	}
	if err := st.release("fed", 3, audit.Head{}); !errors.Is(err, ErrReleased) {
		t.Fatalf("second share in one process: %v", err)
	}
	restarted, err := openState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := restarted.release("fed", 3, audit.Head{}); !errors.Is(err, ErrReleased) {
		t.Fatalf("second share after a restart: %v", err)
	}
	if err := restarted.release("fed", 4, audit.Head{}); err != nil {
		t.Fatalf("next round refused: %v", err)
	}
	if err := restarted.release("other", 5, audit.Head{}); err == nil {
		t.Fatal("a state directory of one federation accepted another's round")
	}
	fi, err := os.Stat(restarted.path(releasedFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
}

func TestLastSeq(t *testing.T) {
	st, err := openState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := st.lastSeq("fed"); err != nil || n != 0 {
		t.Fatalf("fresh state: %d, %v", n, err)
	}
	if err := st.setLastSeq("fed", 7, audit.Head{}); err != nil {
		t.Fatal(err)
	}
	if n, err := st.lastSeq("fed"); err != nil || n != 7 {
		t.Fatalf("got %d, %v", n, err)
	}
	if n, err := st.lastSeq("other"); err != nil || n != 0 {
		t.Fatalf("another federation starts from 0, got %d, %v", n, err)
	}
	if err := os.WriteFile(st.path(seqFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.lastSeq("fed"); err == nil {
		t.Fatal("a corrupt record was read")
	}
}
