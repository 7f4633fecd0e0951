package idempotency

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/internal/testenv"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }
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

func newBolt(t *testing.T, opts ...Option) *Bolt {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "i.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	s, err := NewBolt(db, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBoltStore(t *testing.T) {
	runContract(t, func(t *testing.T, opts ...Option) Store { return newBolt(t, opts...) })
}

func TestRedisStore(t *testing.T) {
	rdb := testenv.Redis(t)
	var n atomic.Int64
	runContract(t, func(t *testing.T, opts ...Option) Store {
		return NewRedis(rdb, fmt.Sprintf("bgtest-%d", n.Add(1)), opts...)
	})
}

func TestBoltSweep(t *testing.T) {
	c := newClock()
	s := newBolt(t, WithClock(c.Now))
	ctx := context.Background()
	r, err := s.Begin(ctx, "m_a", "k1", "h")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, "m_a", "k1", r.Claim, Answer{Status: 201}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Begin(ctx, "m_a", "k2", "h"); err != nil { // in flight, lease 2 min
		t.Fatal(err)
	}
	c.Advance(DefaultLease)
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("swept %d (%v), want the lapsed claim only", n, err)
	}
	c.Advance(DefaultRetention)
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("swept %d (%v), want the expired answer", n, err)
	}
}

// runContract is the behaviour every Store has.
func runContract(t *testing.T, newStore func(t *testing.T, opts ...Option) Store) {
	ctx := context.Background()
	answer := Answer{Status: 201, ContentType: "application/json", Body: []byte(`{"id":"cs_1"}`)}

	t.Run("ok/complete-then-replay", func(t *testing.T) {
		s := newStore(t)
		r, err := s.Begin(ctx, "m_a", "key-1", "h1")
		if err != nil || r.Claim == "" || r.Answer != nil {
			t.Fatalf("first Begin = %+v, %v", r, err)
		}
		if err := s.Complete(ctx, "m_a", "key-1", r.Claim, answer); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			r, err := s.Begin(ctx, "m_a", "key-1", "h1")
			if err != nil || r.Answer == nil || r.Claim != "" {
				t.Fatalf("replay = %+v, %v", r, err)
			}
			if r.Answer.Status != 201 || r.Answer.ContentType != answer.ContentType || !bytes.Equal(r.Answer.Body, answer.Body) {
				t.Fatalf("replayed %+v", r.Answer)
			}
		}
	})

	t.Run("422/same-key-other-request", func(t *testing.T) {
		s := newStore(t)
		r, _ := s.Begin(ctx, "m_a", "key-1", "h1")
		if _, err := s.Begin(ctx, "m_a", "key-1", "h2"); !errors.Is(err, ErrMismatch) {
			t.Fatalf("in flight, other hash: %v", err)
		}
		if err := s.Complete(ctx, "m_a", "key-1", r.Claim, answer); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Begin(ctx, "m_a", "key-1", "h2"); !errors.Is(err, ErrMismatch) {
			t.Fatalf("completed, other hash: %v", err)
		}
	})

	t.Run("409/in-flight", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Begin(ctx, "m_a", "key-1", "h1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Begin(ctx, "m_a", "key-1", "h1"); !errors.Is(err, ErrInProgress) {
			t.Fatalf("second Begin: %v", err)
		}
	})

	t.Run("ok/scoped-per-merchant", func(t *testing.T) {
		s := newStore(t)
		ra, _ := s.Begin(ctx, "m_a", "key-1", "h1")
		_ = s.Complete(ctx, "m_a", "key-1", ra.Claim, answer)
		rb, err := s.Begin(ctx, "m_b", "key-1", "h2")
		if err != nil || rb.Claim == "" {
			t.Fatalf("another merchant's same key: %+v %v", rb, err)
		}
	})

	t.Run("ok/abandon-frees-the-key", func(t *testing.T) {
		s := newStore(t)
		r, _ := s.Begin(ctx, "m_a", "key-1", "h1")
		if err := s.Abandon(ctx, "m_a", "key-1", r.Claim); err != nil {
			t.Fatal(err)
		}
		// Abandoned: a retry with another body is a new request, not a mismatch.
		r2, err := s.Begin(ctx, "m_a", "key-1", "h2")
		if err != nil || r2.Claim == "" {
			t.Fatalf("after abandon: %+v %v", r2, err)
		}
		if err := s.Abandon(ctx, "m_a", "key-1", r.Claim); err != nil {
			t.Fatalf("stale abandon must be a no-op: %v", err)
		}
		if _, err := s.Begin(ctx, "m_a", "key-1", "h2"); !errors.Is(err, ErrInProgress) {
			t.Fatalf("a stale abandon dropped another claim: %v", err)
		}
	})

	t.Run("lost/wrong-claim", func(t *testing.T) {
		s := newStore(t)
		r, _ := s.Begin(ctx, "m_a", "key-1", "h1")
		if err := s.Complete(ctx, "m_a", "key-1", "not-the-claim", answer); !errors.Is(err, ErrLost) {
			t.Fatalf("complete with another claim: %v", err)
		}
		if err := s.Complete(ctx, "m_a", "key-1", r.Claim, answer); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, "m_a", "key-1", r.Claim, Answer{Status: 500}); !errors.Is(err, ErrLost) {
			t.Fatalf("a second complete overwrote the answer: %v", err)
		}
		if err := s.Complete(ctx, "m_a", "other", r.Claim, answer); !errors.Is(err, ErrLost) {
			t.Fatalf("complete of an unclaimed key: %v", err)
		}
	})

	t.Run("400/invalid-key-or-merchant", func(t *testing.T) {
		s := newStore(t)
		for name, mk := range map[string][2]string{
			"empty-key":      {"m_a", ""},
			"long-key":       {"m_a", strings.Repeat("k", MaxKeyLen+1)},
			"card-number":    {"m_a", "4242-4242-4242-4242"},
			"newline":        {"m_a", "a\nb"},
			"non-ascii":      {"m_a", "clé"},
			"bad-merchant":   {"m:a", "k"},
			"empty-merchant": {"", "k"},
		} {
			if _, err := s.Begin(ctx, mk[0], mk[1], "h"); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%s: %v", name, err)
			}
		}
		if _, err := s.Begin(ctx, "m_a", strings.Repeat("k", MaxKeyLen), "h"); err != nil {
			t.Errorf("a %d-character key: %v", MaxKeyLen, err)
		}
	})

	t.Run("expiry/answer-after-retention", func(t *testing.T) {
		c := newClock()
		s := newStore(t, WithClock(c.Now))
		r, _ := s.Begin(ctx, "m_a", "key-1", "h1")
		_ = s.Complete(ctx, "m_a", "key-1", r.Claim, answer)
		c.Advance(DefaultRetention - time.Second)
		if r, err := s.Begin(ctx, "m_a", "key-1", "h1"); err != nil || r.Answer == nil {
			t.Fatalf("within 24 h: %+v %v", r, err)
		}
		c.Advance(time.Second)
		r2, err := s.Begin(ctx, "m_a", "key-1", "h2")
		if err != nil || r2.Claim == "" {
			t.Fatalf("after 24 h the key is new: %+v %v", r2, err)
		}
	})

	t.Run("expiry/lapsed-lease-can-be-taken-and-old-claim-is-lost", func(t *testing.T) {
		c := newClock()
		s := newStore(t, WithClock(c.Now))
		r, _ := s.Begin(ctx, "m_a", "key-1", "h1")
		c.Advance(DefaultLease)
		r2, err := s.Begin(ctx, "m_a", "key-1", "h1")
		if err != nil || r2.Claim == "" || r2.Claim == r.Claim {
			t.Fatalf("after the lease: %+v %v", r2, err)
		}
		if err := s.Complete(ctx, "m_a", "key-1", r.Claim, answer); !errors.Is(err, ErrLost) {
			t.Fatalf("the lapsed holder completed over the new claim: %v", err)
		}
	})

	t.Run("concurrent/ten-retries-one-runs", func(t *testing.T) {
		s := newStore(t)
		const n = 10
		var (
			wg              sync.WaitGroup
			ran, busy, errs atomic.Int32
			start           = make(chan struct{})
			claims          = make(chan string, n)
		)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r, err := s.Begin(ctx, "m_a", "key-c", "h1")
				switch {
				case err == nil && r.Claim != "":
					ran.Add(1)
					claims <- r.Claim
				case errors.Is(err, ErrInProgress):
					busy.Add(1)
				default:
					errs.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if ran.Load() != 1 || busy.Load() != n-1 || errs.Load() != 0 {
			t.Fatalf("ran %d, in progress %d, errors %d; want exactly one to run", ran.Load(), busy.Load(), errs.Load())
		}
		if err := s.Complete(ctx, "m_a", "key-c", <-claims, answer); err != nil {
			t.Fatal(err)
		}
		var replayed atomic.Int32
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r, err := s.Begin(ctx, "m_a", "key-c", "h1"); err == nil && r.Answer != nil {
					replayed.Add(1)
				}
			}()
		}
		wg.Wait()
		if replayed.Load() != n {
			t.Fatalf("replayed %d of %d", replayed.Load(), n)
		}
	})

	t.Run("413/answer-too-large-not-stored", func(t *testing.T) {
		s := newStore(t)
		r, _ := s.Begin(ctx, "m_a", "key-1", "h1")
		if err := s.Complete(ctx, "m_a", "key-1", r.Claim, Answer{Status: 200, Body: make([]byte, MaxAnswerBytes+1)}); err == nil {
			t.Fatal("stored an oversized answer")
		}
	})
}

