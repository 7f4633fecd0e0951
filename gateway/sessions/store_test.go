package sessions

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
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
