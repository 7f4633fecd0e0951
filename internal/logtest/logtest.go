// Package logtest gives tests a logger that keeps everything a service logs,
// DEBUG included, and fails the test when a test card number reached it. A
// card number must never reach a log at any level, and a test logger that
// drops DEBUG could not see one written there: one added "just for
// debugging" would pass every test.
//
// It holds test card numbers only (published test cards and the typos tests
// make of them); it parses nothing and may be imported by any test, the
// gateway's included.
package logtest

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Cards are the test card numbers the repository's tests type, encrypt or
// send, and the one-digit-off numbers they use to test refusals: a shopper's
// typo is still a card number to keep out of logs.
var Cards = []string{
	"4242424242424242", "4242424242424241", "4000056655665556", "4111111111111111",
	"4012888888881881", "4222222222222", "4000000000000000006",
	"5555555555554444", "5555555555554445", "5105105105105100", "5200828282828210", "2223003122003222",
	"378282246310005", "378282246310006", "371449635398431", "378734493671000",
	"6011111111111117", "6011000990139424", "6445644564456445",
	"36227206271667", "38520000023237", "3056930009020004",
	"3566002020360505", "3530111333300000",
	"6200000000000005", "6200000000000006", "6205500000000000004", "6250941006528599",
	"6759649826438453", "6771798021000008",
	"1234567890123452", "9999999999999995",
}

// Debug is the handler options of a test logger: every level.
var Debug = &slog.HandlerOptions{Level: slog.LevelDebug}

// Forms returns the ways pan is written: unbroken, in groups of four (as a
// 16-digit card is printed), and for 14 and 15 digits also 4-6-rest (as
// Amex and Diners print theirs), each grouping with spaces and with dashes.
func Forms(pan string) []string {
	forms := []string{pan}
	for _, sep := range []string{" ", "-"} {
		forms = append(forms, strings.Join(groups(pan, 4, 4, 4, 4, 4), sep))
		if n := len(pan); n == 14 || n == 15 {
			forms = append(forms, strings.Join(groups(pan, 4, 6, 5), sep))
		}
	}
	return slices.Compact(forms)
}

// groups cuts s into pieces of the given sizes, the last one taking what is
// left when the sizes run short.
func groups(s string, sizes ...int) []string {
	var out []string
	for i, n := range sizes {
		if len(s) <= n || i == len(sizes)-1 {
			return append(out, s)
		}
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

// Find reports which of cards text holds, in any of its Forms: a
// description that names the card by its first 6 and last 4 digits and the
// form found, or "" when text holds none.
func Find(text string, cards ...string) string {
	for _, pan := range cards {
		for i, f := range Forms(pan) {
			if strings.Contains(text, f) {
				form := "unbroken"
				if i > 0 {
					form = "grouped " + describeGrouping(f)
				}
				return pan[:6] + "…" + pan[len(pan)-4:] + ", " + form
			}
		}
	}
	return ""
}

func describeGrouping(f string) string {
	sep := " "
	if strings.Contains(f, "-") {
		sep = "-"
	}
	var sizes []string
	for _, g := range strings.Split(f, sep) {
		sizes = append(sizes, strings.Repeat("#", len(g)))
	}
	return strings.Join(sizes, sep)
}

// Sink keeps a test's log output, safe for concurrent writers. Made by
// NewSink, it fails its test when the test ends if the output holds a card
// number of Cards or one given to Watch.
type Sink struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	cards []string
}

// NewSink returns an empty Sink watching Cards, checked when t ends.
func NewSink(t testing.TB) *Sink {
	t.Helper()
	s := &Sink{cards: slices.Clone(Cards)}
	t.Cleanup(func() {
		if found := Find(s.String(), s.watched()...); found != "" {
			t.Errorf("a card number reached the logs (%s): no level may log one, DEBUG included", found)
		}
	})
	return s
}

// Write implements io.Writer.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// String returns everything written so far.
func (s *Sink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// Watch adds card numbers to look for, such as those a test encrypts that
// are not in Cards.
func (s *Sink) Watch(pans ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range pans {
		if len(p) >= 12 && !slices.Contains(s.cards, p) {
			s.cards = append(s.cards, p)
		}
	}
}

func (s *Sink) watched() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cards)
}

// JSON returns a logger writing JSON records of every level into a new
// Sink, checked when t ends.
func JSON(t testing.TB) (*slog.Logger, *Sink) {
	t.Helper()
	s := NewSink(t)
	return slog.New(slog.NewJSONHandler(s, Debug)), s
}

// Text is JSON in slog's text format.
func Text(t testing.TB) (*slog.Logger, *Sink) {
	t.Helper()
	s := NewSink(t)
	return slog.New(slog.NewTextHandler(s, Debug)), s
}
