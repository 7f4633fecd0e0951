package tokens

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestRedisSearchIndex runs the index contract on real Redis, each subtest
// under a key prefix of its own on a database leased to this test.
func TestRedisSearchIndex(t *testing.T) {
	t.Parallel()
	rdb, prefix := isolatedRedis(t)
	var n atomic.Int64
	runIndexContract(t, func(t *testing.T, opts ...Option) Store {
		return NewRedis(rdb, fmt.Sprintf("%s-ix-%d", prefix, n.Add(1)), opts...)
	})
}

// TestBoltSearchIndex runs the index contract on bbolt.
func TestBoltSearchIndex(t *testing.T) {
	t.Parallel()
	runIndexContract(t, func(t *testing.T, opts ...Option) Store { return newBoltStore(t, opts...) })
}

// withSearchTuning makes a Redis search go on in script calls of budget
// entries and ask for intersections from short lists, so that a few tokens
// exercise what millions do.
func withSearchTuning(budget, interMin, interMax int) Option {
	return func(o *options) { o.tune = searchTuning{budget: budget, interMin: interMin, interMax: interMax} }
}

// indexedStore is a fresh store for the index contract; opts reach the
// store's constructor.
type indexedStore func(t *testing.T, opts ...Option) Store

// dumpIndex lists every search index entry of s as "merchant|field|value|order
// key", sorted.
func dumpIndex(t *testing.T, s Store) (entries []string) {
	t.Helper()
	ctx := context.Background()
	switch st := s.(type) {
	case *Redis:
		var cur uint64
		for {
			keys, next, err := st.rdb.Scan(ctx, cur, st.prefix+":{*}:ix:*", 500).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				rest := strings.TrimPrefix(k, st.prefix+":{")
				m, rest, _ := strings.Cut(rest, "}:ix:")
				if rest == "ready" || rest == "co" {
					continue
				}
				members, err := st.rdb.ZRange(ctx, k, 0, -1).Result()
				if err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				for _, mem := range members {
					f, v, _ := strings.Cut(rest, ":")
					entries = append(entries, m+"|"+f+"|"+v+"|"+mem)
				}
			}
			if next == 0 {
				break
			}
			cur = next
		}
	case *Bolt:
		_ = st.st.DB().View(func(tx *bolt.Tx) error {
			return tx.Bucket(bIndex).ForEach(func(k, _ []byte) error {
				p := bytes.Split(k, []byte{0})
				entries = append(entries, string(p[1])+"|"+string(p[0])+"|"+string(p[2])+"|"+string(p[3]))
				return nil
			})
		})
	default:
		t.Fatalf("no index dump for %T", s)
	}
	slices.Sort(entries)
	return entries
}

