package testenv

import (
	"flag"
	"fmt"
	"testing"
)

// outcome records what a helper did to a test instead of doing it.
type outcome struct {
	testing.TB
	fatal, skip string
}

func (o *outcome) Helper()                           {}
func (o *outcome) Fatalf(format string, args ...any) { o.fatal = fmt.Sprintf(format, args...) }
func (o *outcome) Skipf(format string, args ...any)  { o.skip = fmt.Sprintf(format, args...) }

func TestInCIAnyValue(t *testing.T) {
	for _, tc := range []struct {
		value string
		ci    bool
	}{
		{"true", true}, {"1", true}, {"yes", true}, {"TRUE", true}, {"false", true}, {"", false},
	} {
		t.Run(fmt.Sprintf("CI=%q", tc.value), func(t *testing.T) {
			t.Setenv("CI", tc.value)
			if got := InCI(); got != tc.ci {
				t.Fatalf("InCI() = %v, want %v", got, tc.ci)
			}
			o := &outcome{TB: t}
			Missing(o, "no widget")
			if tc.ci && (o.fatal == "" || o.skip != "") || !tc.ci && (o.skip == "" || o.fatal != "") {
				t.Fatalf("Missing: fatal %q skip %q, want a failure only under CI", o.fatal, o.skip)
			}
		})
	}
}

func TestSkipShort(t *testing.T) {
	short := flag.Lookup("test.short")
	was := short.Value.String()
	t.Cleanup(func() { _ = short.Value.Set(was) })
	for _, tc := range []struct {
		name       string
		short      string
		ci         string
		fail, skip bool
	}{
		{"runs/not-short", "false", "", false, false},
		{"runs/not-short-in-ci", "false", "1", false, false},
		{"skipped/short", "true", "", false, true},
		{"failed/short-in-ci", "true", "true", true, false},
		{"failed/short-in-ci-any-value", "true", "1", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			if err := short.Value.Set(tc.short); err != nil {
				t.Fatal(err)
			}
			o := &outcome{TB: t}
			SkipShort(o, "long test")
			_ = short.Value.Set(was)
			if (o.fatal != "") != tc.fail || (o.skip != "") != tc.skip {
				t.Fatalf("fatal %q skip %q, want fail=%v skip=%v", o.fatal, o.skip, tc.fail, tc.skip)
			}
		})
	}
}
