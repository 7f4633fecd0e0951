package boltx_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/blindgate/blindgate/internal/boltx"
)

func newStore(t *testing.T, now time.Time) boltx.Store {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	st, err := boltx.NewStore(db, boltx.StoreOptions{
		Name: "things", Now: func() time.Time { return now }, Sentinels: []error{errNotFound}, Buckets: [][]byte{[]byte("b")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStoreWrap(t *testing.T) {
	st := newStore(t, time.Now())
	tests := []struct {
		name, want string
		err        error
		is         error
	}{
		{"nil", "", nil, nil},
		{"sentinel/unchanged", "", fmt.Errorf("x: %w", errNotFound), errNotFound},
		{"failure/named", "things: bolt put: disk full", errors.New("disk full"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := st.Wrap("put", tt.err)
			switch {
			case tt.err == nil && got != nil:
				t.Fatalf("Wrap(nil) = %v", got)
			case tt.is != nil && got != tt.err:
				t.Fatalf("Wrap(sentinel) = %v, want it unchanged", got)
			case tt.err != nil && tt.is == nil && got.Error() != tt.want:
				t.Fatalf("Wrap = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStoreCancelledContext(t *testing.T) {
	st := newStore(t, time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := st.Update(ctx, "op", func(*bolt.Tx) error { ran = true; return nil })
	if !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("Update on a cancelled ctx = %v (ran %v), want context.Canceled before the transaction", err, ran)
	}
	if _, err := st.Sweep(ctx, []byte("b"), func([]byte, time.Time) bool { return true }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sweep on a cancelled ctx = %v", err)
	}
}

func TestStoreSweepUsesClock(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := newStore(t, now)
	ctx := context.Background()
	err := st.Update(ctx, "put", func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("b"))
		for k, exp := range map[string]time.Time{"old": now.Add(-time.Second), "due": now, "live": now.Add(time.Second)} {
			if err := bk.Put([]byte(k), []byte(exp.Format(time.RFC3339Nano))); err != nil {
				return err
			}
		}
		return bk.Put([]byte("junk"), []byte("not a time"))
	})
	if err != nil {
		t.Fatal(err)
	}
	n, err := st.Sweep(ctx, []byte("b"), func(v []byte, at time.Time) bool {
		exp, err := time.Parse(time.RFC3339Nano, string(v))
		return err != nil || !at.Before(exp)
	})
	if err != nil || n != 3 {
		t.Fatalf("Sweep = %d, %v; want 3 (old, due, junk)", n, err)
	}
	err = st.View(ctx, "get", func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("b")).Get([]byte("live")) == nil {
			return errors.New("live entry swept")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
