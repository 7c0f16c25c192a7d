package audit_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fedclaims/fedclaims/audit"
)

// An action is audited before it is performed; if the entry cannot be written, the
// action is refused.
func Example() {
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "aggregator.audit.jsonl")
	now := func() time.Time { return time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC) }

	log, err := audit.Open(path, audit.Options{Actor: "aggregator", Now: now})
	if err != nil {
		fmt.Println(err)
		return
	}
	update := []byte("ciphertext chunks as received")
	_, err = log.Append(context.Background(), audit.Entry{
		Type: audit.Upload, Federation: "fed1", Round: 3, Site: "a",
		Fields: map[string]string{"sha256": audit.SHA256(update), "bytes": fmt.Sprint(len(update))},
	})
	if err != nil {
		fmt.Println("refusing the upload:", err)
		return
	}
	log.Close()

	f, _ := os.Open(path)
	defer f.Close()
	s, err := audit.Verify(f)
	fmt.Println(s.Entries, err)
	// Output: 1 <nil>
}
