package boltx

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Store is what every bbolt-backed store shares with its Redis twin's
// conventions: one file, one clock, errors named "<name>: bolt <op>: ..."
// with the store's sentinels passed through untouched, cancellation
// honoured before each transaction (bbolt itself ignores ctx), and, for
// stores whose entries expire, a sweep of one bucket.
type Store struct {
	db   *bolt.DB
	name string
	now  func() time.Time
	keep []error
}

// StoreOptions configure NewStore.
type StoreOptions struct {
	// Name prefixes errors: "tokens".
	Name string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Sentinels are the store's own errors, which Wrap passes through
	// unchanged so callers keep matching them with errors.Is.
	Sentinels []error
	// Buckets are created if they do not exist yet.
	Buckets [][]byte
}

// NewStore creates o.Buckets in db and returns the shared part of a store.
func NewStore(db *bolt.DB, o StoreOptions) (Store, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := CreateBuckets(db, o.Buckets...); err != nil {
		return Store{}, fmt.Errorf("%s: bolt buckets: %w", o.Name, err)
	}
	return Store{db: db, name: o.Name, now: o.Now, keep: o.Sentinels}, nil
}

// DB returns the bbolt file.
func (s Store) DB() *bolt.DB { return s.db }

// Now returns the store's clock reading.
func (s Store) Now() time.Time { return s.now() }

// Check returns ctx's error, named for the store, so a cancelled caller is
// refused before a transaction starts, as the Redis store would be.
func (s Store) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	return nil
}

// Wrap names op on a store failure; nil and the store's sentinels pass
// through unchanged.
func (s Store) Wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, k := range s.keep {
		if errors.Is(err, k) {
			return err
		}
	}
	return fmt.Errorf("%s: bolt %s: %w", s.name, op, err)
}

// Update runs fn in a read-write transaction after checking ctx, and wraps
// its error for op.
func (s Store) Update(ctx context.Context, op string, fn func(tx *bolt.Tx) error) error {
	if err := s.Check(ctx); err != nil {
		return err
	}
	return s.Wrap(op, s.db.Update(fn))
}

// View runs fn in a read-only transaction after checking ctx, and wraps its
// error for op.
func (s Store) View(ctx context.Context, op string, fn func(tx *bolt.Tx) error) error {
	if err := s.Check(ctx); err != nil {
		return err
	}
	return s.Wrap(op, s.db.View(fn))
}

// Sweep deletes every entry of bucket that dead reports expired at the
// store's now (an entry that does not decode should count as dead), and
// returns how many. Redis expires keys by itself; bbolt needs this.
func (s Store) Sweep(ctx context.Context, bucket []byte, dead func(v []byte, now time.Time) bool) (int, error) {
	now := s.now()
	var n int
	err := s.Update(ctx, "sweep", func(tx *bolt.Tx) (err error) {
		n, err = DeleteIf(tx.Bucket(bucket), func(_, v []byte) bool { return dead(v, now) })
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
