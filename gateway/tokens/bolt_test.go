package tokens

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openBolt(t testing.TB) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "blindgate.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newBoltStore(t testing.TB, opts ...Option) *Bolt {
	t.Helper()
	s, err := NewBolt(openBolt(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBoltStore(t *testing.T) {
	t.Parallel()
	runStoreContract(t, func(t *testing.T) Store { return newBoltStore(t) })
}

func TestBoltSweepRemovesExpiredCVC(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s := newBoltStore(t, WithClock(func() time.Time { return now }))
	ctx := context.Background()
	short, _, err := s.Put(ctx, sample("m_alice", 1), fakeJWE("cvc1"), time.Minute, "")
	if err != nil {
		t.Fatal(err)
	}
	long, _, err := s.Put(ctx, sample("m_alice", 2), fakeJWE("cvc2"), time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	n, err := s.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("sweep removed %d (%v), want 1", n, err)
	}
	// Gone from the file, not merely refused on read.
	err = s.st.DB().View(func(tx *bolt.Tx) error {
		if tx.Bucket(bCVC).Get([]byte(short.ID)) != nil {
			return errors.New("expired cvc still stored")
		}
		if tx.Bucket(bCVC).Get([]byte(long.ID)) == nil {
			return errors.New("live cvc swept")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeCVC(ctx, long.ID); err != nil {
		t.Fatal(err)
	}
}

func TestBoltExpiredCVCIsDeletedOnRead(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s := newBoltStore(t, WithClock(func() time.Time { return now }))
	ctx := context.Background()
	tok, _, err := s.Put(ctx, sample("m_alice", 1), fakeJWE("cvc1"), time.Minute, "")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if _, err := s.TakeCVC(ctx, tok.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired: %v", err)
	}
	_ = s.st.DB().View(func(tx *bolt.Tx) error {
		if tx.Bucket(bCVC).Get([]byte(tok.ID)) != nil {
			t.Error("expired cvc left in the file after a read")
		}
		return nil
	})
}

func BenchmarkBoltPut(b *testing.B) {
	s := newBoltStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, _, err := s.Put(ctx, sample("m_bench", i), fakeJWE("cvc"), time.Minute, fmt.Sprint("idem-", i)); err != nil {
			b.Fatal(err)
		}
	}
}
