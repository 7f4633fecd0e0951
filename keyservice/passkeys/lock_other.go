//go:build !unix

package passkeys

// lock is a no-op where flock does not exist: run the admin command only
// while the service is stopped there.
func lock(string) (func(), error) { return func() {}, nil }
