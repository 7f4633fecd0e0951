package runtimetune

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	prevGC := debug.SetGCPercent(100)
	prevProcs := runtime.GOMAXPROCS(0)
	t.Cleanup(func() {
		debug.SetGCPercent(prevGC)
		runtime.GOMAXPROCS(prevProcs)
	})
	tests := []struct {
		name      string
		env       map[string]string
		gc        int // the GC target in force before Apply
		procs     int // GOMAXPROCS before Apply
		wantGC    int
		wantProcs int
	}{
		{"unset/takes-the-services-defaults", nil, 100, 2, GCPercent, 3},
		{"unset/one-cpu", nil, 100, 1, GCPercent, 2},
		{"GOGC-set/keeps-the-runtime's", map[string]string{"GOGC": "50"}, 50, 2, 50, 3},
		{"GOGC-off/keeps-it-off", map[string]string{"GOGC": "off"}, -1, 2, -1, 3},
		{"GOMAXPROCS-set/keeps-the-runtime's", map[string]string{"GOMAXPROCS": "2"}, 100, 2, GCPercent, 2},
		// The runtime ignores an empty or malformed value, and so must we:
		// `GOMAXPROCS= cmd` is the default, not a choice.
		{"GOMAXPROCS-empty/takes-the-services-default", map[string]string{"GOMAXPROCS": ""}, 100, 2, GCPercent, 3},
		{"GOMAXPROCS-malformed/takes-the-services-default", map[string]string{"GOMAXPROCS": "two"}, 100, 2, GCPercent, 3},
		{"GOMAXPROCS-zero/takes-the-services-default", map[string]string{"GOMAXPROCS": "0"}, 100, 2, GCPercent, 3},
		{"GOGC-empty/takes-the-services-target", map[string]string{"GOGC": ""}, 100, 2, GCPercent, 3},
		{"GOGC-malformed/takes-the-services-target", map[string]string{"GOGC": "lots"}, 100, 2, GCPercent, 3},
		// The runtime parses both as 32-bit (readGOGC, schedinit): past
		// int32 it is malformed, though Atoi would take it.
		{"GOGC-past-int32/takes-the-services-target", map[string]string{"GOGC": "2147483648"}, 100, 2, GCPercent, 3},
		{"GOMAXPROCS-past-int32/takes-the-services-default", map[string]string{"GOMAXPROCS": "2147483648"}, 100, 2, GCPercent, 3},
		{"GOGC-negative/keeps-it-off", map[string]string{"GOGC": "-5"}, -1, 2, -1, 3},
		{"GOGC-plus-sign/keeps-the-runtime's", map[string]string{"GOGC": "+50"}, 50, 2, 50, 3},
		{"GOGC-space/takes-the-services-target", map[string]string{"GOGC": " 50"}, 100, 2, GCPercent, 3},
		{"GOGC-OFF-uppercase/takes-the-services-target", map[string]string{"GOGC": "OFF"}, 100, 2, GCPercent, 3},
		{"GOMAXPROCS-negative/takes-the-services-default", map[string]string{"GOMAXPROCS": "-1"}, 100, 2, GCPercent, 3},
		{"GOMAXPROCS-plus-sign/keeps-the-runtime's", map[string]string{"GOMAXPROCS": "+2"}, 100, 2, GCPercent, 2},
		{"GOMAXPROCS-space/takes-the-services-default", map[string]string{"GOMAXPROCS": "2 "}, 100, 2, GCPercent, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(tt.gc)
			runtime.GOMAXPROCS(tt.procs)
			got := apply(func(k string) string { return tt.env[k] })
			gc, procs := debug.SetGCPercent(tt.gc), runtime.GOMAXPROCS(0)
			if got != (Applied{tt.wantGC, tt.wantProcs}) || gc != tt.wantGC || procs != tt.wantProcs {
				t.Fatalf("Apply = %+v, in force GC %d, GOMAXPROCS %d; want %d, %d", got, gc, procs, tt.wantGC, tt.wantProcs)
			}
		})
	}
}
