package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindgate/blindgate/internal/jose/compact"
)

// fakeJWE returns a distinct compact-JWE-shaped string. The store treats the
// ciphertext as opaque, so its content does not matter, only that it is kept.
func fakeJWE(tag string) string {
	return "eyJhbGciOiJFQ0RILUVTK0EyNTZLVyIsImVuYyI6IkEyNTZHQ00ifQ.ZW5jcnlwdGVkLWtleQ.aXYtaXYtaXY." +
		strings.ReplaceAll(tag, " ", "_") + ".dGFn"
}

// sample builds a valid token for merchant m; i varies the masked fields.
func sample(m string, i int) Token {
	brands := []string{"visa", "mastercard", "amex"}
	return Token{
		MerchantID:  m,
		SessionID:   fmt.Sprintf("cs_session%d", i),
		JWE:         fakeJWE(fmt.Sprintf("card%d", i)),
		Kid:         "kek-1",
		Brand:       brands[i%len(brands)],
		BIN:         fmt.Sprintf("4242%04d", i%10000),
		Last4:       fmt.Sprintf("%04d", (1000+i)%10000),
		ExpMonth:    1 + i%12,
		ExpYear:     2030,
		Fingerprint: fmt.Sprintf("fp_%d", i),
		Binding:     fmt.Sprintf("bnd_card%d", i),
	}
}

func mustPut(t *testing.T, s Store, tok Token) Token {
	t.Helper()
	got, created, err := s.Put(context.Background(), tok, "", 0, "")
	if err != nil || !created {
		t.Fatalf("Put: created=%v err=%v", created, err)
	}
	return got
}

func ids(ts []Token) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

