//go:build linux

package passkeys

import (
	"os"
	"syscall"
)

// sysID is the device, inode and change time of fi.
func sysID(fi os.FileInfo) (dev, ino uint64, ctime int64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0, false
	}
	return uint64(st.Dev), uint64(st.Ino), st.Ctim.Nano(), true //nolint:unconvert // Dev is 32 bits on some ports
}