func TestRequestHash(t *testing.T) {
	a := RequestHash("POST", "/v1/x", []byte("ab"))
	for name, h := range map[string]string{
		"method": RequestHash("PUT", "/v1/x", []byte("ab")),
		"path":   RequestHash("POST", "/v1/y", []byte("ab")),
		"body":   RequestHash("POST", "/v1/x", []byte("ac")),
		"split":  RequestHash("POST", "/v1/xa", []byte("b")),
	} {
		if h == a {
			t.Errorf("%s: same hash", name)
		}
	}
	if RequestHash("POST", "/v1/x", []byte("ab")) != a {
		t.Error("not deterministic")
	}
}

func TestSealOpen(t *testing.T) {
	a := Answer{Status: 201, ContentType: "application/json", Body: []byte(`{"secret":"whsec_abc"}`)}
	sealed, err := Seal("m_a", "key-1", a)
	if err != nil || bytes.Contains(sealed.Body, []byte("whsec_abc")) {
		t.Fatalf("sealed %q, %v", sealed.Body, err)
	}
	if got, err := Open("m_a", "key-1", sealed); err != nil || !bytes.Equal(got.Body, a.Body) {
		t.Fatalf("open = %q, %v", got.Body, err)
	}
	for name, mk := range map[string][2]string{"other-key": {"m_a", "key-2"}, "other-merchant": {"m_b", "key-1"}} {
		if _, err := Open(mk[0], mk[1], sealed); err == nil {
			t.Errorf("%s opened the answer", name)
		}
	}
}