// runStoreContract is the behaviour every Store must have. newStore returns an
// empty store of its own for each subtest.
func runStoreContract(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	const alice, bob = "m_alice", "m_bob"

	t.Run("put/created-with-id-and-time", func(t *testing.T) {
		s := newStore(t)
		before := time.Now().Add(-time.Second)
		got := mustPut(t, s, sample(alice, 1))
		if !ValidID(got.ID) || got.CreatedAt.Before(before) {
			t.Fatalf("id %q created %v", got.ID, got.CreatedAt)
		}
		back, err := s.Get(ctx, alice, got.ID)
		if err != nil {
			t.Fatal(err)
		}
		if back.JWE != got.JWE || back.Kid != got.Kid || back.BIN != got.BIN || back.Last4 != got.Last4 ||
			back.ExpMonth != got.ExpMonth || back.ExpYear != got.ExpYear || back.Fingerprint != got.Fingerprint ||
			back.SessionID != got.SessionID || back.Brand != got.Brand || !back.CreatedAt.Equal(got.CreatedAt) ||
			back.Binding == "" || back.Binding != got.Binding {
			t.Fatalf("round trip: put %v, got %v", got, back)
		}
	})

	t.Run("put/idempotent-replay-returns-first", func(t *testing.T) {
		s := newStore(t)
		first, created, err := s.Put(ctx, sample(alice, 1), fakeJWE("cvc1"), time.Minute, "order-42")
		if err != nil || !created {
			t.Fatalf("first put: %v %v", created, err)
		}
		// A browser retry re-encrypts, so the replay carries a different JWE.
		again, created, err := s.Put(ctx, sample(alice, 2), fakeJWE("cvc2"), time.Minute, "order-42")
		if err != nil || created {
			t.Fatalf("replay: created=%v err=%v", created, err)
		}
		if again.ID != first.ID || again.JWE != first.JWE {
			t.Fatalf("replay returned %s, want first token %s", again.ID, first.ID)
		}
		page, _, err := s.List(ctx, alice, "", 10)
		if err != nil || len(page) != 1 {
			t.Fatalf("replay stored a second token: %d %v", len(page), err)
		}
		if cvc, err := s.TakeCVC(ctx, first.ID); err != nil || cvc != fakeJWE("cvc1") {
			t.Fatalf("replay must not replace the cvc: %v", err)
		}
		// A retry that repeats the first token's id as well.
		same := sample(alice, 3)
		same.ID = first.ID
		if got, created, err := s.Put(ctx, same, "", 0, "order-42"); err != nil || created || got.ID != first.ID {
			t.Fatalf("replay with the same id: %v %v", created, err)
		}
		if got, err := s.Lookup(ctx, first.ID); err != nil || got.JWE != first.JWE {
			t.Fatalf("lookup after replay with the same id: %v", err)
		}
		// Idempotency keys are per merchant.
		if _, created, err := s.Put(ctx, sample(bob, 1), "", 0, "order-42"); err != nil || !created {
			t.Fatalf("other merchant, same key: created=%v err=%v", created, err)
		}
	})

	t.Run("put/idempotent-concurrent-one-winner", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		var mu sync.Mutex
		seen := map[string]int{}
		createdN := 0
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, created, err := s.Put(ctx, sample(alice, i), "", 0, "same-key")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[got.ID]++
				if created {
					createdN++
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		if len(seen) != 1 || createdN != 1 {
			t.Fatalf("want one token created once, got ids=%v created=%d", seen, createdN)
		}
	})

	t.Run("put/invalid-stores-nothing", func(t *testing.T) {
		s := newStore(t)
		bad := map[string]func(*Token) (cvc string, ttl time.Duration){
			"400/empty-jwe":       func(x *Token) (string, time.Duration) { x.JWE = ""; return "", 0 },
			"400/not-compact-jwe": func(x *Token) (string, time.Duration) { x.JWE = "a.b.c"; return "", 0 },
			"400/huge-jwe": func(x *Token) (string, time.Duration) {
				x.JWE = fakeJWE(strings.Repeat("A", compact.MaxSize))
				return "", 0
			},
			"400/no-kid":          func(x *Token) (string, time.Duration) { x.Kid = ""; return "", 0 },
			"400/no-merchant":     func(x *Token) (string, time.Duration) { x.MerchantID = ""; return "", 0 },
			"400/merchant-braces": func(x *Token) (string, time.Duration) { x.MerchantID = "m_{x}"; return "", 0 },
			"400/bad-id":          func(x *Token) (string, time.Duration) { x.ID = "tok_NOPE"; return "", 0 },
			"400/last4-not-4":     func(x *Token) (string, time.Duration) { x.Last4 = "123"; return "", 0 },
			"400/bin-9-digits":    func(x *Token) (string, time.Duration) { x.BIN = "424242424"; return "", 0 },
			"400/month-13":        func(x *Token) (string, time.Duration) { x.ExpMonth = 13; return "", 0 },
			"400/cvc-without-ttl": func(x *Token) (string, time.Duration) { return fakeJWE("cvc"), 0 },
			"400/cvc-ttl-too-long": func(x *Token) (string, time.Duration) {
				return fakeJWE("cvc"), MaxCVCTTL + time.Second
			},
			"400/cvc-not-jwe": func(x *Token) (string, time.Duration) { return "123", time.Minute },
		}
		for name, mutate := range bad {
			tok := sample(alice, 1)
			cvc, ttl := mutate(&tok)
			if _, _, err := s.Put(ctx, tok, cvc, ttl, "k-"+name); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: err = %v, want ErrInvalid", name, err)
			}
		}
		page, _, err := s.List(ctx, alice, "", 100)
		if err != nil || len(page) != 0 {
			t.Fatalf("invalid puts left %d tokens (%v)", len(page), err)
		}
		found, err := s.Search(ctx, Query{})
		if err != nil || len(found) != 0 {
			t.Fatalf("invalid puts left %d tokens in search (%v)", len(found), err)
		}
	})

	t.Run("put/caller-chosen-id-taken-is-conflict", func(t *testing.T) {
		s := newStore(t)
		tok := mustPut(t, s, sample(alice, 1))
		again := sample(alice, 2)
		again.ID = tok.ID
		if _, _, err := s.Put(ctx, again, "", 0, ""); !errors.Is(err, ErrConflict) {
			t.Fatalf("same merchant: %v", err)
		}
		other := sample(bob, 2)
		other.ID = tok.ID
		if _, _, err := s.Put(ctx, other, "", 0, ""); !errors.Is(err, ErrConflict) {
			t.Fatalf("other merchant: %v", err)
		}
		if got, err := s.Lookup(ctx, tok.ID); err != nil || got.MerchantID != alice || got.JWE != tok.JWE {
			t.Fatalf("original token disturbed: %v %v", got, err)
		}
	})

	t.Run("isolation/other-merchant-cannot-see-or-delete", func(t *testing.T) {
		s := newStore(t)
		tok, _, err := s.Put(ctx, sample(alice, 1), fakeJWE("cvc"), time.Minute, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, bob, tok.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("404/get-other-merchant: %v", err)
		}
		if err := s.Delete(ctx, bob, tok.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("404/delete-other-merchant: %v", err)
		}
		page, next, err := s.List(ctx, bob, "", 10)
		if err != nil || len(page) != 0 || next != "" {
			t.Errorf("list other merchant: %v %q %v", ids(page), next, err)
		}
		found, err := s.Search(ctx, Query{MerchantID: bob, TokenID: tok.ID})
		if err != nil || len(found) != 0 {
			t.Errorf("search other merchant by id: %v %v", ids(found), err)
		}
		found, err = s.Search(ctx, Query{MerchantID: bob, Fingerprint: tok.Fingerprint})
		if err != nil || len(found) != 0 {
			t.Errorf("search other merchant by fingerprint: %v %v", ids(found), err)
		}
		if _, err := s.Get(ctx, alice, tok.ID); err != nil {
			t.Fatalf("owner lost the token after the other's delete: %v", err)
		}
		if got, err := s.Lookup(ctx, tok.ID); err != nil || got.MerchantID != alice {
			t.Fatalf("lookup: %v %v", got, err)
		}
		if _, err := s.TakeCVC(ctx, tok.ID); err != nil {
			t.Fatalf("cvc lost after the other's delete: %v", err)
		}
	})

	t.Run("get/malformed-or-unknown-id-is-not-found", func(t *testing.T) {
		s := newStore(t)
		unknown, _ := NewID()
		for _, id := range []string{"", "tok_", "tok_x", "../etc", unknown, "tok_{m_alice}aaaaaaaaaaaaaaaaaa"} {
			if _, err := s.Get(ctx, alice, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(%q) = %v", id, err)
			}
			if _, err := s.Lookup(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Lookup(%q) = %v", id, err)
			}
			if err := s.Delete(ctx, alice, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Delete(%q) = %v", id, err)
			}
			if _, err := s.TakeCVC(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("TakeCVC(%q) = %v", id, err)
			}
		}
	})

	t.Run("delete/removes-record-indexes-and-cvc", func(t *testing.T) {
		s := newStore(t)
		tok, _, err := s.Put(ctx, sample(alice, 1), fakeJWE("cvc"), time.Minute, "idem-1")
		if err != nil {
			t.Fatal(err)
		}
		keep := mustPut(t, s, sample(alice, 2))
		if err := s.Delete(ctx, alice, tok.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, alice, tok.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete: %v", err)
		}
		if _, err := s.Get(ctx, alice, tok.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("get: %v", err)
		}
		if _, err := s.Lookup(ctx, tok.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("lookup: %v", err)
		}
		if _, err := s.TakeCVC(ctx, tok.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("cvc survived delete: %v", err)
		}
		page, _, _ := s.List(ctx, alice, "", 10)
		if len(page) != 1 || page[0].ID != keep.ID {
			t.Errorf("list after delete: %v", ids(page))
		}
		for _, q := range []Query{{Fingerprint: tok.Fingerprint}, {TokenID: tok.ID}, {Last4: tok.Last4}, {}} {
			found, err := s.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range found {
				if f.ID == tok.ID {
					t.Errorf("search %+v still finds the deleted token", q)
				}
			}
		}
		n := 0
		if err := s.ScanByKid(ctx, tok.Kid, func(Token) error { n++; return nil }); err != nil || n != 1 {
			t.Errorf("scan by kid after delete: n=%d err=%v", n, err)
		}
		// The idempotency key went with its token.
		again, created, err := s.Put(ctx, sample(alice, 3), "", 0, "idem-1")
		if err != nil || !created || again.ID == tok.ID {
			t.Errorf("idempotency key outlived its token: created=%v err=%v", created, err)
		}
	})

	t.Run("list/paging-newest-first-stable-cursor", func(t *testing.T) {
		s := newStore(t)
		base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		var all []Token
		for i := range 25 {
			tok := sample(alice, i)
			// Pairs share a timestamp so the id tie-break is exercised.
			tok.CreatedAt = base.Add(time.Duration(i/2) * time.Millisecond)
			all = append(all, mustPut(t, s, tok))
		}
		mustPut(t, s, sample(bob, 99))
		sortTokens(all) // newest first, the order List must follow

		var got []Token
		cursor := ""
		var cursors []string
		for pageNo := 0; ; pageNo++ {
			page, next, err := s.List(ctx, alice, cursor, 10)
			if err != nil {
				t.Fatal(err)
			}
			if want := []int{10, 10, 5}[pageNo]; len(page) != want {
				t.Fatalf("page %d has %d tokens, want %d", pageNo, len(page), want)
			}
			got = append(got, page...)
			if next == "" {
				break
			}
			cursors = append(cursors, next)
			cursor = next
		}
		if strings.Join(ids(got), ",") != strings.Join(ids(all), ",") {
			t.Fatalf("order:\n got  %v\n want %v", ids(got), ids(all))
		}

		// Stable: a newer token and a deleted one do not shift page 2.
		mustPut(t, s, sample(alice, 50))
		if err := s.Delete(ctx, alice, all[10].ID); err != nil {
			t.Fatal(err)
		}
		page2, _, err := s.List(ctx, alice, cursors[0], 10)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(ids(page2), ",") != strings.Join(ids(all[11:21]), ",") {
			t.Fatalf("page 2 after changes:\n got  %v\n want %v", ids(page2), ids(all[11:21]))
		}

		// Limits: 0 means the default, too large is capped.
		if page, _, err := s.List(ctx, alice, "", 0); err != nil || len(page) != DefaultListLimit {
			t.Errorf("default limit: %d %v", len(page), err)
		}
		if _, _, err := s.List(ctx, alice, "not a cursor!", 10); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad cursor: %v", err)
		}
		if page, next, err := s.List(ctx, "m_nobody", "", 10); err != nil || len(page) != 0 || next != "" {
			t.Errorf("empty merchant: %v %q %v", ids(page), next, err)
		}
	})

	t.Run("search/each-field-and-range", func(t *testing.T) {
		s := newStore(t)
		base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		mk := func(m string, i int, day int) Token {
			tok := sample(m, i)
			tok.CreatedAt = base.AddDate(0, 0, day)
			return mustPut(t, s, tok)
		}
		a0 := mk(alice, 0, 0) // visa, bin 42420000, last4 1000, fp_0
		a1 := mk(alice, 1, 1) // mastercard
		a2 := mk(alice, 2, 2) // amex
		a3 := mk(alice, 3, 3) // visa
		b4 := mk(bob, 4, 4)   // mastercard
		dup := sample(bob, 0) // same card as a0 at another merchant
		dup.CreatedAt = base.AddDate(0, 0, 5)
		b0 := mustPut(t, s, dup)

		cases := []struct {
			name string
			q    Query
			want []Token
		}{
			{"all/newest-first", Query{}, []Token{b0, b4, a3, a2, a1, a0}},
			{"merchant", Query{MerchantID: alice}, []Token{a3, a2, a1, a0}},
			{"token-id", Query{TokenID: a2.ID}, []Token{a2}},
			{"token-id/wrong-merchant", Query{TokenID: a2.ID, MerchantID: bob}, nil},
			{"last4", Query{Last4: a1.Last4}, []Token{a1}},
			{"bin/exact", Query{BIN: a3.BIN}, []Token{a3}},
			{"bin/6-digit-prefix", Query{BIN: "424200", MerchantID: alice}, []Token{a3, a2, a1, a0}},
			{"brand", Query{Brand: "visa"}, []Token{b0, a3, a0}},
			{"brand/case-insensitive", Query{Brand: "VISA", MerchantID: alice}, []Token{a3, a0}},
			{"fingerprint/duplicates-across-merchants", Query{Fingerprint: "fp_0"}, []Token{b0, a0}},
			{"fingerprint/one-merchant", Query{Fingerprint: "fp_0", MerchantID: alice}, []Token{a0}},
			{"from-inclusive", Query{From: base.AddDate(0, 0, 3)}, []Token{b0, b4, a3}},
			{"to-exclusive", Query{To: base.AddDate(0, 0, 2)}, []Token{a1, a0}},
			{"range", Query{From: base.AddDate(0, 0, 1), To: base.AddDate(0, 0, 4)}, []Token{a3, a2, a1}},
			{"range/merchant", Query{MerchantID: bob, From: base.AddDate(0, 0, 1), To: base.AddDate(0, 0, 5)}, []Token{b4}},
			{"combined", Query{Brand: "mastercard", From: base.AddDate(0, 0, 1)}, []Token{b4, a1}},
			{"fingerprint+range", Query{Fingerprint: "fp_0", To: base.AddDate(0, 0, 1)}, []Token{a0}},
			{"limit", Query{Limit: 2}, []Token{b0, b4}},
			{"no-match", Query{Last4: "9999"}, nil},
			{"unknown-merchant", Query{MerchantID: "m_nobody"}, nil},
		}
		for _, c := range cases {
			got, err := s.Search(ctx, c.q)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if strings.Join(ids(got), ",") != strings.Join(ids(c.want), ",") {
				t.Errorf("%s:\n got  %v\n want %v", c.name, ids(got), ids(c.want))
			}
		}
		for name, q := range map[string]Query{
			"400/last4-letters":  {Last4: "12a4"},
			"400/bin-too-long":   {BIN: "123456789"},
			"400/token-id-shape": {TokenID: "tok_bad"},
			"400/merchant-shape": {MerchantID: "m {x}"},
			"400/from-after-to":  {From: base.AddDate(0, 0, 2), To: base},
		} {
			if _, err := s.Search(ctx, q); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v", name, err)
			}
		}
	})

	t.Run("cvc/taken-once", func(t *testing.T) {
		s := newStore(t)
		tok, _, err := s.Put(ctx, sample(alice, 1), fakeJWE("cvc"), time.Minute, "")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cvc, err := s.TakeCVC(ctx, tok.ID)
				switch {
				case err == nil && cvc == fakeJWE("cvc"):
					mu.Lock()
					wins++
					mu.Unlock()
				case !errors.Is(err, ErrNotFound):
					t.Errorf("take: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("cvc handed out %d times, want exactly once", wins)
		}
		if _, err := s.TakeCVC(ctx, tok.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after use: %v", err)
		}
		// The token itself stays.
		if _, err := s.Get(ctx, alice, tok.ID); err != nil {
			t.Fatal(err)
		}
		// A token stored without CVC has none.
		plain := mustPut(t, s, sample(alice, 2))
		if _, err := s.TakeCVC(ctx, plain.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("no cvc stored: %v", err)
		}
	})

	t.Run("cvc/expires-after-ttl", func(t *testing.T) {
		t.Parallel() // the only subtest that sleeps
		s := newStore(t)
		tok, _, err := s.Put(ctx, sample(alice, 1), fakeJWE("cvc"), time.Second, "")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1200 * time.Millisecond)
		if _, err := s.TakeCVC(ctx, tok.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("expired cvc: %v", err)
		}
		if _, err := s.Get(ctx, alice, tok.ID); err != nil {
			t.Fatalf("token must outlive its cvc: %v", err)
		}
	})

	t.Run("rewrap/compare-and-set-on-kid", func(t *testing.T) {
		s := newStore(t)
		tok := mustPut(t, s, sample(alice, 1))
		fp := tok.Fingerprint
		if err := s.UpdateCiphertext(ctx, tok.ID, "kek-1", fp, Rewrapped{JWE: fakeJWE("rewrapped"), Kid: "kek-2", Binding: "bnd_rewrapped"}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, alice, tok.ID)
		if err != nil || got.Kid != "kek-2" || got.JWE != fakeJWE("rewrapped") || got.Fingerprint != fp || got.BIN != tok.BIN || got.Binding != "bnd_rewrapped" {
			t.Fatalf("after rewrap: %v %v", got, err)
		}
		// A stale job still thinking kek-1 must not roll it back.
		if err := s.UpdateCiphertext(ctx, tok.ID, "kek-1", fp, Rewrapped{JWE: fakeJWE("stale"), Kid: "kek-1b"}); !errors.Is(err, ErrConflict) {
			t.Fatalf("409/stale-kid: %v", err)
		}
		if got, _ := s.Get(ctx, alice, tok.ID); got.JWE != fakeJWE("rewrapped") || got.Binding != "bnd_rewrapped" {
			t.Fatal("conflicting rewrap changed the ciphertext")
		}
		unknown, _ := NewID()
		if err := s.UpdateCiphertext(ctx, unknown, "kek-1", fp, Rewrapped{JWE: fakeJWE("x"), Kid: "kek-2"}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("404/unknown: %v", err)
		}
		for name, u := range map[string]Rewrapped{
			"empty-jwe": {Kid: "kek-3"}, "empty-kid": {JWE: fakeJWE("y")},
			"bin-7":       {JWE: fakeJWE("y"), Kid: "kek-3", BIN: "4242424"},
			"last4-5":     {JWE: fakeJWE("y"), Kid: "kek-3", Last4: "42424"},
			"fingerprint": {JWE: fakeJWE("y"), Kid: "kek-3", Fingerprint: "fp:x"},
			"binding":     {JWE: fakeJWE("y"), Kid: "kek-3", Binding: "bnd x"},
		} {
			if err := s.UpdateCiphertext(ctx, tok.ID, "kek-2", fp, u); !errors.Is(err, ErrInvalid) {
				t.Fatalf("400/%s: %v", name, err)
			}
		}
	})

	// A binding fits one ciphertext: a rewrap answered without one (a
	// token stored before bindings) leaves none, never the old one.
	t.Run("rewrap/binding-follows-the-ciphertext", func(t *testing.T) {
		s := newStore(t)
		tok := mustPut(t, s, sample(alice, 1))
		if err := s.UpdateCiphertext(ctx, tok.ID, tok.Kid, tok.Fingerprint, Rewrapped{JWE: fakeJWE("moved"), Kid: "kek-2"}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, alice, tok.ID); err != nil || got.Binding != "" {
			t.Fatalf("binding of the old ciphertext kept: %q %v", got.Binding, err)
		}
		if err := s.UpdateCiphertext(ctx, tok.ID, "kek-2", tok.Fingerprint, Rewrapped{JWE: fakeJWE("bound"), Kid: "kek-3", Binding: "bnd_bound"}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, alice, tok.ID); err != nil || got.Binding != "bnd_bound" {
			t.Fatalf("binding: %q %v", got.Binding, err)
		}
	})

	t.Run("rewrap/refreshes-masked-fields-and-fingerprint-index", func(t *testing.T) {
		s := newStore(t)
		tok := mustPut(t, s, sample(alice, 1))
		twin := mustPut(t, s, sample(alice, 1)) // same card: same fingerprint
		u := Rewrapped{JWE: tok.JWE, Kid: tok.Kid, Brand: "visa", BIN: "424242", Last4: "4242", Fingerprint: "fpm_new"}
		if err := s.UpdateCiphertext(ctx, tok.ID, tok.Kid, tok.Fingerprint, u); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, alice, tok.ID)
		if err != nil || got.Kid != tok.Kid || got.BIN != "424242" || got.Last4 != "4242" || got.Fingerprint != "fpm_new" || got.Brand != "visa" {
			t.Fatalf("after refresh: %v %v", got, err)
		}
		for fp, want := range map[string][]string{"fpm_new": {tok.ID}, tok.Fingerprint: {twin.ID}} {
			found, err := s.Search(ctx, Query{MerchantID: alice, Fingerprint: fp})
			if err != nil {
				t.Fatal(err)
			}
			if len(found) != len(want) || found[0].ID != want[0] {
				t.Fatalf("search %s = %v, want %v", fp, found, want)
			}
		}
		// A second job that read the old fingerprint loses the compare-and-set.
		if err := s.UpdateCiphertext(ctx, tok.ID, tok.Kid, tok.Fingerprint, u); !errors.Is(err, ErrConflict) {
			t.Fatalf("409/stale-fingerprint: %v", err)
		}
		n := 0
		if err := s.ScanAll(ctx, func(Token) error { n++; return nil }); err != nil || n != 2 {
			t.Fatalf("scan all: %d %v", n, err)
		}
	})

	t.Run("scan-by-kid/rewrap-all", func(t *testing.T) {
		s := newStore(t)
		want := map[string]bool{}
		for i := range 5 {
			m := alice
			if i%2 == 1 {
				m = bob
			}
			want[mustPut(t, s, sample(m, i)).ID] = true
		}
		other := sample(alice, 9)
		other.Kid = "kek-0"
		mustPut(t, s, other)

		seen := map[string]bool{}
		err := s.ScanByKid(ctx, "kek-1", func(tok Token) error {
			if tok.Kid != "kek-1" || tok.JWE == "" {
				t.Errorf("scan yielded %v", tok)
			}
			seen[tok.ID] = true
			return s.UpdateCiphertext(ctx, tok.ID, tok.Kid, tok.Fingerprint, Rewrapped{JWE: fakeJWE("new-" + tok.ID), Kid: "kek-2"})
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != len(want) {
			t.Fatalf("scanned %d tokens, want %d", len(seen), len(want))
		}
		for id := range want {
			if !seen[id] {
				t.Errorf("missed %s", id)
			}
		}
		n := 0
		_ = s.ScanByKid(ctx, "kek-1", func(Token) error { n++; return nil })
		if n != 0 {
			t.Fatalf("%d tokens still under kek-1", n)
		}
		_ = s.ScanByKid(ctx, "kek-2", func(Token) error { n++; return nil })
		if n != len(want) {
			t.Fatalf("%d tokens under kek-2, want %d", n, len(want))
		}
		stop := errors.New("stop")
		calls := 0
		err = s.ScanByKid(ctx, "kek-2", func(Token) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("fn error must stop the scan: calls=%d err=%v", calls, err)
		}
		if err := s.ScanByKid(ctx, "kek-9", func(Token) error { return stop }); err != nil {
			t.Fatalf("unknown kid: %v", err)
		}
	})

	t.Run("walk/one-order-resumable-from-any-position", func(t *testing.T) {
		s := newStore(t)
		const carol = "m_carol"
		base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		var want []string // in walk order: merchant, then creation
		for _, m := range []string{alice, bob, carol} {
			for i := range 4 {
				tok := sample(m, i)
				id, err := NewID()
				if err != nil {
					t.Fatal(err)
				}
				tok.ID, tok.CreatedAt = id, base.Add(time.Duration(3-i)*time.Second) // put newest first
				mustPut(t, s, tok)
				want = append(want, encodePos(m, orderKey(tok.CreatedAt, tok.ID)))
			}
		}
		// Within a merchant the walk goes by creation: reverse each run of 4.
		for i := 0; i < len(want); i += 4 {
			slices.Reverse(want[i : i+4])
		}
		if n, err := s.Count(ctx); err != nil || n != len(want) {
			t.Fatalf("Count = %d, %v; want %d", n, err, len(want))
		}
		walk := func(after string) (ids, pos []string) {
			t.Helper()
			err := s.Walk(ctx, after, func(tok Token, p string) error {
				if tok.JWE == "" || encodePos(tok.MerchantID, orderKey(tok.CreatedAt, tok.ID)) != p {
					t.Errorf("walk gave %v at %q", tok, p)
				}
				ids, pos = append(ids, tok.ID), append(pos, p)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return ids, pos
		}
		_, pos := walk(WalkStart)
		if !slices.Equal(pos, want) {
			t.Fatalf("walk order\n got %q\nwant %q", pos, want)
		}
		// Resuming after any position yields exactly the rest: nothing twice,
		// nothing skipped.
		for i := range pos {
			if _, rest := walk(pos[i]); !slices.Equal(rest, pos[i+1:]) {
				t.Fatalf("resume after %d: %d tokens, want %d", i, len(rest), len(pos)-i-1)
			}
		}
		// fn may rewrap the token it holds; an error stops the walk.
		stop := errors.New("stop")
		calls := 0
		err := s.Walk(ctx, WalkStart, func(tok Token, _ string) error {
			calls++
			if err := s.UpdateCiphertext(ctx, tok.ID, tok.Kid, tok.Fingerprint, Rewrapped{JWE: fakeJWE("w" + tok.ID), Kid: "kek-2"}); err != nil {
				return err
			}
			if calls == 5 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || calls != 5 {
			t.Fatalf("fn error must stop the walk: calls=%d err=%v", calls, err)
		}
		for _, bad := range []string{"!!", encodePos("m bad", "x"), encodePos(alice, "nope")} {
			if err := s.Walk(ctx, bad, func(Token, string) error { return nil }); !errors.Is(err, ErrInvalid) {
				t.Errorf("position %q: %v, want ErrInvalid", bad, err)
			}
		}
	})

	t.Run("walk/pages-past-a-batch", func(t *testing.T) {
		s := newStore(t)
		const n = 2*walkBatch + 30
		for i := range n {
			mustPut(t, s, sample(alice, i))
		}
		seen := map[string]bool{}
		var last string
		err := s.Walk(ctx, WalkStart, func(tok Token, p string) error {
			if seen[tok.ID] || last != "" && decodedLess(t, p, last) {
				t.Errorf("token %s again or out of order", tok.ID)
			}
			seen[tok.ID], last = true, p
			return nil
		})
		if err != nil || len(seen) != n {
			t.Fatalf("walked %d of %d: %v", len(seen), n, err)
		}
	})

	t.Run("reference/kept-through-rewrap-and-searchable", func(t *testing.T) {
		s := newStore(t)
		withRef := func(m string, i int, ref string, meta map[string]string) Token {
			tok := sample(m, i)
			tok.Reference, tok.Metadata = ref, meta
			tok.CreatedAt = time.Date(2026, 3, 1, i, 0, 0, 0, time.UTC)
			return mustPut(t, s, tok)
		}
		meta := map[string]string{"customer": "c_77", "channel": "web"}
		a0 := withRef(alice, 0, "ORD-1001", meta)
		a1 := withRef(alice, 1, "ORD-1002", nil)
		a2 := withRef(alice, 2, "ord-1001", nil) // the same order paid twice, typed in lower case
		b3 := withRef(bob, 3, "ORD-1001", nil)   // another merchant's order of the same number
		withRef(alice, 4, "", nil)
		got, err := s.Get(ctx, alice, a0.ID)
		if err != nil || got.Reference != "ORD-1001" || !maps.Equal(got.Metadata, meta) {
			t.Fatalf("get: %q %v, %v", got.Reference, got.Metadata, err)
		}
		// A rewrap changes the ciphertext, not the merchant's data.
		if err := s.UpdateCiphertext(ctx, a0.ID, a0.Kid, a0.Fingerprint, Rewrapped{JWE: fakeJWE("rewrapped"), Kid: "kek-2"}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Lookup(ctx, a0.ID); err != nil || got.Kid != "kek-2" || got.Reference != "ORD-1001" || !maps.Equal(got.Metadata, meta) {
			t.Fatalf("after rewrap: %q %v, %v", got.Reference, got.Metadata, err)
		}
		for _, c := range []struct {
			name string
			q    Query
			want []Token
		}{
			{"one-merchant/case-insensitive", Query{MerchantID: alice, Reference: "ORD-1001"}, []Token{a2, a0}},
			{"one-merchant/trimmed-lower-case", Query{MerchantID: alice, Reference: " ord-1002 "}, []Token{a1}},
			{"all-merchants", Query{Reference: "ord-1001"}, []Token{b3, a2, a0}},
			{"whole-reference-not-prefix", Query{MerchantID: alice, Reference: "ORD-100"}, nil},
			{"with-another-field", Query{Reference: "ORD-1001", Brand: "amex"}, []Token{a2}},
		} {
			found, err := s.Search(ctx, c.q)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if strings.Join(ids(found), ",") != strings.Join(ids(c.want), ",") {
				t.Errorf("%s:\n got  %v\n want %v", c.name, ids(found), ids(c.want))
			}
		}
		for name, mutate := range map[string]func(*Token){
			"400/reference-card-number": func(x *Token) { x.Reference = "4242 4242 4242 4242" },
			"400/metadata-card-number":  func(x *Token) { x.Metadata = map[string]string{"note": "4242424242424242"} },
			"400/metadata-bad-key":      func(x *Token) { x.Metadata = map[string]string{"a b": "v"} },
		} {
			tok := sample("m_carol", 9)
			mutate(&tok)
			if _, _, err := s.Put(ctx, tok, "", 0, ""); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v", name, err)
			}
		}
		if page, _, err := s.List(ctx, "m_carol", "", 10); err != nil || len(page) != 0 {
			t.Fatalf("refused puts stored %d tokens (%v)", len(page), err)
		}
		if _, err := s.Search(ctx, Query{Reference: "4242 4242 4242 4242"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("a card-number-shaped reference was searched for: %v", err)
		}
	})

	t.Run("format/never-prints-ciphertext-or-binding", func(t *testing.T) {
		tok := sample(alice, 1)
		secret := tok.JWE
		js, _ := json.Marshal(tok)
		var buf strings.Builder
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "token", tok)
		for name, out := range map[string]string{
			"%v": fmt.Sprintf("%v", tok), "%+v": fmt.Sprintf("%+v", tok), "%#v": fmt.Sprintf("%#v", tok),
			"%s": fmt.Sprintf("%s", tok), "json": string(js), "slog": buf.String(),
		} {
			if strings.Contains(out, "ZW5jcnlwdGVkLWtleQ") || strings.Contains(out, secret) {
				t.Errorf("%s leaks the ciphertext: %s", name, out)
			}
			if strings.Contains(out, tok.Binding) {
				t.Errorf("%s leaks the merchant binding: %s", name, out)
			}
		}
	})
}

// decodedLess compares two walk positions in walk order.
func decodedLess(t *testing.T, a, b string) bool {
	t.Helper()
	am, ak, err1 := decodeWalkPos(a)
	bm, bk, err2 := decodeWalkPos(b)
	if err1 != nil || err2 != nil {
		t.Fatalf("positions %q %q: %v %v", a, b, err1, err2)
	}
	return am < bm || am == bm && ak <= bk
}
