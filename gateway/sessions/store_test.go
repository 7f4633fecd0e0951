package sessions

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/internal/ratelimit"
)

func newBolt(t *testing.T, opts ...Option) *Bolt {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), 0o600, &bolt.Options{Timeout: time.Second})
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
	runStoreContract(t, func(t *testing.T, now func() time.Time) Store { return newBolt(t, WithClock(now)) })
}

func TestRedisStore(t *testing.T) {
	rdb, prefix := isolatedRedis(t)
	var n atomic.Int64
	runStoreContract(t, func(t *testing.T, now func() time.Time) Store {
		return NewRedis(rdb, fmt.Sprintf("%s-%d", prefix, n.Add(1)), WithClock(now))
	})
}

func TestRedisKeyExpiresWithSessionPlusGrace(t *testing.T) {
	rdb, prefix := isolatedRedis(t)
	s := NewRedis(rdb, prefix, WithGrace(time.Minute))
	ctx := context.Background()
	in := valid()
	in.ExpiresAt = time.Now().Add(10 * time.Minute)
	cs, err := s.Create(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := rdb.PTTL(ctx, prefix+":cs:"+cs.ID).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := 11 * time.Minute; ttl > want || ttl < want-5*time.Second {
		t.Fatalf("key ttl %v, want about %v", ttl, want)
	}
}

func TestBoltSweep(t *testing.T) {
	c := newClock()
	s := newBolt(t, WithClock(c.Now))
	ctx := context.Background()
	short := valid()
	short.ExpiresAt = c.Now().Add(time.Minute)
	old, err := s.Create(ctx, short)
	if err != nil {
		t.Fatal(err)
	}
	live, err := s.Create(ctx, valid())
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute + DefaultGrace)
	n, err := s.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("swept %d (%v), want 1", n, err)
	}
	_ = s.st.DB().View(func(tx *bolt.Tx) error {
		if tx.Bucket(bSessions).Get([]byte(old.ID)) != nil {
			t.Error("expired session still in the file")
		}
		return nil
	})
	if _, err := s.Get(ctx, live.ID); err != nil {
		t.Fatal(err)
	}
}

// TestAttemptLimited: the limits come first and a refusal counts no
// attempt and claims nothing; once they allow it the attempt is Attempt's,
// refusals included. The same on bolt, on Redis with the limits apart,
// and on Redis with the limits in the attempt's script.
func TestAttemptLimited(t *testing.T) {
	ctx := context.Background()
	const claimA, claimB = "submission-a", "submission-b"
	one := ratelimit.Limit{Name: "one", Rate: 1, Period: time.Hour, Burst: 1}
	lots := ratelimit.Limit{Name: "lots", Rate: 100, Period: time.Hour, Burst: 100}
	for _, impl := range []struct {
		name string
		new  func(t *testing.T) (Store, ratelimit.Limiter)
	}{
		{"bolt", func(t *testing.T) (Store, ratelimit.Limiter) { return newBolt(t), ratelimit.NewMemory() }},
		{"redis/limits-apart", func(t *testing.T) (Store, ratelimit.Limiter) {
			rdb, prefix := isolatedRedis(t)
			return NewRedis(rdb, prefix), ratelimit.NewMemory()
		}},
		{"redis/one-script", func(t *testing.T) (Store, ratelimit.Limiter) {
			rdb, prefix := isolatedRedis(t)
			return NewRedis(rdb, prefix), ratelimit.NewRedis(rdb, prefix+":rl:")
		}},
	} {
		t.Run(impl.name, func(t *testing.T) {
			s, l := impl.new(t)
			cs, err := s.Create(ctx, valid())
			if err != nil {
				t.Fatal(err)
			}
			takes := []ratelimit.Take{{Limit: lots, Key: "ip", Stop: true}, {Limit: one, Key: cs.ID, Stop: true}}
			res, got, err := s.AttemptLimited(ctx, l, takes, cs.ID, claimA)
			if err != nil || len(res) != 2 || !res[1].Allowed || got.ID != cs.ID || got.Attempts != 1 {
				t.Fatalf("first: %+v %+v %v", res, got, err)
			}
			if err := s.Release(ctx, cs.ID, claimA); err != nil {
				t.Fatal(err)
			}
			res, got, err = s.AttemptLimited(ctx, l, takes, cs.ID, claimB)
			if err != nil || len(res) != 2 || res[1].Allowed || got.ID != "" {
				t.Fatalf("past the limit: %+v %+v %v, want refused results and no session", res, got, err)
			}
			back, err := s.Get(ctx, cs.ID)
			if err != nil || back.Attempts != 1 {
				t.Fatalf("attempts after a refusal: %d %v, want 1", back.Attempts, err)
			}
			// Claimed by nobody: a plain attempt gets in.
			if _, err := s.Attempt(ctx, cs.ID, claimB); err != nil {
				t.Fatalf("attempt after the refusal: %v (the refused one claimed the session?)", err)
			}
			// Allowed by the limits, refused by the session: Attempt's answer.
			res, _, err = s.AttemptLimited(ctx, l, takes[:1], cs.ID, claimA)
			if !errors.Is(err, ErrBusy) || len(res) != 1 || !res[0].Allowed {
				t.Fatalf("while claimed: %+v %v, want ErrBusy", res, err)
			}
			if _, _, err := s.AttemptLimited(ctx, l, takes[:1], "cs_nope", claimA); !errors.Is(err, ErrNotFound) {
				t.Fatalf("unknown session: %v", err)
			}
		})
	}
	t.Run("503/limiter-down", func(t *testing.T) {
		s := newBolt(t)
		cs, _ := s.Create(ctx, valid())
		down := failingLimiter{}
		if _, _, err := s.AttemptLimited(ctx, down, []ratelimit.Take{{Limit: one, Key: "k", Stop: true}}, cs.ID, claimA); !errors.Is(err, ratelimit.ErrUnavailable) {
			t.Fatalf("limiter down: %v, want ratelimit.ErrUnavailable", err)
		}
		if back, _ := s.Get(ctx, cs.ID); back.Attempts != 0 {
			t.Fatalf("attempt counted with the limiter down")
		}
	})
}

type failingLimiter struct{}

func (failingLimiter) Allow(context.Context, string, ratelimit.Limit) (ratelimit.Result, error) {
	return ratelimit.Result{}, errors.New("down")
}
