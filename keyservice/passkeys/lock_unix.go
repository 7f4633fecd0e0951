//go:build unix

package passkeys

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lock takes the registry's lock file (path + ".lock") exclusively, so the
// running service and an admin command never interleave a
// read-modify-write of the registry. It waits up to lockWait.
func lock(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("passkeys: lock: %w", err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("%w: %s.lock: %w", ErrBusy, path, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
