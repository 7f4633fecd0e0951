package merchants

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

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

// runStoreContract is the behaviour every Store must have. newStore returns an
// empty store that reads time from now.
func runStoreContract(t *testing.T, newStore func(t *testing.T, now func() time.Time) Store) {
	ctx := context.Background()

	t.Run("create/returns-key-once-and-normalises", func(t *testing.T) {
		s := newStore(t, newClock().Now)
		m, key, err := s.Create(ctx, "  Shop Ltd  ", []string{"HTTPS://Shop.example:443", "https://shop.example/"})
		if err != nil {
			t.Fatal(err)
		}
		if !ValidID(m.ID) || m.Name != "Shop Ltd" || !slices.Equal(m.AllowedOrigins, []string{"https://shop.example"}) || m.CreatedAt.IsZero() {
			t.Fatalf("merchant %+v", m)
		}
		if !strings.HasPrefix(key, SecretPrefix) || len(key) != len(SecretPrefix)+secretDigits || hashSecret(key) == nil {
			t.Fatalf("key shape %d chars", len(key))
		}
		got, err := s.Get(ctx, m.ID)
		if err != nil || got.ID != m.ID || got.Name != m.Name || !got.CreatedAt.Equal(m.CreatedAt) || !slices.Equal(got.AllowedOrigins, m.AllowedOrigins) {
			t.Fatalf("get: %+v %v", got, err)
		}
		// The merchant as returned or listed carries no key material.
		js, _ := json.Marshal(got)
		if strings.Contains(string(js), "key") || strings.Contains(string(js), key) {
			t.Fatalf("merchant JSON carries key material: %s", js)
		}
	})

	t.Run("create/invalid", func(t *testing.T) {
		s := newStore(t, newClock().Now)
		for name, c := range map[string]struct {
			name    string
			origins []string
		}{
			"400/empty-name":   {"  ", nil},
			"400/long-name":    {strings.Repeat("x", maxNameLen+1), nil},
			"400/control-name": {"Shop\x00Ltd", nil},
			"400/origin-path":  {"Shop", []string{"https://shop.example/pay"}},
			"400/origin-ftp":   {"Shop", []string{"ftp://shop.example"}},
			"400/origin-http":  {"Shop", []string{"http://shop.example"}},
			"400/pan-name":     {"Shop 4242 4242 4242 4242", nil},
			"400/bidi-name":    {"Shop\u202eLtd", nil},
		} {
			if _, _, err := s.Create(ctx, c.name, c.origins); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v", name, err)
			}
		}
		if ms, err := s.List(ctx); err != nil || len(ms) != 0 {
			t.Fatalf("invalid creates stored %d merchants (%v)", len(ms), err)
		}
	})

	t.Run("authenticate/right-and-wrong-key", func(t *testing.T) {
		s := newStore(t, newClock().Now)
		a, keyA, err := s.Create(ctx, "A", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, keyB, err := s.Create(ctx, "B", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.Authenticate(ctx, keyA); err != nil || got.ID != a.ID {
			t.Fatalf("200/key-a: %v %v", got.ID, err)
		}
		if got, err := s.Authenticate(ctx, keyB); err != nil || got.ID != b.ID {
			t.Fatalf("200/key-b: %v %v", got.ID, err)
		}
		other, _ := newSecret()
		flipped := keyA[:len(keyA)-1] + map[bool]string{true: "1", false: "0"}[keyA[len(keyA)-1] == '0']
		for name, k := range map[string]string{
			"401/empty":        "",
			"401/unknown":      other,
			"401/one-char-off": flipped,
			"401/truncated":    keyA[:len(keyA)-1],
			"401/extra":        keyA + "0",
			"401/no-prefix":    strings.TrimPrefix(keyA, SecretPrefix),
			"401/bearer":       "Bearer " + keyA,
			"401/pk-prefix":    "pk_" + strings.TrimPrefix(keyA, SecretPrefix),
			"401/non-base62":   keyA[:10] + "-" + keyA[11:],
			"401/the-hash":     "sk_" + strings.Repeat("a", secretDigits),
		} {
			if _, err := s.Authenticate(ctx, k); !errors.Is(err, ErrUnauthorized) {
				t.Errorf("%s: %v", name, err)
			}
		}
	})

	t.Run("rotate/grace-then-old-key-stops", func(t *testing.T) {
		c := newClock()
		s := newStore(t, c.Now)
		m, k1, err := s.Create(ctx, "A", nil)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := s.RotateKey(ctx, m.ID, time.Hour)
		if err != nil || k2 == k1 {
			t.Fatal(err)
		}
		for name, k := range map[string]string{"new": k2, "old-in-grace": k1} {
			if got, err := s.Authenticate(ctx, k); err != nil || got.ID != m.ID {
				t.Errorf("%s: %v", name, err)
			}
		}
		c.Advance(time.Hour)
		if _, err := s.Authenticate(ctx, k1); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("401/old-after-grace: %v", err)
		}
		if _, err := s.Authenticate(ctx, k2); err != nil {
			t.Fatal(err)
		}
		// A second rotation ends the first key for good and starts k2's grace.
		k3, err := s.RotateKey(ctx, m.ID, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, k2); err != nil {
			t.Fatalf("k2 in its grace: %v", err)
		}
		if _, err := s.Authenticate(ctx, k1); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("k1 after two rotations: %v", err)
		}
		// Revoke at once.
		k4, err := s.RotateKey(ctx, m.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		for name, k := range map[string]string{"k2": k2, "k3": k3} {
			if _, err := s.Authenticate(ctx, k); !errors.Is(err, ErrUnauthorized) {
				t.Errorf("401/%s-after-revoke: %v", name, err)
			}
		}
		if got, err := s.Authenticate(ctx, k4); err != nil || got.ID != m.ID {
			t.Fatal(err)
		}
		if _, err := s.RotateKey(ctx, m.ID, MaxKeyGrace+time.Second); !errors.Is(err, ErrInvalid) {
			t.Fatalf("400/grace-too-long: %v", err)
		}
		if _, err := s.RotateKey(ctx, m.ID, -time.Second); !errors.Is(err, ErrInvalid) {
			t.Fatalf("400/negative-grace: %v", err)
		}
		if _, err := s.Authenticate(ctx, k4); err != nil {
			t.Fatalf("refused rotations must not change the key: %v", err)
		}
		unknown, _ := NewID()
		if _, err := s.RotateKey(ctx, unknown, 0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("404/rotate-unknown: %v", err)
		}
	})

	t.Run("rotate/concurrent-one-key-wins", func(t *testing.T) {
		s := newStore(t, newClock().Now)
		m, _, err := s.Create(ctx, "A", nil)
		if err != nil {
			t.Fatal(err)
		}
		keys := make([]string, 6)
		var wg sync.WaitGroup
		for i := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k, err := s.RotateKey(ctx, m.ID, 0)
				if err != nil {
					t.Error(err)
				}
				keys[i] = k
			}()
		}
		wg.Wait()
		ok := 0
		for _, k := range keys {
			if _, err := s.Authenticate(ctx, k); err == nil {
				ok++
			}
		}
		if ok != 1 {
			t.Fatalf("%d keys authenticate after concurrent revoking rotations, want 1", ok)
		}
	})

	t.Run("get-list-set-origins", func(t *testing.T) {
		c := newClock()
		s := newStore(t, c.Now)
		var want []string
		for _, n := range []string{"A", "B", "C"} {
			m, _, err := s.Create(ctx, n, nil)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, m.ID)
			c.Advance(time.Second)
		}
		ms, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.ID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("list %v, want %v (oldest first)", got, want)
		}
		m, err := s.SetOrigins(ctx, want[1], []string{"https://b.example", "http://localhost:3000"})
		if err != nil || !slices.Equal(m.AllowedOrigins, []string{"https://b.example", "http://localhost:3000"}) {
			t.Fatalf("set origins: %+v %v", m, err)
		}
		if back, _ := s.Get(ctx, want[1]); !slices.Equal(back.AllowedOrigins, m.AllowedOrigins) || back.Name != "B" {
			t.Fatalf("after set origins: %+v", back)
		}
		if _, err := s.SetOrigins(ctx, want[1], []string{"https://b.example/x"}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("400/bad-origin: %v", err)
		}
		unknown, _ := NewID()
		for _, id := range []string{unknown, "", "m_{x}"} {
			if _, err := s.Get(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(%q): %v", id, err)
			}
			if _, err := s.SetOrigins(ctx, id, nil); !errors.Is(err, ErrNotFound) {
				t.Errorf("SetOrigins(%q): %v", id, err)
			}
		}
	})
}

func TestSecretShape(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		k, err := newSecret()
		if err != nil || hashSecret(k) == nil || seen[k] {
			t.Fatalf("newSecret: %v", err)
		}
		seen[k] = true
	}
	// The largest 256-bit value still fits 43 base62 digits.
	if n := len(new(big.Int).SetBytes([]byte(strings.Repeat("\xff", 32))).Text(62)); n > secretDigits {
		t.Fatalf("2^256-1 needs %d base62 digits", n)
	}
}
