package logtest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestForms(t *testing.T) {
	for _, tc := range []struct {
		pan  string
		want []string
	}{
		{"4242424242424242", []string{"4242424242424242", "4242 4242 4242 4242", "4242-4242-4242-4242"}},
		{"378282246310005", []string{"378282246310005", "3782 8224 6310 005", "3782 822463 10005", "3782-8224-6310-005", "3782-822463-10005"}},
		{"36227206271667", []string{"36227206271667", "3622 7206 2716 67", "3622 720627 1667", "3622-7206-2716-67", "3622-720627-1667"}},
		{"4000000000000000006", []string{"4000000000000000006", "4000 0000 0000 0000 006", "4000-0000-0000-0000-006"}},
	} {
		t.Run(tc.pan, func(t *testing.T) {
			if got := Forms(tc.pan); !slices.Equal(got, tc.want) {
				t.Fatalf("Forms = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFind(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"found/unbroken-in-json", `{"level":"DEBUG","msg":"x","pan":"4242424242424242"}`, "424242…4242, unbroken"},
		{"found/grouped-spaces", `level=DEBUG msg="typed 4242 4242 4242 4242"`, "424242…4242, grouped #### #### #### ####"},
		{"found/grouped-dashes", `card=5555-5555-5555-4444`, "555555…4444, grouped ####-####-####-####"},
		{"found/amex-grouping", `card="3782 822463 10005"`, "378282…0005, grouped #### ###### #####"},
		{"found/typo-card", `n=4242424242424241`, "424242…4241, unbroken"},
		{"none/masked", `bin=424242 last4=4242 masked="4242 42•• •••• 4242"`, ""},
		{"none/other-digits", `seq=4242424242 time=1732708800123456789`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Find(tc.text, Cards...); got != tc.want {
				t.Fatalf("Find = %q, want %q", got, tc.want)
			}
		})
	}
}

// recorder notes what the sink's cleanup does to its test.
type recorder struct {
	testing.TB
	errors  []string
	cleanup []func()
}

func (r *recorder) Helper()          {}
func (r *recorder) Cleanup(f func()) { r.cleanup = append(r.cleanup, f) }
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) end() {
	for i := len(r.cleanup) - 1; i >= 0; i-- {
		r.cleanup[i]()
	}
}

func TestSinkFailsOnCardAtAnyLevel(t *testing.T) {
	for _, tc := range []struct {
		name string
		log  func(r *recorder)
		fail bool
	}{
		{"failed/debug-json", func(r *recorder) {
			l, _ := JSON(r)
			l.Debug("decrypted", "pan", "4242424242424242")
		}, true},
		{"failed/debug-text-grouped", func(r *recorder) {
			l, _ := Text(r)
			l.Debug("typed", "value", "4242 4242 4242 4242")
		}, true},
		{"failed/watched-card", func(r *recorder) {
			l, s := JSON(r)
			s.Watch("4929939187355598")
			l.Info("x", "n", "4929 9391 8735 5598")
		}, true},
		{"passed/masked", func(r *recorder) {
			l, _ := JSON(r)
			l.Debug("inspected", "bin", "424242", "last4", "4242")
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{TB: t}
			tc.log(r)
			r.end()
			if failed := len(r.errors) > 0; failed != tc.fail {
				t.Fatalf("errors %q, want failure=%v", r.errors, tc.fail)
			}
			for _, e := range r.errors {
				if strings.Contains(strings.ReplaceAll(e, " ", ""), "4242424242424242") {
					t.Fatalf("the failure message repeats the card number: %s", e)
				}
			}
		})
	}
}
