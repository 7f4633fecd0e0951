// Package runtimetune sets the services' Go runtime defaults: the garbage
// collector's target and the number of processors that run goroutines
// (GOMAXPROCS). The environment variable the runtime reads for each (GOGC,
// GOMAXPROCS) always wins.
//
// The GC target: both services keep a small live heap (one or two MiB)
// and allocate per request, so with Go's default target (GOGC=100: collect
// when the heap has grown by the live heap) they collect dozens of times a
// second under load. At a target of 200 the key service spent about 5% less
// CPU per P-256 inspect and the gateway about 5% less per checkout submit,
// for about 5 MiB more resident memory (BENCHMARKS.md, "GC target").
//
// The processors: one more than the runtime's default (the CPUs this
// process may use, lowered to a container's CPU limit rounded up but never
// below 2: three processors on a one-CPU limit). The audit log's
// writer blocks in fsync hundreds of times a second, and a goroutine in a
// blocking system call keeps its processor until the scheduler's monitor
// takes it back, 20 µs to 10 ms later; meanwhile a CPU that a runnable
// request could use sits idle. With one processor to spare the CPUs stay
// busy: RSA-3072 inspect went from 80.8-81.6% to 83.5-86.0% of
// rsa.DecryptOAEP, P-256 inspect throughput up 6-11%, at the same CPU per
// request (BENCHMARKS.md, "Processors"). Setting it stops the runtime from
// following a CPU limit that changes while the process runs; set
// GOMAXPROCS to choose.
package runtimetune

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
)

// GCPercent is the services' GC target when GOGC is not set.
const GCPercent = 200

// Applied is what Apply left in force.
type Applied struct {
	GCPercent int // the GC target (-1: off)
	Procs     int // GOMAXPROCS
}

// Apply sets the GC target to GCPercent unless GOGC is set, and
// GOMAXPROCS to one more than the runtime's default unless GOMAXPROCS is
// set (the runtime has read both already). "Set" means set to a value the
// runtime took: it ignores an empty or malformed one, and so does Apply.
func Apply() Applied {
	return apply(os.Getenv)
}

func apply(getenv func(string) string) Applied {
	var a Applied
	if v := getenv("GOGC"); v == "off" || isInt32(v) {
		a.GCPercent = debug.SetGCPercent(100)
		debug.SetGCPercent(a.GCPercent)
	} else {
		debug.SetGCPercent(GCPercent)
		a.GCPercent = GCPercent
	}
	a.Procs = runtime.GOMAXPROCS(0)
	if n, err := strconv.ParseInt(getenv("GOMAXPROCS"), 10, 32); err != nil || n <= 0 {
		a.Procs++
		runtime.GOMAXPROCS(a.Procs)
	}
	return a
}

// isInt32 is the runtime's test of a number in GOGC (readGOGC): a value
// past int32, which Atoi takes, is malformed to the runtime.
func isInt32(s string) bool {
	_, err := strconv.ParseInt(s, 10, 32)
	return err == nil
}
