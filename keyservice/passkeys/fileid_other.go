//go:build !linux

package passkeys

import "os"

// sysID knows no inode or change time here: no fileID is trusted, and the
// registry re-reads its file at every check.
func sysID(os.FileInfo) (dev, ino uint64, ctime int64, ok bool) { return 0, 0, 0, false }
