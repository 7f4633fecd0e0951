package testenv

import (
	"syscall"
	"time"
)

// CPUTime is this process's user and system CPU time so far (0 if the
// kernel will not say), for benchmarks that report CPU per operation:
// the difference of two readings covers every goroutine, the ones a
// client or server under test starts included.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
