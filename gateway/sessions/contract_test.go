package sessions

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable time source shared by a store and its test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func valid() Session {
	return Session{
		MerchantID:     "m_alice",
		AllowedOrigins: []string{"https://shop.example"},
		ReturnURL:      "https://shop.example/thanks?order=42",
	}
}

// runStoreContract is the behaviour every Store must have. newStore returns an
// empty store that reads time from now.
func runStoreContract(t *testing.T, newStore func(t *testing.T, now func() time.Time) Store) {
	ctx := context.Background()

	t.Run("create/fills-defaults-and-normalises", func(t *testing.T) {
		c := newClock()
		s := newStore(t, c.Now)
		in := valid()
		in.AllowedOrigins = []string{"HTTPS://Shop.Example:443/", "https://shop.example", "http://localhost:3000"}
		in.ReturnURL = "HTTPS://SHOP.example/thanks?order=42#done"
		in.Appearance = Appearance{Primary: "#FF0000", Font: "Georgia", Radius: "4px"}
		got, err := s.Create(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if !ValidID(got.ID) || got.Locale != "en" || got.MaxAttempts != DefaultMaxAttempts || got.Attempts != 0 {
			t.Fatalf("defaults: %+v", got)
		}
		if !got.CreatedAt.Equal(c.Now().Truncate(time.Millisecond)) || !got.ExpiresAt.Equal(got.CreatedAt.Add(DefaultTTL)) {
			t.Fatalf("times: created %v expires %v", got.CreatedAt, got.ExpiresAt)
		}
		if want := []string{"https://shop.example", "http://localhost:3000"}; !slices.Equal(got.AllowedOrigins, want) {
			t.Fatalf("origins %v, want %v", got.AllowedOrigins, want)
		}
		if got.ReturnURL != "https://shop.example/thanks?order=42#done" {
			t.Fatalf("return url %q", got.ReturnURL)
		}
		if got.Appearance != (Appearance{Primary: "#ff0000", Font: "georgia", Radius: "4px"}) {
			t.Fatalf("appearance %+v", got.Appearance)
		}
		back, err := s.Get(ctx, got.ID)
		if err != nil {
			t.Fatal(err)
		}
		if back.ID != got.ID || back.MerchantID != got.MerchantID || !slices.Equal(back.AllowedOrigins, got.AllowedOrigins) ||
			back.ReturnURL != got.ReturnURL || back.Appearance != got.Appearance || back.Locale != got.Locale ||
			!back.CreatedAt.Equal(got.CreatedAt) || !back.ExpiresAt.Equal(got.ExpiresAt) ||
			back.MaxAttempts != got.MaxAttempts || back.Attempts != 0 || back.Token != "" {
			t.Fatalf("round trip:\n got  %+v\n want %+v", back, got)
		}
	})

	// Every language i18n.js ships is accepted, alone or with a region; the
	// locale is stored as the merchant gave it and the page picks the language.
	t.Run("create/locales", func(t *testing.T) {
		s := newStore(t, newClock().Now)
		for _, locale := range []string{"en", "fr", "de", "de-DE", "fr-FR", "fr_CA", "DE-at", "en-GB", "de-Latn-CH"} {
			in := valid()
			in.Locale = locale
			got, err := s.Create(ctx, in)
			if err != nil || got.Locale != locale {
				t.Errorf("201/%s: %+v, %v", locale, got.Locale, err)
			}
		}
	})

	// The amount and currency round-trip (currency in upper case), with the
	// button's wording; the page reads them back.
	t.Run("create/payment", func(t *testing.T) {
		s := newStore(t, newClock().Now)
		in := valid()
		in.Amount, in.Currency, in.SubmitType = 2500, "eur", "donate"
		got, err := s.Create(ctx, in)
		if err != nil || got.Amount != 2500 || got.Currency != "EUR" || got.SubmitType != "donate" {
			t.Fatalf("create: %+v, %v", got, err)
		}
		back, err := s.Get(ctx, got.ID)
		if err != nil || back.Amount != 2500 || back.Currency != "EUR" || back.SubmitType != "donate" {
			t.Fatalf("get: %d %q %q, %v", back.Amount, back.Currency, back.SubmitType, err)
		}
	})

	t.Run("create/reference-and-metadata", func(t *testing.T) {
		s := newStore(t, newClock().Now)
		in := valid()
		in.Reference, in.Metadata = "  ORD-2026-0042 ", map[string]string{"customer": "c_77", "channel": "web"}
		got, err := s.Create(ctx, in)
		if err != nil || got.Reference != "ORD-2026-0042" || !maps.Equal(got.Metadata, in.Metadata) {
			t.Fatalf("create: %q %v, %v", got.Reference, got.Metadata, err)
		}
		back, err := s.Get(ctx, got.ID)
		if err != nil || back.Reference != "ORD-2026-0042" || !maps.Equal(back.Metadata, in.Metadata) {
			t.Fatalf("get: %q %v, %v", back.Reference, back.Metadata, err)
		}
		for name, mutate := range map[string]func(*Session){
			"reference":      func(x *Session) { x.Reference = "order 4242 4242 4242 4242" },
			"metadata-value": func(x *Session) { x.Metadata = map[string]string{"card": "4242424242424242"} },
		} {
			in := valid()
			mutate(&in)
			_, err := s.Create(ctx, in)
			if !errors.Is(err, ErrPANInText) || !errors.Is(err, ErrInvalid) {
				t.Errorf("pan_in_text/%s: %v", name, err)
			}
			if err != nil && strings.Contains(err.Error(), "4242") {
				t.Errorf("pan_in_text/%s: the error echoes the value: %v", name, err)
			}
		}
	})

	t.Run("create/invalid", func(t *testing.T) {
		c := newClock()
		s := newStore(t, c.Now)
		cases := map[string]func(*Session){
			"400/no-merchant":         func(x *Session) { x.MerchantID = "" },
			"400/merchant-braces":     func(x *Session) { x.MerchantID = "m_{a}" },
			"400/no-origins":          func(x *Session) { x.AllowedOrigins = nil },
			"400/origin-with-path":    func(x *Session) { x.AllowedOrigins = []string{"https://shop.example/pay"} },
			"400/return-other-origin": func(x *Session) { x.ReturnURL = "https://evil.example/thanks" },
			"400/return-http": func(x *Session) {
				x.AllowedOrigins = []string{"http://shop.example"}
				x.ReturnURL = "http://shop.example/x"
			},
			"400/return-javascript":    func(x *Session) { x.ReturnURL = "javascript:alert(1)" },
			"400/locale-unshipped":     func(x *Session) { x.Locale = "es" },
			"400/locale-regional-es":   func(x *Session) { x.Locale = "es-ES" },
			"400/locale-not-a-tag":     func(x *Session) { x.Locale = "german" },
			"400/locale-markup":        func(x *Session) { x.Locale = "de\"><script>" },
			"400/colour":               func(x *Session) { x.Appearance.Primary = "red" },
			"400/colour-css-injection": func(x *Session) { x.Appearance.Text = "#fff;background:url(x)" },
			"400/font":                 func(x *Session) { x.Appearance.Font = "Comic Sans MS" },
			"400/radius":               func(x *Session) { x.Appearance.Radius = "4em" },
			"400/max-attempts":         func(x *Session) { x.MaxAttempts = MaxMaxAttempts + 1 },
			"400/negative-attempts":    func(x *Session) { x.MaxAttempts = -1 },
			"400/expired-already":      func(x *Session) { x.ExpiresAt = c.Now().Add(-time.Second) },
			"400/too-long":             func(x *Session) { x.ExpiresAt = c.Now().Add(MaxTTL + time.Minute) },
			"400/preset-token":         func(x *Session) { x.Token = "tok_x" },
			"400/preset-attempts":      func(x *Session) { x.Attempts = 1 },
			"400/bad-id":               func(x *Session) { x.ID = "cs_short" },
			"400/amount-no-currency":   func(x *Session) { x.Amount = 2500 },
			"400/currency-no-amount":   func(x *Session) { x.Currency = "EUR" },
			"400/currency-unknown":     func(x *Session) { x.Amount, x.Currency = 2500, "EUX" },
			"400/amount-negative":      func(x *Session) { x.Amount, x.Currency = -5, "EUR" },
			"400/submit-type":          func(x *Session) { x.SubmitType = "buy" },
			"400/reference-too-long":   func(x *Session) { x.Reference = strings.Repeat("r", 129) },
			"400/metadata-key":         func(x *Session) { x.Metadata = map[string]string{"a key": "v"} },
		}
		for name, mutate := range cases {
			in := valid()
			mutate(&in)
			if _, err := s.Create(ctx, in); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v", name, err)
			}
		}
		first, err := s.Create(ctx, valid())
		if err != nil {
			t.Fatal(err)
		}
		dup := valid()
		dup.ID = first.ID
		if _, err := s.Create(ctx, dup); !errors.Is(err, ErrConflict) {
			t.Errorf("409/duplicate-id: %v", err)
		}
	})

	t.Run("get/unknown-or-malformed-is-not-found", func(t *testing.T) {
		s := newStore(t, newClock().Now)
		unknown, _ := NewID()
		for _, id := range []string{"", "cs_", "cs_{x}", unknown} {
			if _, err := s.Get(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(%q): %v", id, err)
			}
			if _, err := s.Attempt(ctx, id, "c"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Attempt(%q): %v", id, err)
			}
			if err := s.Complete(ctx, id, "tok_x"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Complete(%q): %v", id, err)
			}
		}
	})

	t.Run("attempt/answers-the-stored-session", func(t *testing.T) {
		s := newStore(t, newClock().Now)
		in := valid()
		in.Reference, in.Metadata, in.Amount, in.Currency = "order-42", map[string]string{"cart": "7"}, 1999, "EUR"
		cs, err := s.Create(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Attempt(ctx, cs.ID, "c")
		if err != nil {
			t.Fatal(err)
		}
		stored, err := s.Get(ctx, cs.ID)
		if err != nil || !reflect.DeepEqual(got, stored) || got.Attempts != 1 {
			t.Fatalf("Attempt answered %+v, the store holds %+v (%v)", got, stored, err)
		}
		if err := s.Complete(ctx, cs.ID, "tok_x"); err != nil {
			t.Fatal(err)
		}
		got, err = s.Attempt(ctx, cs.ID, "d")
		if stored, _ = s.Get(ctx, cs.ID); !errors.Is(err, ErrCompleted) || !reflect.DeepEqual(got, stored) || got.Token != "tok_x" {
			t.Fatalf("Attempt of a completed session answered %+v (%v), the store holds %+v", got, err, stored)
		}
	})

	t.Run("attempt/limit", func(t *testing.T) {
		s := newStore(t, newClock().Now)
		in := valid()
		in.MaxAttempts = 3
		cs, err := s.Create(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for want := 1; want <= 3; want++ {
			got, err := s.Attempt(ctx, cs.ID, "c")
			if err != nil || got.Attempts != want {
				t.Fatalf("attempt %d: attempts=%d err=%v", want, got.Attempts, err)
			}
			if err := s.Release(ctx, cs.ID, "c"); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Attempt(ctx, cs.ID, "c")
		if !errors.Is(err, ErrTooManyAttempts) || got.Attempts != 3 {
			t.Fatalf("429/fourth: attempts=%d err=%v", got.Attempts, err)
		}
		if got, _ := s.Get(ctx, cs.ID); got.Attempts != 3 {
			t.Fatalf("a refused attempt was counted: %d", got.Attempts)
		}
	})

	t.Run("attempt/concurrent-never-exceeds-limit", func(t *testing.T) {
		s := newStore(t, newClock().Now)
		cs, err := s.Create(ctx, valid())
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok, held := 0, 0
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				claim := fmt.Sprint("c", i)
				_, err := s.Attempt(ctx, cs.ID, claim)
				mu.Lock()
				switch {
				case err == nil:
					ok++
					held++
					if held > 1 {
						t.Error("two submissions hold the claim at once")
					}
				case errors.Is(err, ErrTooManyAttempts), errors.Is(err, ErrBusy):
				default:
					t.Error(err)
				}
				mu.Unlock()
				if err == nil {
					mu.Lock()
					held--
					mu.Unlock()
					if err := s.Release(ctx, cs.ID, claim); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		got, _ := s.Get(ctx, cs.ID)
		if ok > DefaultMaxAttempts || got.Attempts != ok {
			t.Fatalf("ok=%d attempts=%d, want at most %d and equal", ok, got.Attempts, DefaultMaxAttempts)
		}
	})

	t.Run("expiry/expired-then-gone-after-grace", func(t *testing.T) {
		c := newClock()
		s := newStore(t, c.Now)
		in := valid()
		in.ExpiresAt = c.Now().Add(10 * time.Minute)
		cs, err := s.Create(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		c.Advance(10*time.Minute - time.Second)
		if _, err := s.Attempt(ctx, cs.ID, "c"); err != nil {
			t.Fatalf("just before expiry: %v", err)
		}
		c.Advance(time.Second)
		got, err := s.Get(ctx, cs.ID)
		if !errors.Is(err, ErrExpired) || got.ID != cs.ID || got.ReturnURL == "" {
			t.Fatalf("410/get: %v (session %q must come back for the way out)", err, got.ID)
		}
		if got, err := s.Attempt(ctx, cs.ID, "c"); !errors.Is(err, ErrExpired) || got.Attempts != 1 {
			t.Fatalf("410/attempt: attempts=%d err=%v", got.Attempts, err)
		}
		if err := s.Complete(ctx, cs.ID, "tok_late"); !errors.Is(err, ErrExpired) {
			t.Fatalf("410/complete: %v", err)
		}
		c.Advance(DefaultGrace)
		if _, err := s.Get(ctx, cs.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("404/after-grace: %v", err)
		}
		if _, err := s.Attempt(ctx, cs.ID, "c"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("404/attempt-after-grace: %v", err)
		}
		if err := s.Complete(ctx, cs.ID, "tok_late"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("404/complete-after-grace: %v", err)
		}
	})

	t.Run("complete/once", func(t *testing.T) {
		s := newStore(t, newClock().Now)
		cs, err := s.Create(ctx, valid())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Attempt(ctx, cs.ID, "c"); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, cs.ID, ""); !errors.Is(err, ErrInvalid) {
			t.Fatalf("400/empty-token: %v", err)
		}
		if err := s.Complete(ctx, cs.ID, "tok_first"); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, cs.ID)
		if err != nil || got.Token != "tok_first" || !got.Completed() {
			t.Fatalf("after complete: %q %v", got.Token, err)
		}
		if err := s.Complete(ctx, cs.ID, "tok_first"); err != nil {
			t.Fatalf("retried complete with the same token: %v", err)
		}
		if err := s.Complete(ctx, cs.ID, "tok_second"); !errors.Is(err, ErrCompleted) {
			t.Fatalf("409/other-token: %v", err)
		}
		if got, err := s.Attempt(ctx, cs.ID, "c"); !errors.Is(err, ErrCompleted) || got.Token != "tok_first" {
			t.Fatalf("409/attempt-after-complete: %v", err)
		}
	})
	t.Run("attempt/claim", func(t *testing.T) {
		c := newClock()
		s := newStore(t, c.Now)
		cs, err := s.Create(ctx, valid())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Attempt(ctx, cs.ID, ""); !errors.Is(err, ErrInvalid) {
			t.Fatalf("400/empty-claim: %v", err)
		}
		if got, err := s.Attempt(ctx, cs.ID, "a"); err != nil || got.Attempts != 1 {
			t.Fatalf("first claim: attempts=%d err=%v", got.Attempts, err)
		}
		for _, claim := range []string{"b", "a"} {
			if got, err := s.Attempt(ctx, cs.ID, claim); !errors.Is(err, ErrBusy) || got.Attempts != 1 {
				t.Fatalf("409/busy %q: attempts=%d err=%v", claim, got.Attempts, err)
			}
		}
		if err := s.Release(ctx, cs.ID, "b"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Attempt(ctx, cs.ID, "b"); !errors.Is(err, ErrBusy) {
			t.Fatalf("a stranger's release freed the claim: %v", err)
		}
		if err := s.Release(ctx, cs.ID, "a"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Attempt(ctx, cs.ID, "b"); err != nil || got.Attempts != 2 {
			t.Fatalf("after release: attempts=%d err=%v", got.Attempts, err)
		}
		// A crashed submission never releases: its claim lapses.
		c.Advance(DefaultClaimTTL)
		if got, err := s.Attempt(ctx, cs.ID, "c"); err != nil || got.Attempts != 3 {
			t.Fatalf("after claim ttl: attempts=%d err=%v", got.Attempts, err)
		}
		if err := s.Complete(ctx, cs.ID, "tok_c"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Attempt(ctx, cs.ID, "d"); !errors.Is(err, ErrCompleted) || got.Token != "tok_c" {
			t.Fatalf("409/completed: %v", err)
		}
	})
}
