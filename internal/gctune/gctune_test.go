package gctune

import (
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	tests := []struct {
		name string
		env  map[string]string
		set  int // the target in force before Apply
		want int
	}{
		{"unset/takes-the-services-target", nil, 100, Percent},
		{"GOGC-set/keeps-the-runtime's", map[string]string{"GOGC": "50"}, 50, 50},
		{"GOGC-off/keeps-it-off", map[string]string{"GOGC": "off"}, -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(tt.set)
			got := apply(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if now := debug.SetGCPercent(tt.set); got != tt.want || now != tt.want {
				t.Fatalf("Apply = %d, target in force %d, want %d", got, now, tt.want)
			}
		})
	}
}
