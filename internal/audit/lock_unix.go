//go:build unix

package audit

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock for the life of f, so a second
// writer (another process, or a second Open in this one) fails fast instead
// of forking the chain. The lock goes with the file descriptor on Close.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
