// Package jsonfile reads and writes the JSON files that record a run's results, so
// that a resumed run reads exactly what an earlier one wrote and a crash never leaves
// half a file behind.
package jsonfile

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/fedclaims/fedclaims/internal/atomicfile"
)

// Read decodes the JSON file at path into v. A missing file returns an error that
// satisfies errors.Is(err, fs.ErrNotExist); a malformed one names path.
func Read(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Write writes v to path as indented JSON, atomically (see atomicfile.Write).
func Write(path string, v any) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	})
}