// wantIndex is what the index must hold for the tokens stored in s.
func wantIndex(t *testing.T, s Store) (entries []string) {
	t.Helper()
	err := s.Walk(context.Background(), WalkStart, func(tok Token, _ string) error {
		for _, e := range indexEntries(tok) {
			entries = append(entries, tok.MerchantID+"|"+e.field+"|"+e.value+"|"+orderKey(tok.CreatedAt, tok.ID))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(entries)
	return entries
}

// checkIndex fails unless the index lists exactly the stored tokens, and
// (Redis) the combos hold every pair a stored token has.
func checkIndex(t *testing.T, s Store, when string) {
	t.Helper()
	if got, want := dumpIndex(t, s), wantIndex(t, s); !slices.Equal(got, want) {
		t.Fatalf("%s: index\n got  %q\n want %q", when, got, want)
	}
	r, ok := s.(*Redis)
	if !ok {
		return
	}
	for _, tok := range storedTokens(t, s) {
		for _, c := range combos(tok) {
			if in, err := r.rdb.SIsMember(context.Background(), r.combosKey(tok.MerchantID), c).Result(); err != nil || !in {
				t.Fatalf("%s: combo %q of %s missing (%v)", when, c, tok.ID, err)
			}
		}
	}
}

// forgetIndex makes s look like a store written before the index: tokens,
// no lists, no marks.
func forgetIndex(t *testing.T, s Store) {
	t.Helper()
	ctx := context.Background()
	switch st := s.(type) {
	case *Redis:
		keys, err := st.rdb.Keys(ctx, st.prefix+":{*}:ix:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) > 0 {
			if err := st.rdb.Del(ctx, keys...).Err(); err != nil {
				t.Fatal(err)
			}
		}
	case *Bolt:
		err := st.st.DB().Update(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{bIndex, bReady} {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
				if _, err := tx.CreateBucket(name); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("cannot forget the index of %T", s)
	}
}

// reference is the search as a full scan: every stored token through
// Query.match, newest first.
func reference(t *testing.T, all []Token, q Query) []string {
	t.Helper()
	nq, err := normQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	var out []Token
	for _, tok := range all {
		if nq.match(tok) {
			out = append(out, tok)
		}
	}
	return ids(newestFirst(out, nq.Limit))
}

func storedTokens(t *testing.T, s Store) []Token {
	t.Helper()
	var all []Token
	if err := s.Walk(context.Background(), WalkStart, func(tok Token, _ string) error {
		all = append(all, tok)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return all
}

// scaleSample is a token for the search tests: brand follows the BIN's
// first digit, as it does for real cards.
func scaleSample(m string, bin, last4 string, created time.Time) Token {
	tok := sample(m, 0)
	tok.BIN, tok.Last4, tok.CreatedAt = bin, last4, created
	tok.Fingerprint = "fp_" + bin + last4
	switch bin[0] {
	case '4':
		tok.Brand = "visa"
	case '5':
		tok.Brand = "mastercard"
	case '3':
		tok.Brand = "amex"
	default:
		tok.Brand = ""
	}
	return tok
}

// randomStore fills s with tokens of three merchants whose fields collide
// often, BINs of 6 and 8 digits sharing prefixes of every length.
func randomStore(t *testing.T, s Store, rng *rand.Rand) {
	t.Helper()
	base := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	bins := []string{"424242", "42424242", "42424299", "400000", "555555", "55555501", "378282", "601100", "4000", "5"}
	last4s := []string{"4242", "1111", "0005", "9999"}
	for _, m := range []string{"m_alice", "m_bob", "m_carol"} {
		for range 60 {
			bin := bins[rng.IntN(len(bins))]
			switch len(bin) {
			case 4:
				bin += fmt.Sprintf("%02d", rng.IntN(100)) // 400000-400099: many b6 values under "4"
			case 1:
				bin += fmt.Sprintf("%07d", rng.IntN(10000000))
			}
			// Whole seconds on a few days: equal times happen, the id breaks ties.
			created := base.Add(time.Duration(rng.IntN(5*24)) * time.Hour).Add(time.Duration(rng.IntN(3)) * time.Second)
			mustPut(t, s, scaleSample(m, bin, last4s[rng.IntN(len(last4s))], created))
		}
	}
	for i := range 80 {
		mustPut(t, s, scaleSample("m_alice", fmt.Sprintf("47%04d", i), "7777", base.Add(time.Duration(i)*time.Minute)))
	}
}

// randomQueries are searches over randomStore's values, alone and combined,
// scoped and not, with dates and limits.
func randomQueries(rng *rand.Rand, n int) []Query {
	base := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	var out []Query
	for range n {
		var q Query
		if rng.IntN(3) > 0 {
			q.MerchantID = pick("m_alice", "m_bob", "m_carol", "m_nobody")
		}
		if rng.IntN(2) == 0 {
			q.Last4 = pick("4242", "1111", "0005", "9999", "7777", "3333")
		}
		if rng.IntN(2) == 0 {
			q.BIN = pick("4", "42", "424", "4242", "42424", "424242", "4242424", "4242429", "42424242", "42424299", "5", "55555501",
				"555555", "5555550", "4000", "40000", "400001", "47", "470", "4700", "47000", "470001", "3782", "6", "601100", "9", "55")
		}
		if rng.IntN(3) == 0 {
			q.Brand = pick("visa", "VISA", "mastercard", "amex", "discover")
		}
		if rng.IntN(3) == 0 {
			q.From = base.Add(time.Duration(rng.IntN(4*24)) * time.Hour)
		}
		if rng.IntN(3) == 0 {
			q.To = base.Add(time.Duration(24+rng.IntN(5*24)) * time.Hour)
			if !q.From.IsZero() && !q.From.Before(q.To) {
				q.To = time.Time{}
			}
		}
		q.Limit = []int{0, 1, 3, 7, 10, 20, 500}[rng.IntN(7)]
		out = append(out, q)
	}
	return out
}

// checkSearches compares the store's answers with a full scan.
func checkSearches(t *testing.T, s Store, qs []Query, when string) {
	t.Helper()
	all := storedTokens(t, s)
	for _, q := range qs {
		got, err := s.Search(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: search %+v: %v", when, q, err)
		}
		if want := reference(t, all, q); !slices.Equal(ids(got), want) {
			t.Fatalf("%s: search %+v\n got  %v\n want %v", when, q, ids(got), want)
		}
	}
}

// runIndexContract is the search index's behaviour, the same for every
// store: the index follows every write, a search through it answers what a
// full scan answers, and a store written before the index answers the same
// while Reindex builds it.
func runIndexContract(t *testing.T, newStore indexedStore) {
	ctx := context.Background()
	const alice, bob, carol = "m_alice", "m_bob", "m_carol"

	t.Run("index/follows-put-delete-rewrap", func(t *testing.T) {
		s := newStore(t)
		checkIndex(t, s, "empty")
		var toks []Token
		for i := range 12 {
			tok := sample([]string{alice, bob}[i%2], i)
			if i%4 == 0 {
				tok.BIN = tok.BIN[:6]
			}
			if i%5 == 0 {
				tok.Brand = ""
			}
			toks = append(toks, mustPut(t, s, tok))
		}
		checkIndex(t, s, "after puts")

		// A replay, a taken id and an invalid token add nothing.
		first, _, err := s.Put(ctx, sample(alice, 40), "", 0, "idem")
		if err != nil {
			t.Fatal(err)
		}
		if _, created, err := s.Put(ctx, sample(alice, 41), "", 0, "idem"); err != nil || created {
			t.Fatalf("replay: %v %v", created, err)
		}
		taken := sample(bob, 42)
		taken.ID = first.ID
		if _, _, err := s.Put(ctx, taken, "", 0, ""); !errors.Is(err, ErrConflict) {
			t.Fatalf("taken id: %v", err)
		}
		bad := sample(alice, 43)
		bad.Last4 = "12"
		if _, _, err := s.Put(ctx, bad, "", 0, ""); !errors.Is(err, ErrInvalid) {
			t.Fatalf("invalid: %v", err)
		}
		checkIndex(t, s, "after replay, conflict, invalid")

		for _, tok := range toks[:3] {
			if err := s.Delete(ctx, tok.MerchantID, tok.ID); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Delete(ctx, bob, toks[4].ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("other merchant's delete: %v", err)
		}
		checkIndex(t, s, "after deletes")

		// A new ciphertext and kid alone leave the lists as they are.
		before := dumpIndex(t, s)
		k := toks[4]
		if err := s.UpdateCiphertext(ctx, k.ID, k.Kid, k.Fingerprint, Rewrapped{JWE: fakeJWE("moved"), Kid: "kek-2"}); err != nil {
			t.Fatal(err)
		}
		if after := dumpIndex(t, s); !slices.Equal(before, after) {
			t.Fatalf("a kid change moved index entries:\n before %q\n after  %q", before, after)
		}
		// Same values given again move nothing either.
		if err := s.UpdateCiphertext(ctx, k.ID, "kek-2", k.Fingerprint, Rewrapped{JWE: fakeJWE("again"), Kid: "kek-3", Last4: k.Last4, BIN: k.BIN, Brand: k.Brand}); err != nil {
			t.Fatal(err)
		}
		if after := dumpIndex(t, s); !slices.Equal(before, after) {
			t.Fatalf("unchanged fields moved index entries:\n before %q\n after  %q", before, after)
		}
		// Masked fields that change move the token between lists: last 4,
		// a BIN of another b6 (8 to 6 digits), a BIN of the same b6, a
		// brand where there was none.
		for i, u := range []Rewrapped{
			{Last4: "4321"},
			{BIN: "511111"},
			{BIN: "51111122"},
			{Brand: "Discover", BIN: "60110000"},
		} {
			tok, err := s.Lookup(ctx, toks[5+i].ID)
			if err != nil {
				t.Fatal(err)
			}
			u.JWE, u.Kid = fakeJWE(fmt.Sprint("r", i)), tok.Kid
			if err := s.UpdateCiphertext(ctx, tok.ID, tok.Kid, tok.Fingerprint, u); err != nil {
				t.Fatal(err)
			}
			checkIndex(t, s, fmt.Sprintf("after rewrap %d", i))
		}
		for _, q := range []Query{{Brand: "discover"}, {Brand: "discover", BIN: "6011"}, {Brand: "discover", BIN: "60110000"}} {
			found, err := s.Search(ctx, q)
			if err != nil || len(found) != 1 || found[0].ID != toks[8].ID {
				t.Fatalf("search %+v by the new brand: %v %v", q, ids(found), err)
			}
		}
		if found, err := s.Search(ctx, Query{MerchantID: toks[5].MerchantID, Last4: toks[5].Last4}); err != nil || slices.Contains(ids(found), toks[5].ID) {
			t.Fatalf("the old last 4 still finds the token: %v %v", ids(found), err)
		}

		for _, tok := range storedTokens(t, s) {
			if err := s.Delete(ctx, tok.MerchantID, tok.ID); err != nil {
				t.Fatal(err)
			}
		}
		if got := dumpIndex(t, s); len(got) != 0 {
			t.Fatalf("index entries left with no token: %q", got)
		}
	})

	t.Run("search/deleted-newer-does-not-hide-older", func(t *testing.T) {
		s := newStore(t)
		base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
		older := mustPut(t, s, scaleSample(alice, "42424242", "4242", base))
		newer := mustPut(t, s, scaleSample(alice, "42424242", "4242", base.Add(time.Hour)))
		if err := s.Delete(ctx, alice, newer.ID); err != nil {
			t.Fatal(err)
		}
		for _, q := range []Query{{Last4: "4242"}, {BIN: "424242"}, {BIN: "42424242"}, {BIN: "42"}, {Brand: "visa"}, {Last4: "4242", Brand: "visa"}} {
			q.Limit = 1
			for _, m := range []string{"", alice} {
				q.MerchantID = m
				got, err := s.Search(ctx, q)
				if err != nil || len(got) != 1 || got[0].ID != older.ID {
					t.Fatalf("search %+v: %v %v, want the older token", q, ids(got), err)
				}
			}
		}
	})

	t.Run("search/merchant-scope-holds-through-the-index", func(t *testing.T) {
		s := newStore(t)
		base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
		a := mustPut(t, s, scaleSample(alice, "42424242", "4242", base))
		for i := range 5 {
			// bob's are newer and share every field.
			mustPut(t, s, scaleSample(bob, "42424242", "4242", base.Add(time.Duration(i+1)*time.Hour)))
		}
		for _, q := range []Query{
			{}, {Last4: "4242"}, {BIN: "42424242"}, {BIN: "424242"}, {BIN: "4242424"}, {BIN: "42"},
			{Brand: "visa"}, {Last4: "4242", BIN: "424242", Brand: "visa", From: base},
		} {
			q.MerchantID, q.Limit = alice, 3
			got, err := s.Search(ctx, q)
			if err != nil || len(got) != 1 || got[0].ID != a.ID {
				t.Fatalf("alice's search %+v: %v %v", q, ids(got), err)
			}
			q.MerchantID = carol
			if got, err := s.Search(ctx, q); err != nil || len(got) != 0 {
				t.Fatalf("carol's search %+v: %v %v", q, ids(got), err)
			}
		}
	})

	t.Run("search/matches-a-full-scan", func(t *testing.T) {
		for i, tune := range []searchTuning{
			defaultSearchTuning,
			{budget: 5, interMin: 1000, interMax: 0}, // several script calls per search, no ZINTER
			{budget: 5, interMin: 3, interMax: 12},   // ZINTERCARD for most intersections, ZINTER for small ones
			{budget: 3, interMin: 0, interMax: 1000}, // ZINTER for every intersection
		} {
			rng := rand.New(rand.NewPCG(16, uint64(i)))
			s := newStore(t, withSearchTuning(tune.budget, tune.interMin, tune.interMax))
			randomStore(t, s, rng)
			checkIndex(t, s, "random store")
			checkSearches(t, s, randomQueries(rng, 300), fmt.Sprintf("indexed, %+v", tune))
			if _, ok := s.(*Bolt); ok {
				break // no tuning there
			}
		}
	})

	t.Run("reindex/falls-back-then-builds", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(16, 2))
		s := newStore(t, withSearchTuning(7, 2, 5))
		randomStore(t, s, rng)
		forgetIndex(t, s)
		qs := randomQueries(rng, 150)
		if st, err := s.IndexStatus(ctx, ""); err != nil || st != (IndexStatus{Merchants: 3, Building: 3}) || st.Ready() {
			t.Fatalf("status of a store written before the index: %+v %v", st, err)
		}
		if st, err := s.IndexStatus(ctx, bob); err != nil || st != (IndexStatus{Merchants: 1, Building: 1}) {
			t.Fatalf("bob's status: %+v %v", st, err)
		}
		checkSearches(t, s, qs, "before reindex")
		// A token written now is listed, but its merchant's older ones
		// are not: the merchant stays building and searches stay whole.
		mustPut(t, s, scaleSample(bob, "42424242", "4242", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)))
		if st, _ := s.IndexStatus(ctx, bob); st.Building != 1 {
			t.Fatalf("bob marked complete by a new token: %+v", st)
		}
		checkSearches(t, s, qs, "before reindex, with a new token")
		// A new merchant's first token starts a complete index.
		mustPut(t, s, scaleSample("m_dave", "42424242", "4242", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)))
		if st, err := s.IndexStatus(ctx, ""); err != nil || st != (IndexStatus{Merchants: 4, Building: 3}) {
			t.Fatalf("status with a new merchant: %+v %v", st, err)
		}

		p, err := Reindex(ctx, s, ReindexOptions{})
		if err != nil || !p.Done() || p.Resumed {
			t.Fatalf("reindex: %+v %v", p, err)
		}
		n, _ := s.Count(ctx)
		if p.Seen != n || p.Listed != n || p.Skipped != 0 || p.Merchants != 4 || p.Total != n {
			t.Fatalf("reindex counts %+v, want %d tokens of 4 merchants", p, n)
		}
		if st, err := s.IndexStatus(ctx, ""); err != nil || !st.Ready() || st.Merchants != 4 {
			t.Fatalf("status after reindex: %+v %v", st, err)
		}
		checkIndex(t, s, "after reindex")
		checkSearches(t, s, qs, "after reindex")
		// Again: nothing changes, and a finished pass starts over.
		p, err = Reindex(ctx, s, ReindexOptions{})
		if err != nil || p.Resumed || p.Seen != n {
			t.Fatalf("second reindex: %+v %v", p, err)
		}
		checkIndex(t, s, "after a second reindex")
	})

	t.Run("reindex/resumes-where-it-stopped", func(t *testing.T) {
		s := newStore(t)
		base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
		for i := range 2*reindexBatch + 50 {
			m := []string{alice, bob, carol}[i%3]
			mustPut(t, s, scaleSample(m, fmt.Sprintf("4%07d", i), fmt.Sprintf("%04d", i), base.Add(time.Duration(i)*time.Second)))
		}
		forgetIndex(t, s)
		stop := errors.New("stop")
		cctx, cancel := context.WithCancelCause(ctx)
		batches := 0
		p, err := Reindex(cctx, s, ReindexOptions{Progress: func(ReindexProgress) {
			if batches++; batches == 2 {
				cancel(stop)
			}
		}})
		cancel(nil)
		if err == nil || p.Done() || p.Seen == 0 {
			t.Fatalf("stopped pass: %+v %v", p, err)
		}
		seen := p.Seen
		// alice's tokens all come first in the walk: a stop inside bob's
		// leaves alice marked and bob building.
		if st, _ := s.IndexStatus(ctx, alice); !st.Ready() {
			t.Fatalf("alice, walked through before the stop, is not complete: %+v (seen %d)", st, seen)
		}
		if st, _ := s.IndexStatus(ctx, carol); st.Ready() {
			t.Fatal("carol marked complete before the walk reached her")
		}
		p, err = Reindex(ctx, s, ReindexOptions{})
		if err != nil || !p.Done() || !p.Resumed {
			t.Fatalf("resumed pass: %+v %v", p, err)
		}
		if n, _ := s.Count(ctx); p.Seen != n || p.Listed != n {
			t.Fatalf("resumed pass saw %d (listed %d) of %d (first run %d)", p.Seen, p.Listed, n, seen)
		}
		if st, _ := s.IndexStatus(ctx, ""); !st.Ready() {
			t.Fatalf("status after the resumed pass: %+v", st)
		}
		checkIndex(t, s, "after the resumed pass")
		// Restart starts a new pass over an unfinished one.
		forgetIndex(t, s)
		cctx, cancel = context.WithCancelCause(ctx)
		if _, err := Reindex(cctx, s, ReindexOptions{Progress: func(ReindexProgress) { cancel(stop) }}); err == nil {
			t.Fatal("a cancelled pass finished")
		}
		cancel(nil)
		p, err = Reindex(ctx, s, ReindexOptions{Restart: true})
		if n, _ := s.Count(ctx); err != nil || p.Resumed || !p.Done() || p.Seen != n {
			t.Fatalf("restarted pass: %+v %v", p, err)
		}
		checkIndex(t, s, "after the restarted pass")
	})

	t.Run("reindex/paced", func(t *testing.T) {
		s := newStore(t)
		base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
		for i := range 2*reindexBatch + 50 {
			mustPut(t, s, scaleSample(alice, "42424242", fmt.Sprintf("%04d", i), base.Add(time.Duration(i)*time.Second)))
		}
		forgetIndex(t, s)
		now := base
		var slept time.Duration
		p, err := Reindex(ctx, s, ReindexOptions{
			Rate: 100,
			Now:  func() time.Time { return now },
			Sleep: func(_ context.Context, d time.Duration) error {
				slept += d
				now = now.Add(d)
				return nil
			},
		})
		if err != nil || !p.Done() {
			t.Fatalf("paced pass: %+v %v", p, err)
		}
		// Batches of 100, 100 and 50 at 100 tokens a second: the second
		// waits a second for the first, the third a second for the second.
		if slept != 2*time.Second {
			t.Fatalf("slept %s, want 2s", slept)
		}
	})

	t.Run("reindex/skips-tokens-changed-or-gone", func(t *testing.T) {
		s := newStore(t)
		a := mustPut(t, s, sample(alice, 1))
		b := mustPut(t, s, sample(alice, 2))
		forgetIndex(t, s)
		if err := s.Delete(ctx, alice, b.ID); err != nil {
			t.Fatal(err)
		}
		stale := a
		stale.Last4 = "0000"
		n, err := s.(indexer).indexBatch(ctx, []Token{stale, b})
		if err != nil || n != 0 {
			t.Fatalf("listed %d stale or deleted tokens: %v", n, err)
		}
		if got := dumpIndex(t, s); len(got) != 0 {
			t.Fatalf("entries for stale or deleted tokens: %q", got)
		}
		if n, err := s.(indexer).indexBatch(ctx, []Token{a}); err != nil || n != 1 {
			t.Fatalf("listed %d: %v", n, err)
		}
	})
}
