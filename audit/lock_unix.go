//go:build unix

package audit

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on f, so that two processes never append
// to one chain and fork it. The lock goes with the file's close.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errors.New("log is open in another writer")
	}
	if err != nil {
		return fmt.Errorf("locking: %w", err)
	}
	return nil
}
