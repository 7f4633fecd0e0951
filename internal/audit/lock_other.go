//go:build !unix

package audit

import "os"

// lockFile is a no-op where flock is unavailable: there, keep one writer per
// file by deployment.
func lockFile(*os.File) error { return nil }
