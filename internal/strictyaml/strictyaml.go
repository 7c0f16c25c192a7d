// Package strictyaml decodes a run file (a sweep or a study) so that a misspelt key
// stops the run instead of being ignored, and every error names the file.
package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"
)

// Decode decodes data, read from name, into v, refusing keys v has no field for.
// what names the kind of file in the error for an empty one ("sweep file").
func Decode(name, what string, data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: empty %s", name, what)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
