//go:build !unix

package audit

import "os"

// lockFile is a no-op where flock is unavailable; one writer per log is then the
// deployment's responsibility.
func lockFile(*os.File) error { return nil }
